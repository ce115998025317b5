"""Training dynamics (paper §6.2, Figs. 4–5) from a checkpoint evaluation frame
(`checkpoint_eval.evaluate_checkpoints`: one row per run × step × knob).

Two findings, as numbers: *easy-to-hard* (`first_step_reaching`: the first step at which each knob
value reaches an accuracy level rises with the knob, Spearman) and *two phases* (`two_phases`: d̄
climbs while the task is learnt, peaks, then falls while accuracy holds).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

REQUIRED = ("run", "decider", "step", "knob", "accuracy", "mean_depth")


def check_frame(frame: pd.DataFrame) -> None:
    """Refuse a frame without the columns the dynamics need, naming them and where they come from."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"the frame has no column(s) {missing}; the training dynamics read a checkpoint "
                         "evaluation (anira_lib.evaluation.checkpoint_eval.evaluate_checkpoints).")


def _run_columns(g: pd.DataFrame) -> dict:
    """What names a run in the per-run tables: decider, and task and training seed where the frame has them."""
    return {c: g[c].iloc[0] for c in ("task", "decider", "train_seed") if c in g.columns}


def first_step_reaching(frame: pd.DataFrame, level: float = 0.9) -> pd.DataFrame:
    """Per run and knob: the first evaluated step with accuracy ≥ `level` (NaN: never), and per run the
    Spearman correlation of that step with the knob over the knobs that reached it (`spearman`)."""
    check_frame(frame)
    rows = []
    for (run, knob), g in frame.groupby(["run", "knob"], sort=True):
        reached = g[g["accuracy"] >= level]["step"]
        rows.append({"run": run, **_run_columns(g), "knob": knob, "level": level,
                     "first_step": float(reached.min()) if len(reached) else np.nan})
    out = pd.DataFrame(rows)
    out["spearman"] = out["run"].map({run: _spearman(g.dropna(subset=["first_step"])) for run, g in out.groupby("run")})
    return out


def _spearman(g: pd.DataFrame) -> float:
    if len(g) < 2 or g["first_step"].nunique() < 2:
        return np.nan
    return float(spearmanr(g["knob"], g["first_step"]).statistic)


def two_phases(frame: pd.DataFrame) -> pd.DataFrame:
    """Per run, with d̄ and accuracy averaged over knobs at each step: the step where d̄ peaks, d̄ and
    accuracy at the peak and at the last step, and the drop d̄_peak − d̄_end."""
    check_frame(frame)
    rows = []
    for run, g in frame.groupby("run", sort=False):
        per_step = g.groupby("step")[["mean_depth", "accuracy"]].mean().sort_index()
        peak = per_step["mean_depth"].idxmax()
        end = per_step.index[-1]
        rows.append({"run": run, **_run_columns(g), "peak_step": int(peak), "last_step": int(end),
                     "depth_at_peak": per_step.loc[peak, "mean_depth"], "depth_at_end": per_step.loc[end, "mean_depth"],
                     "accuracy_at_peak": per_step.loc[peak, "accuracy"], "accuracy_at_end": per_step.loc[end, "accuracy"],
                     "depth_drop": per_step.loc[peak, "mean_depth"] - per_step.loc[end, "mean_depth"]})
    return pd.DataFrame(rows)


def plot_progression(frame: pd.DataFrame, path=None, title: str = "", names: dict | None = None):
    """Figs. 4–5 style: one row per label, accuracy (left) and d̄ (right) against the step, one line per
    knob value (darker = harder). names: {run: label} for the row titles; runs given one label (the
    seeds of one variant) share a row: their mean as the line, their min–max as a band."""
    import matplotlib.pyplot as plt

    from ..display.plots import finish_figure

    check_frame(frame)
    labels = frame["run"].map(lambda run: (names or {}).get(run, run))
    rows = list(dict.fromkeys(labels))
    fig, axes = plt.subplots(len(rows), 2, figsize=(9, 2.6 * len(rows)), squeeze=False, sharex="row")
    for (ax_acc, ax_d), label in zip(axes, rows):
        g = frame[labels == label]
        several = g["run"].nunique() > 1
        knobs = sorted(set(g["knob"]))
        colors = plt.cm.viridis(np.linspace(0.9, 0.1, len(knobs)))
        for color, knob in zip(colors, knobs):
            k = g[g["knob"] == knob].groupby("step")[["accuracy", "mean_depth"]].agg(["mean", "min", "max"])
            for ax, value, scale in ((ax_acc, "accuracy", 100), (ax_d, "mean_depth", 1)):
                ax.plot(k.index, scale * k[(value, "mean")], color=color, marker=".", label=str(knob))
                if several:
                    ax.fill_between(k.index, scale * k[(value, "min")], scale * k[(value, "max")], color=color,
                                    alpha=0.15, lw=0)
        if several:
            label = f"{label} ({g['run'].nunique()} runs: mean, min–max)"
        ax_acc.set(ylabel="accuracy (%)", title=label, ylim=(-2, 102))
        ax_d.set(ylabel="d̄ (answer tokens)", title=label)
        ax_d.legend(title="knob", fontsize=7, ncol=2)
        for ax in (ax_acc, ax_d):
            ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("training step")
    if title:
        fig.suptitle(title)
    return finish_figure(fig, path)


def over_seeds(table: pd.DataFrame, by: list[str], values) -> pd.DataFrame:
    """Per group of `by` (e.g. task, decider): mean, min, max and s.d. over the training seeds of each of
    `values` in a per-run table (first_step_reaching or two_phases), and `seeds`, the runs counted.
    A value a run never reached (NaN first_step) is left out of that group's statistics."""
    from ..results import seed_spread

    missing = [c for c in by if c not in table.columns]
    if missing:
        raise ValueError(f"the table has no column(s) {missing}; pass a per-run table from first_step_reaching "
                         "or two_phases of a checkpoint evaluation (evaluate_checkpoints writes task and train_seed).")
    return seed_spread(table, by, values=values)


def training_dynamics(run_dirs, level: float = 0.9, **evaluate_kw) -> dict[str, pd.DataFrame]:
    """Everything notebook 08 prints, in one call: the checkpoint evaluation of each run (resumed where
    it stopped), the first step to `level` per knob and the two-phase numbers per run (one row per run,
    so per seed), and the same two over seeds (`first_steps_over_seeds`, `phases_over_seeds`: mean and
    min–max per task × decider)."""
    from ..evaluation.checkpoint_eval import evaluate_runs

    frame = evaluate_runs(run_dirs, **evaluate_kw)
    first, phases = first_step_reaching(frame, level), two_phases(frame)
    return {"frame": frame, "first_steps": first, "phases": phases,
            "first_steps_over_seeds": over_seeds(first, ["task", "decider", "knob"], ["first_step"]),
            "phases_over_seeds": over_seeds(phases, ["task", "decider"],
                                            ["peak_step", "depth_at_peak", "depth_at_end", "depth_drop",
                                             "accuracy_at_peak", "accuracy_at_end"])}
