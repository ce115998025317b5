"""Verdicts, intervals over seeds and the depth-necessity condition, on hand-built frames."""

import numpy as np
import pandas as pd
import pytest
import yaml

from anira_lib.analysis.depth_necessity import DEPTH_BASELINES, depth_necessity, summarize_necessity
from anira_lib.analysis.findings import (CLAIMS, comparison_rows, extrapolation_rows, read_comparison, tau_trade_by_seed,
                                unseen_drop_by_seed, verdict)
from anira_lib.intervals import seed_interval


def knob_frame(depths: dict, accuracy: dict | None = None, knobs=(1, 2, 3, 4)) -> pd.DataFrame:
    """compare_deciders' frame: depths / accuracy {variant: [[per knob] per seed]}."""
    rows = []
    for variant, by_seed in depths.items():
        for seed, values in enumerate(by_seed):
            acc = accuracy[variant][seed] if accuracy and variant in accuracy else [0.9] * len(knobs)
            rows += [{"seed": seed, "variant": variant, "knob": k, "n": 100, "accuracy": a, "mean_depth": d}
                     for k, d, a in zip(knobs, values, acc)]
    return pd.DataFrame(rows)


def by_claim(rows):
    return {(r["claim"], r["scope"]): r for r in rows}


def test_verdict_rule_holds_reversed_inconclusive_and_single_seed():
    assert verdict([0.9, 0.8, 1.0])[1] == "holds"
    assert verdict([-0.9, -0.8, -1.0])[1] == "reversed"
    assert verdict([0.9, -0.8, 0.1])[1] == "inconclusive"
    iv, word = verdict([0.9])
    assert word == "inconclusive (single seed)" and iv.n == 1 and np.isnan(iv.low)
    assert verdict([np.nan, np.nan])[1] == "inconclusive (no seeds)"
    # the paper's side below the null (side -1) flips holds and reversed
    assert verdict([-0.5, -0.6, -0.4], side=-1)[1] == "holds"
    assert verdict([0.5, 0.6, 0.4], side=-1)[1] == "reversed"
    with pytest.raises(ValueError, match="side"):
        verdict([1, 2], side=0)


def test_comparison_rows_from_hand_built_frames():
    rising = [[1, 2, 3, 4], [1, 2, 3, 3.5], [1.2, 2, 2.5, 4]]
    o_rising = [[1, 1.5, 2, 3], [1, 1.2, 2, 3], [1, 1.4, 2.1, 2.2]]
    rows = by_claim(comparison_rows(knob_frame({"ANIRA-E": rising, "ANIRA-O": o_rising}), "MANO"))
    assert rows[("depth_rises", "MANO, ANIRA-E")]["verdict"] == "holds"
    assert rows[("depth_rises", "MANO, ANIRA-O")]["verdict"] == "holds"
    assert rows[("o_below_e", "MANO")]["verdict"] == "holds"
    assert "not measured" in rows[("o_below_e", "MANO")]["condition"]  # no fixed-1 / fixed-D runs

    falling = [list(reversed(s)) for s in rising]
    rows = by_claim(comparison_rows(knob_frame({"ANIRA-E": falling, "ANIRA-O": rising}), "MANO"))
    assert rows[("depth_rises", "MANO, ANIRA-E")]["verdict"] == "reversed"
    assert rows[("depth_rises", "MANO, ANIRA-E")]["value"] == pytest.approx(-np.mean([1, 1, 1]))
    assert rows[("o_below_e", "MANO")]["verdict"] == "inconclusive"  # equal mean d̄ per seed: gap 0

    mixed = [[1, 2, 3, 4], [4, 3, 2, 1], [1, 2, 3, 4.5]]
    row = by_claim(comparison_rows(knob_frame({"ANIRA-E": mixed}), "MANO"))[("depth_rises", "MANO, ANIRA-E")]
    assert row["verdict"] == "inconclusive" and row["seeds"] == 3

    single = by_claim(comparison_rows(knob_frame({"ANIRA-E": rising[:1], "ANIRA-O": o_rising[:1]}), "MANO"))
    assert single[("depth_rises", "MANO, ANIRA-E")]["verdict"] == "inconclusive (single seed)"
    assert single[("o_below_e", "MANO")]["verdict"] == "inconclusive (single seed)"


def test_an_adaptive_model_with_one_depth_at_every_knob_is_a_measured_no_rise():
    """mano_p0c0's ANIRA-E (no Prelude: its decider sees only the answer marker's embedding) spent 5, 3
    and 5 iterations at every ℓ in its three seeds; that read 'inconclusive (no seeds)', as if nothing
    had been measured. Now each seed's trend is 0 and the verdict says why."""
    flat = [[5, 5, 5, 5], [3, 3, 3, 3], [5, 5, 5, 5]]
    rows = by_claim(comparison_rows(knob_frame({"ANIRA-E": flat, "ANIRA-O": [[1, 2, 3, 4]] * 3}), "MANO"))
    row = rows[("depth_rises", "MANO, ANIRA-E")]
    assert (row["value"], row["seeds"]) == (0.0, 3)
    assert row["verdict"] == "inconclusive (d̄ the same at every knob, in every seed)"
    partly = [[5, 5, 5, 5], [1, 2, 3, 4], [1, 2, 3, 3]]  # one flat seed among rising ones: a 0 in the interval
    row = by_claim(comparison_rows(knob_frame({"ANIRA-E": partly}), "MANO"))[("depth_rises", "MANO, ANIRA-E")]
    assert row["seeds"] == 3 and row["value"] == pytest.approx((0 + 1 + np.mean([1, 1, 1]) * 0.9486832980505138) / 3)


def test_o_below_e_needs_equal_accuracy():
    depths = {"ANIRA-E": [[2, 3]] * 3, "ANIRA-O": [[1, 2]] * 3}
    worse = {"ANIRA-E": [[0.9, 0.9]] * 3, "ANIRA-O": [[0.5, 0.6], [0.4, 0.5], [0.5, 0.5]]}
    row = by_claim(comparison_rows(knob_frame(depths, worse, knobs=(1, 2)), "X"))[("o_below_e", "X")]
    assert row["verdict"] == "inconclusive (accuracies not shown equal)"
    equal = {"ANIRA-E": [[0.9, 0.9]] * 3, "ANIRA-O": [[0.91, 0.9], [0.9, 0.89], [0.9, 0.9]]}
    assert by_claim(comparison_rows(knob_frame(depths, equal, knobs=(1, 2)), "X"))[("o_below_e", "X")]["verdict"] == "holds"


def test_interval_covers_the_true_mean_at_its_nominal_rate():
    rng = np.random.default_rng(0)
    for n, level in ((3, 0.95), (5, 0.9)):
        draws = rng.normal(0.4, 0.2, size=(4000, n))
        covered = np.mean([seed_interval(d, level).covers(0.4) for d in draws])
        assert abs(covered - level) < 0.015, (n, level, covered)  # binomial s.e. ≈ 0.004


def test_interval_edge_cases():
    iv = seed_interval([0.5, 0.5, 0.5])
    assert (iv.mean, iv.low, iv.high, iv.sd) == (0.5, 0.5, 0.5, 0.0)
    assert seed_interval([1.0, np.nan, 3.0]).n == 2  # an undefined seed does not count
    with pytest.raises(ValueError, match="level"):
        seed_interval([1, 2], level=1.5)


def necessity_frame(shallow, deep, knobs=(1, 2, 3)):
    rows = [{"seed": s, "variant": v, "knob": k, "accuracy": a}
            for v, per_seed in (("fixed-1", shallow), ("fixed-D", deep))
            for s, accs in enumerate(per_seed) for k, a in zip(knobs, accs)]
    return pd.DataFrame(rows)


def test_depth_necessity_per_knob():
    shallow = [[1.0, 0.9, 0.3], [1.0, 0.6, 0.35], [1.0, 0.95, 0.25]]  # knob 2: one seed far off
    deep = [[1.0, 0.9, 0.9], [1.0, 0.9, 0.95], [1.0, 0.9, 0.85]]
    table = depth_necessity(necessity_frame(shallow, deep), chance=0.5)
    assert list(table["needed"]) == ["no", "unclear", "yes"]
    assert table["gap"].iloc[2] == pytest.approx(0.6)
    assert list(table["deep_above_chance"]) == [True, True, True]
    assert summarize_necessity(table) == "depth needed at knob 3 (of 1..3)"
    assert list(table["helps"]) == [False, False, True]
    one = depth_necessity(necessity_frame(shallow[:1], deep[:1]))
    assert set(one["needed"]) == {"unclear"} and set(one["seeds"]) == {1} and not one["helps"].any()


def test_depth_that_helps_by_less_than_the_needed_gap_is_said():
    """mano_l6_d6_p0c0's shape: every seed gains 0.05-0.11 from depth at knobs 2 and 3, under MIN_GAP."""
    shallow = [[1.0, 0.91, 0.76], [1.0, 0.90, 0.77], [1.0, 0.92, 0.75]]
    deep = [[1.0, 0.96, 0.85], [1.0, 0.96, 0.88], [1.0, 0.97, 0.87]]
    table = depth_necessity(necessity_frame(shallow, deep))
    assert list(table["needed"]) == ["no", "no", "no"] and list(table["helps"]) == [False, True, True]
    assert summarize_necessity(table) == ("depth needed at no knob value (of 1..3); depth helps, by less than 0.15 "
                                          "or not surely more, at knob 2, 3")


def test_depth_baselines_are_the_fixed_depth_model_at_one_and_d_iterations():
    assert DEPTH_BASELINES == {"fixed-1": {"decider": "none", "max_depth": 1}, "fixed-D": {"decider": "none"}}


def test_missing_variant_and_other_task_are_named(tmp_path):
    frame = knob_frame({"ANIRA-E": [[1, 2, 3, 4]] * 3})
    with pytest.raises(ValueError, match=r"depth_necessity needs variant\(s\) \['fixed-1', 'fixed-D'\]"):
        depth_necessity(frame)
    frame.to_csv(tmp_path / "results.csv", index=False)
    (tmp_path / "seed_0" / "early").mkdir(parents=True)
    (tmp_path / "seed_0" / "early" / "train_config.yaml").write_text(yaml.safe_dump({"task": "mano"}))
    assert len(read_comparison(tmp_path, "mano", ["ANIRA-E"])) == 12
    with pytest.raises(ValueError, match=r"trained task 'mano', but this claim reads 'depo' runs"):
        read_comparison(tmp_path, "depo")
    with pytest.raises(ValueError, match=r"needs variant\(s\) \['ANIRA-O'\]"):
        read_comparison(tmp_path, "mano", ["ANIRA-E", "ANIRA-O"])
    with pytest.raises(FileNotFoundError, match="results.csv does not exist"):
        read_comparison(tmp_path / "seed_0", "mano")


def test_extrapolation_clrs_and_tau_statistics():
    frame = knob_frame({"ANIRA-E": [[0.9, 0.9, 0.3, 0.2]] * 3, "ANIRA-O": [[0.9, 0.9, 0.5, 0.4]] * 3,
                        "fixed-depth": [[0.9, 0.8, 0.2, 0.1]] * 3}, knobs=(1, 2, 3, 4))
    frame["accuracy"] = frame["mean_depth"]  # the hand-built values above are accuracies
    frame.loc[frame["seed"] == 1, "accuracy"] += 0.01  # a little spread between seeds
    rows = by_claim(extrapolation_rows(frame, train_max=2, scope="MANO"))
    assert rows[("all_drop_past_train", "MANO")]["verdict"] == "holds"
    assert rows[("o_most_graceful", "MANO")]["value"] == pytest.approx(0.2)
    assert rows[("o_most_graceful", "MANO")]["verdict"] == "holds"
    with pytest.raises(ValueError, match="both sides of L_train = 4"):
        extrapolation_rows(frame, train_max=4, scope="MANO")

    clrs = pd.DataFrame({"variant": ["ANIRA-E"] * 4, "train": [True, True, False, False],
                         "accuracy": [0.9, 0.8, 0.2, 0.4]})
    assert unseen_drop_by_seed(clrs).tolist() == pytest.approx([0.55])

    taus = [0.1, 0.5, 0.9]
    sweep = pd.DataFrame({"seed": [0] * 4 + [1] * 4, "tau": [None, *taus] * 2,
                          "accuracy": [0.5, 0.6, 0.7, 0.8, 0.5, 0.6, 0.65, 0.9],
                          "mean_depth": [9, 1, 2, 3, 9, 1.5, 2, 3]})
    assert tau_trade_by_seed(sweep).tolist() == pytest.approx([1.0, 1.0])


def test_every_claim_is_stated():
    for key, claim in CLAIMS.items():
        assert claim.key == key and claim.statement and claim.paper and claim.side in (1, -1)


def test_depth_gap_is_paired_by_seed():
    # seeds differ a lot in level but agree on the gap: paired, depth is needed; unpaired it would be unclear
    table = depth_necessity(necessity_frame([[0.2], [0.5], [0.8]], [[0.4], [0.7], [1.0]], knobs=(1,)))
    assert table["gap"].iloc[0] == pytest.approx(0.2) and table["gap_sd"].iloc[0] == pytest.approx(0, abs=1e-12)
    assert table["needed"].iloc[0] == "yes"


def test_depth_necessity_of_a_lower_is_better_measure_without_knobs():
    # LANO: KL to the exact next-token distribution per seed and variant; depth saves 0.2 nats in every seed
    frame = pd.DataFrame({"seed": [0, 0, 1, 1, 2, 2], "variant": ["fixed-1", "fixed-D"] * 3,
                          "kl_to_exact_nats": [0.5, 0.3, 0.6, 0.4, 0.55, 0.35]})
    table = depth_necessity(frame, by=(), value="kl_to_exact_nats", lower_is_better=True, min_gap=0.1)
    assert list(table["knob"]) == ["all"] and table["gap"].iloc[0] == pytest.approx(0.2)
    assert table["needed"].iloc[0] == "yes" and "fixed-1 kl_to_exact_nats" in table


def test_allocation_that_never_varies_is_measured_as_no_tracking():
    """A model that chose one depth for every answer token while their needs differ tracks nothing
    (0), rather than leaving the seed out; one that follows need tracks it."""
    from anira_lib.analysis.findings import tracking_by_seed

    D = 4
    needs = [1, 2, 3, 4, 2, 3]
    correct = [[i + 1 >= n for i in range(D)] for n in needs]  # right from iteration `need` on
    rec = lambda exits: {"knob": 1, "example": 0, "answer_positions": list(range(1, 7)),  # noqa: E731
                         "exit_depths": [1, *exits], "iteration_correct": correct}
    per_seed = tracking_by_seed({0: [rec([3] * 6)], 1: [rec(needs)], 2: [rec([2, 2, 3, 4, 2, 4])]})
    assert per_seed[0] == 0.0 and per_seed[1] == pytest.approx(1.0) and 0.5 < per_seed[2] < 1.0
