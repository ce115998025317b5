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
                         "evaluation (anira_lib.checkpoint_eval.evaluate_checkpoints).")


def first_step_reaching(frame: pd.DataFrame, level: float = 0.9) -> pd.DataFrame:
    """Per run and knob: the first evaluated step with accuracy ≥ `level` (NaN: never), and per run the
    Spearman correlation of that step with the knob over the knobs that reached it (`spearman`)."""
    check_frame(frame)
    rows = []
    for (run, knob), g in frame.groupby(["run", "knob"], sort=True):
        reached = g[g["accuracy"] >= level]["step"]
        rows.append({"run": run, "decider": g["decider"].iloc[0], "knob": knob, "level": level,
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
        rows.append({"run": run, "decider": g["decider"].iloc[0], "peak_step": int(peak), "last_step": int(end),
                     "depth_at_peak": per_step.loc[peak, "mean_depth"], "depth_at_end": per_step.loc[end, "mean_depth"],
                     "accuracy_at_peak": per_step.loc[peak, "accuracy"], "accuracy_at_end": per_step.loc[end, "accuracy"],
                     "depth_drop": per_step.loc[peak, "mean_depth"] - per_step.loc[end, "mean_depth"]})
    return pd.DataFrame(rows)


def plot_progression(frame: pd.DataFrame, path=None, title: str = "", names: dict | None = None):
    """Figs. 4–5 style: one row per run, accuracy (left) and d̄ (right) against the step, one line per
    knob value (darker = harder). names: {run: label} for the row titles."""
    import matplotlib.pyplot as plt

    from .plots import _finish

    check_frame(frame)
    runs = list(dict.fromkeys(frame["run"]))
    fig, axes = plt.subplots(len(runs), 2, figsize=(9, 2.6 * len(runs)), squeeze=False, sharex="row")
    for (ax_acc, ax_d), run in zip(axes, runs):
        g = frame[frame["run"] == run]
        knobs = sorted(set(g["knob"]))
        colors = plt.cm.viridis(np.linspace(0.9, 0.1, len(knobs)))
        for color, knob in zip(colors, knobs):
            k = g[g["knob"] == knob].sort_values("step")
            ax_acc.plot(k["step"], 100 * k["accuracy"], color=color, marker=".", label=str(knob))
            ax_d.plot(k["step"], k["mean_depth"], color=color, marker=".", label=str(knob))
        label = (names or {}).get(run, run)
        ax_acc.set(ylabel="accuracy (%)", title=label, ylim=(-2, 102))
        ax_d.set(ylabel="d̄ (answer tokens)", title=label)
        ax_d.legend(title="knob", fontsize=7, ncol=2)
        for ax in (ax_acc, ax_d):
            ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("training step")
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def training_dynamics(run_dirs, level: float = 0.9, **evaluate_kw) -> dict[str, pd.DataFrame]:
    """Everything notebook 08 prints, in one call: the checkpoint evaluation of each run (resumed where
    it stopped), the first step to `level` per knob and the two-phase numbers per run."""
    from .checkpoint_eval import evaluate_runs

    frame = evaluate_runs(run_dirs, **evaluate_kw)
    return {"frame": frame, "first_steps": first_step_reaching(frame, level), "phases": two_phases(frame)}
