"""The Pareto sweep: τ's limits, the rules it compares, decode ratios beside full depth, bad input."""

import pytest
import torch

from anira_lib.analysis.pareto import pareto_sweep, settings
from anira_lib.training.run_config import TrainConfig
from anira_lib.evaluation.savings import random_adaptive_model
from anira_lib.training.train import train


@pytest.mark.parametrize("D", [3, 5])
def test_tau_near_zero_exits_every_token_at_depth_one_and_tau_one_runs_to_D(D):
    model = random_adaptive_model(hidden_size=32, intermediate_size=64, num_attention_heads=2, max_depth=D,
                                  target_depth=(1 + D) / 2, spread=0.5)
    ids = torch.randint(1, 64, (3, 11), generator=torch.Generator().manual_seed(0))
    def depths(tau):
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), depth_rule="threshold", halt_threshold=tau)
        return out.exit_depths
    assert (depths(1e-9) == 1).all()
    assert (depths(1.0) == D).all()
    middle = depths(0.5)
    assert (middle > 1).any() and (middle < D).any()  # the model is not trivially at one end


@pytest.fixture(scope="module")
def online_run(tmp_path_factory):
    cfg = dict(task="mano", task_args={"max_ops": 2, "modulus": 5}, hidden_size=32, intermediate_size=64, max_depth=4,
               batch_size=8, steps=4, progress=False)
    out = tmp_path_factory.mktemp("pareto")
    return {d: train(TrainConfig.from_dict({**cfg, "decider": d, "out_dir": str(out / d)})) for d in ("online", "early")}


def test_sweep_rows_and_limits(online_run):
    run = online_run["online"]
    frame = pareto_sweep(run.model, run.task, [1, 2], taus=[1e-9, 0.5, 1.0], n_per_knob=6, decode_rounds=2,
                         decode_prompts=3, new_tokens=3, progress=False)
    assert list(frame["setting"]) == ["mode", "median", "mean", "τ=1e-09", "τ=0.5", "τ=1"]
    by = frame.set_index("setting")
    assert by.loc["τ=1e-09", "mean_depth"] == 1 and by.loc["τ=1", "mean_depth"] == 4
    assert by.loc["τ=1e-09", "decode_depth"] == 1 and by.loc["τ=1", "decode_depth"] == 4
    assert by.loc["τ=1", "kv_held_over_full"] == pytest.approx(1.0)
    assert by.loc["τ=1e-09", "kv_held_over_full"] < 1
    assert by.loc["τ=0.5", "mean_depth"] == by.loc["median", "mean_depth"]  # the median rule is τ = 0.5
    assert frame.loc[frame["rule"].isin(["mode", "mean"]), "decode_speedup"].isna().all()  # need q over all D
    ok = frame["decode_speedup"].notna()
    assert (frame.loc[ok, "decode_speedup_min"] <= frame.loc[ok, "decode_speedup"]).all()
    assert (frame.loc[ok, "decode_speedup"] <= frame.loc[ok, "decode_speedup_max"]).all()
    assert frame["accuracy"].between(0, 1).all() and (frame["n"] == 12).all()


def test_sweep_refuses_what_it_cannot_do(online_run):
    with pytest.raises(ValueError, match="decider is 'early'.*decider='online'"):
        pareto_sweep(online_run["early"].model, online_run["early"].task, [1], progress=False)
    with pytest.raises(ValueError, match=r"halt_threshold \(τ\) must be a number in \(0, 1\], got 0"):
        settings(taus=[0.5, 0])
    assert len(settings()) == 3 + 11  # three rules and ≥ 9 thresholds by default


def test_tau_labels_skip_points_that_sit_on_a_labelled_one():
    import pandas as pd

    from anira_lib.analysis.pareto import spaced_labels

    sweep = pd.DataFrame({"tau": [0.1, 0.2, 0.3, 0.9], "mean_depth": [1.0, 1.001, 2.0, 3.0],
                          "accuracy": [0.50, 0.501, 0.60, 0.70]})
    assert [r["tau"] for r in spaced_labels(sweep)] == [0.1, 0.3, 0.9]  # 0.2 would print over 0.1
