"""Training-dynamics numbers (first step to a level, two phases) and their spread over seeds, on
hand-built checkpoint evaluations whose answers are known."""

import matplotlib
import numpy as np
import pandas as pd
import pytest

from anira_lib.analysis.dynamics import first_step_reaching, over_seeds, plot_progression, training_dynamics, two_phases
from anira_lib.analysis.pareto import pareto_over_seeds, plot_pareto

matplotlib.use("Agg")

STEPS = [100, 200, 300, 400]


def evaluation(run, seed, accuracy, depth, decider="early", task="mano"):
    """A checkpoint evaluation frame: accuracy[knob] and depth[knob] are lists over STEPS."""
    return pd.DataFrame([{"run": run, "task": task, "decider": decider, "train_seed": seed, "step": step,
                          "knob": knob, "accuracy": accuracy[knob][i], "mean_depth": depth[knob][i]}
                         for knob in accuracy for i, step in enumerate(STEPS)])


# knob 1 is learnt at step 100, knob 2 at 200, knob 3 never (seed 0); seed 1 learns knob 2 at 300
ACC0 = {1: [0.95, 1, 1, 1], 2: [0.2, 0.9, 1, 1], 3: [0, 0.1, 0.5, 0.8]}
ACC1 = {1: [0.95, 1, 1, 1], 2: [0.2, 0.5, 0.92, 1], 3: [0, 0.1, 0.5, 0.95]}
DEPTH = {1: [1, 3, 2, 1], 2: [1, 4, 3, 2], 3: [1, 5, 4, 3]}  # mean over knobs peaks at step 200 (4), ends at 2


@pytest.fixture
def frame():
    return pd.concat([evaluation("a/seed_0", 0, ACC0, DEPTH), evaluation("a/seed_1", 1, ACC1, DEPTH)],
                     ignore_index=True)


def test_first_step_reaching_a_level_per_run_and_knob(frame):
    first = first_step_reaching(frame, level=0.9)
    by = first.set_index(["run", "knob"])["first_step"]
    assert by[("a/seed_0", 1)] == 100 and by[("a/seed_0", 2)] == 200 and np.isnan(by[("a/seed_0", 3)])
    assert by[("a/seed_1", 2)] == 300 and by[("a/seed_1", 3)] == 400
    spearman = first.groupby("run")["spearman"].first()
    assert spearman["a/seed_0"] == pytest.approx(1.0) and spearman["a/seed_1"] == pytest.approx(1.0)
    assert set(first["train_seed"]) == {0, 1} and set(first["task"]) == {"mano"}


def test_two_phases_finds_the_peak_and_the_drop(frame):
    phases = two_phases(frame).set_index("run")
    assert (phases["peak_step"] == 200).all() and (phases["last_step"] == 400).all()
    assert phases.loc["a/seed_0", "depth_at_peak"] == pytest.approx(4) and phases.loc["a/seed_0", "depth_drop"] == pytest.approx(2)
    assert phases.loc["a/seed_0", "accuracy_at_end"] == pytest.approx((1 + 1 + 0.8) / 3)


def test_statistics_over_seeds(frame):
    first = over_seeds(first_step_reaching(frame, 0.9), ["task", "decider", "knob"], ["first_step"]).set_index("knob")
    assert first.loc[2, "first_step"] == 250 and first.loc[2, "first_step_min"] == 200 and first.loc[2, "first_step_max"] == 300
    assert first.loc[3, "first_step"] == 400  # the seed that never got there is left out, not counted as 0
    assert (first["seeds"] == 2).all()
    with pytest.raises(ValueError, match=r"no column\(s\) \['train_seed'\]"):
        over_seeds(first.reset_index(), ["train_seed"], ["first_step"])


def test_training_dynamics_reads_the_runs_it_is_given(frame, monkeypatch):
    import anira_lib.evaluation.checkpoint_eval as ce

    monkeypatch.setattr(ce, "evaluate_runs", lambda run_dirs, **kw: frame[frame["run"].isin(run_dirs)])
    result = training_dynamics(["a/seed_0", "a/seed_1"], level=0.9)
    assert len(result["first_steps"]) == 6 and len(result["phases"]) == 2
    assert result["phases_over_seeds"].loc[0, "depth_drop"] == pytest.approx(2)
    assert result["first_steps_over_seeds"].set_index("knob").loc[2, "first_step"] == 250


def test_progression_plot_draws_one_row_per_label_with_a_band_over_seeds(frame):
    fig = plot_progression(frame, names={"a/seed_0": "mano early", "a/seed_1": "mano early"})
    assert len(fig.axes) == 2  # two runs, one label: one row
    acc = fig.axes[0]
    assert len(acc.lines) == 3 and len(acc.collections) == 3  # a mean line and a min–max band per knob
    knob2 = acc.lines[1].get_ydata()
    assert np.allclose(knob2, 100 * np.mean([ACC0[2], ACC1[2]], axis=0))
    assert "2 runs" in acc.get_title()
    fig = plot_progression(frame)  # unnamed: one row per run, no bands
    assert len(fig.axes) == 4 and not fig.axes[0].collections


def test_pareto_over_seeds_keeps_the_rules_whose_tau_is_empty():
    rows = [{"task": "brevo", "seed": seed, "setting": s, "rule": r, "tau": t, "accuracy": acc, "mean_depth": d}
            for seed, shift in ((0, 0.0), (1, 0.1))
            for s, r, t, acc, d in (("mode", "mode", None, 0.5 + shift, 2.0), ("τ=0.5", "threshold", 0.5, 0.6 + shift, 3.0))]
    frame = pd.DataFrame(rows)
    spread = pareto_over_seeds(frame).set_index("setting")
    assert list(spread.index) == ["mode", "τ=0.5"] and (spread["seeds"] == 2).all()
    assert spread.loc["mode", "accuracy"] == pytest.approx(0.55) and spread.loc["mode", "accuracy_max"] == pytest.approx(0.6)
    fig = plot_pareto(frame)
    ax = fig.axes[0]
    assert np.allclose(ax.lines[0].get_ydata(), [65.0])  # the τ line is the mean over seeds
    assert "2 seeds" in ax.get_legend().get_texts()[0].get_text()
