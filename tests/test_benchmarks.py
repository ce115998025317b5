"""The training benchmark runs as documented and prints its side-by-side columns (eager ways only: seconds)."""

import re
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_train_throughput_prints_interleaved_ratios():
    out = subprocess.run([sys.executable, "benchmarks/train_throughput.py", "--no-compile", "--steps", "1",
                          "--rounds", "5", "--models", "E,llama", "--task-args", '{"max_ops": 6}'],
                         capture_output=True, text=True, check=True).stdout
    assert "preset=demo task=mano" in out and "threads=1" in out
    assert " T=16-16 " in out  # --task-args: six operations make MANO rows of 16 tokens (the demo's are 12)
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(("ANIRA-E", "Llama"))}
    cells = re.findall(r"(\d+\.\d+) \[(\d+\.\d+)-(\d+\.\d+)\]", rows["ANIRA-E"])
    assert len(cells) == 2  # before, eager: median [min-max] each
    assert all(float(lo) <= float(med) <= float(hi) for med, lo, hi in cells)
    assert re.search(r"eager\s+vs Llama: ANIRA-E \d+\.\d+ \[", out)
    assert "optimizer" in out and "batch (sample + collate)" in out


def test_train_throughput_rejects_an_unknown_model_and_too_few_rounds():
    for args, message in [(["--models", "E,gpt"], "unknown ['gpt']"), (["--rounds", "3"], "at least 5")]:
        proc = subprocess.run([sys.executable, "benchmarks/train_throughput.py", "--no-compile", *args],
                              capture_output=True, text=True)
        assert proc.returncode == 2 and message in proc.stderr


@pytest.mark.parametrize("P,R,C,d_bar", [(1, 1, 1, 2.6), (1, 2, 1, 2.6), (0, 1, 0, 1.0), (2, 2, 1, 3.5), (1, 1, 1, 0.2)])
def test_the_dense_reference_has_the_adaptive_model_s_average_layer_count(P, R, C, d_bar):
    import torch

    from anira_lib.evaluation.savings import dense_reference, measure_decode
    from tests.conftest import tiny_config

    config = tiny_config(prelude_layers=P, recurrent_layers=R, coda_layers=C)
    dense = dense_reference(config, d_bar)
    assert dense.config.num_hidden_layers == P + max(1, round(R * d_bar)) + C
    assert (dense.config.hidden_size, dense.config.intermediate_size, dense.config.vocab_size) == (32, 64, 40)
    ids = torch.randint(1, 40, (2, 5), generator=torch.Generator().manual_seed(0))
    m = measure_decode(dense, ids, 3)
    assert m["tokens_per_s"] > 0 and m["mean_depth"] is None and m["memory"] is None and m["mean_step_depth"] is None


@pytest.mark.slow
def test_decode_benchmark_prints_bound_and_dense_reference_columns():
    out = subprocess.run([sys.executable, "benchmarks/decode.py", "--preset", "smoke", "--batches", "1", "2",
                          "--recurrent-layers", "1", "--repeats", "5", "--profile"],
                         capture_output=True, text=True, check=True).stdout
    table, profile = out.split("where one decode's time goes")
    profile, sources = profile.split("where the adaptive model's aten ops come from")
    assert len(re.findall(r"ANIRA-[EO] R=1 batch \d, \d+ ops / token: \S+\.py:\w+ \d+", sources)) == 4
    rows = [line for line in table.splitlines() if line.startswith(("ANIRA-E", "ANIRA-O"))]
    assert len(rows) == 4  # E and O at batch 1 and 2
    for row in rows:
        cells = re.findall(r"(\d+\.\d+) \[(\d+\.\d+)-(\d+\.\d+)\]", row)
        assert len(cells) == 4  # speedup, of bound, of step bound, of dense: median [min-max] each
        assert all(float(lo) <= float(med) <= float(hi) for med, lo, hi in cells)
        cols = row.split()
        d_bar, step_d, dense_layers = float(cols[3]), float(cols[11]), int(cols[15])
        assert 1 <= d_bar <= step_d <= 4 and 3 <= dense_layers <= 6
        if cols[2] == "1":  # one row: every step runs its one token's depth
            assert step_d == d_bar
    shares = [line.split() for line in profile.splitlines() if line.startswith(("ANIRA-E", "ANIRA-O"))]
    assert [r[3] for r in shares] == ["adaptive", "dense"] * 4
    for r in shares:
        assert abs(sum(map(float, r[4:9])) - 1) < 0.02 and float(r[4]) > 0  # shares add up; layers take time
        if r[3] == "dense":  # no decider (an adaptive one's share may print as 0.00: the unit test checks it)
            assert float(r[5]) == 0
        assert float(r[10]) > 0  # aten ops per decoded token


def test_decode_profile_splits_the_wall_time_by_module():
    import torch

    from anira_lib.evaluation.decode_profile import CATEGORIES, decode_profile
    from anira_lib.evaluation.savings import dense_reference, random_adaptive_model

    model = random_adaptive_model("online", 32, 64, 2, 4)
    ids = torch.randint(1, 60, (2, 6), generator=torch.Generator().manual_seed(0))
    for net, has_decider in ((model, True), (dense_reference(model.config, 2.0), False)):
        shares = decode_profile(net, ids, 4)
        assert abs(sum(shares[c] for c in CATEGORIES) - 1) < 1e-9 and shares["wall_s"] > 0
        assert shares["layers"] > 0 and shares["embed_head"] > 0 and (shares["decider"] > 0) == has_decider
    assert not model._forward_hooks and not model.model.decider._forward_pre_hooks  # the ranges are gone


def test_ops_per_token_is_a_count_that_repeats_and_grows_with_depth():
    import torch

    from anira_lib.evaluation.decode_profile import ops_per_token
    from anira_lib.evaluation.savings import random_adaptive_model

    ids = torch.randint(1, 60, (1, 6), generator=torch.Generator().manual_seed(0))
    deep = random_adaptive_model("early", 32, 64, 2, 4, target_depth=2.0)
    shallow = random_adaptive_model("early", 32, 64, 2, 2, target_depth=1.5)
    count = ops_per_token(deep, ids, 4, depth_rule="full")
    assert count == ops_per_token(deep, ids, 4, depth_rule="full")  # the same count every time
    assert 0 < ops_per_token(shallow, ids, 4, depth_rule="full") < count  # two iterations fewer: fewer ops


def test_ops_by_source_names_where_the_ops_come_from_and_adds_up():
    """The attribution: the cache's bookkeeping shows under cache.py, a dense Llama has none, and the
    rows add up to what the same dispatch count gives as a whole."""
    import torch

    from anira_lib.evaluation.decode_profile import ops_by_source
    from anira_lib.evaluation.savings import dense_reference, random_adaptive_model

    ids = torch.randint(1, 60, (1, 6), generator=torch.Generator().manual_seed(0))
    model = random_adaptive_model("early", 32, 64, 2, 4, target_depth=2.0)
    frame = ops_by_source(model, ids, 4)
    assert list(frame.columns) == ["source", "ops_per_token"] and frame.ops_per_token.is_monotonic_decreasing
    assert frame.source.is_unique and (frame.ops_per_token > 0).all()
    assert frame[frame.source.str.startswith("cache.py:")].ops_per_token.sum() > 0
    assert frame.equals(ops_by_source(model, ids, 4))  # a count: the same every time
    dense = ops_by_source(dense_reference(model.config, 2.0), ids, 4)
    assert not dense.source.str.startswith(("cache.py:", "model.py:")).any()
    assert dense.ops_per_token.sum() < frame.ops_per_token.sum()
