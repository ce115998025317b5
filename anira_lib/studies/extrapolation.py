"""Length extrapolation (paper §6.3, Fig. 9): ANIRA-E, ANIRA-O and both baselines trained on knob values
up to L_train with the same settings, evaluated past it.

`compare_extrapolation` is `compare_deciders` with the four variants (`EXTRAPOLATION_VARIANTS`; the
baselines' learning rate may differ, as in the paper) and fixed-1, the one-iteration model that says
whether depth is needed inside the training range, over knobs 1..eval_max, after checking that the
task's sampler can draw eval_max. `past_training` reads the answer: accuracy per knob beyond L_train.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..analysis.depth_necessity import DEPTH_BASELINES, SHALLOW
from .experiments import BASELINES, VARIANTS, Comparison, compare_deciders


def extrapolation_knobs(task_name: str, task_args: dict, eval_max: int) -> list[int]:
    """Knobs 1..eval_max, or an error if the task's sampler cannot draw eval_max."""
    from ..tasks import get_task

    task = get_task(task_name, **task_args)
    limit = task.max_knob
    if limit is None:
        raise ValueError(f"task {task_name!r} states no largest knob its sampler can draw, so extrapolation "
                         "past training is not defined for it here; use mano.")
    if not 1 <= eval_max <= limit:
        raise ValueError(f"{task_name} cannot sample knob {eval_max}: its sampler supports 1..{limit}; "
                         f"pass eval_max <= {limit}.")
    return list(range(1, eval_max + 1))


def compare_extrapolation(settings: dict, train_max: int, eval_max: int, out_dir: str | Path,
                          baseline_lr: float | None = None, seeds: list[int] | None = None,
                          eval_per_knob: int = 200, figure_path: str | Path | None = None,
                          processes: int = 2) -> Comparison:
    """Train the four models on knobs 1..train_max (settings' task_args get max_ops = train_max) and
    evaluate each on 1..eval_max. baseline_lr: the baselines' learning rate (None: settings' lr)."""
    task_args = {**settings.get("task_args", {}), "max_ops": train_max}
    knobs = extrapolation_knobs(settings.get("task", "mano"), task_args, eval_max)
    lr = {"lr": baseline_lr} if baseline_lr is not None else {}
    baselines = {**BASELINES, SHALLOW: DEPTH_BASELINES[SHALLOW]}  # fixed-1: is depth needed inside L_train?
    variants = {**VARIANTS, **{name: {**spec, **lr} for name, spec in baselines.items()}}
    return compare_deciders({**settings, "task_args": task_args}, knobs, out_dir, eval_per_knob=eval_per_knob,
                            knob_label="number of operators ℓ", title=f"Extrapolation: trained on ℓ ≤ {train_max}",
                            figure_path=figure_path, processes=processes, train_max=train_max, variants=variants,
                            seeds=seeds)


def past_training(comparison: Comparison, train_max: int) -> pd.DataFrame:
    """Accuracy and d̄ per variant and knob past L_train (mean over seeds), with each variant's mean
    accuracy past L_train (`mean_past`): the most graceful model has the highest."""
    rows = [{"variant": name, **r} for name, rs in comparison.results.items() for r in rs if r["knob"] > train_max]
    frame = pd.DataFrame(rows)[["variant", "knob", "accuracy", "mean_depth"]]
    frame["mean_past"] = frame.groupby("variant")["accuracy"].transform("mean")
    return frame
