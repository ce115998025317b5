"""Accuracy and d̄ per knob at every kept checkpoint of a run: the input of the training dynamics
(paper Figs. 4–5; the authors' eval_checkpoints).

A run trained with `keep_checkpoints=true` holds `out_dir/checkpoints/step_XXXXXXX/` (a model
snapshot per `checkpoint_every` steps). `evaluate_checkpoints(run_dir)` evaluates each one with
`evaluate_knobs` into `out_dir/checkpoint_eval.csv`: one row per step × knob (run, task, decider,
train_seed, step, the evaluation settings, knob, n, accuracy, mean_depth, mean_expected_depth), written
atomically after every checkpoint.
A killed evaluation resumes: steps already in the file are skipped, none is written twice.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .evaluate import evaluate_knobs
from ..modeling.saved_model import check_saved_model, load_saved_model
from ..progress import progress_bar
from ..results import read_frame, rows_frame, write_frame
from ..training.run_config import TrainConfig
from ..training.run_dir import lock_run_dir, own_file

EVAL_FILE = "checkpoint_eval.csv"
SNAPSHOT_FIX = "delete that snapshot folder (the others are evaluated), or train the run again"
SETTINGS = ("n_per_knob", "seed", "depth_rule")  # what a resumed evaluation must share with the file


class CheckpointError(ValueError):
    """A run directory whose checkpoints cannot be evaluated as asked; the message says why and what to do."""


def run_config(run_dir: str | Path) -> TrainConfig:
    """The TrainConfig a run was trained with (its `train_config.yaml`)."""
    run_dir = Path(run_dir)
    path = run_dir / "train_config.yaml"
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} does not exist; pass the out_dir of a training run.")
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a training run (no train_config.yaml); pass the out_dir of a "
                              "run trained with anira_lib.training.train.")
    return TrainConfig.load(path)


def kept_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, snapshot directory) of every kept checkpoint, by step."""
    run_dir = Path(run_dir)
    found = sorted((int(p.name.removeprefix("step_")), p) for p in (run_dir / "checkpoints").glob("step_*")
                   if p.is_dir() and p.name.removeprefix("step_").isdigit() and (p / "config.json").is_file())
    if not found:
        raise CheckpointError(f"{run_dir} has no kept checkpoints (no checkpoints/step_*/ model snapshots); "
                              "train it with keep_checkpoints=true to keep one every checkpoint_every steps.")
    return found


def evaluate_checkpoints(run_dir: str | Path, knobs=None, n_per_knob: int = 200, seed: int = 1234,
                         task: str | None = None, depth_rule: str | None = None, batch_size: int = 256,
                         out_path: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """Evaluate every kept checkpoint of `run_dir` on `knobs` (default: the task's training knobs).

    task: the task the caller expects (an error if the run trained another). Rows go to `out_path`
    (default run_dir/checkpoint_eval.csv); steps already there are skipped. Returns the whole frame."""
    from ..tasks import get_task

    run_dir = Path(run_dir)
    cfg = run_config(run_dir)
    if task is not None and task != cfg.task:
        raise CheckpointError(f"{run_dir} holds checkpoints of task {cfg.task!r}, not {task!r}; pass a "
                              f"{task} run, or task={cfg.task!r}.")
    kept_checkpoints(run_dir)  # none kept: said before anything is locked or written
    sampler = get_task(cfg.task, seed=cfg.seed, **cfg.task_args)
    knobs = list(knobs) if knobs is not None else sampler.train_knobs
    out_path = Path(out_path) if out_path is not None else run_dir / EVAL_FILE
    # the run's own lock (training or its --overwrite cannot delete the snapshots being read), and the
    # results file's when it lies outside the run
    locks = [lock_run_dir(run_dir, writer="checkpoint evaluation")]
    try:
        if out_path.parent.resolve() == run_dir.resolve():
            own_file(run_dir, out_path.name)  # --overwrite of the run deletes its evaluations too
        else:
            locks.append(lock_run_dir(out_path.parent, name=f".{out_path.name}.lock", writer="checkpoint evaluation"))
    except BaseException:
        locks[0].release()
        raise
    try:  # one writer per evaluation file; what a killed write left of it goes
        for stale in out_path.parent.glob(f".{out_path.name}.*.tmp"):
            stale.unlink()
        frame = read_frame(out_path)
        settings = {"n_per_knob": n_per_knob, "seed": seed, "depth_rule": depth_rule or "default"}
        if len(frame):
            _check_same_evaluation(frame, settings, knobs, out_path)
            for i, (column, value) in enumerate((("task", cfg.task), ("train_seed", cfg.seed))):
                if column not in frame.columns:  # a file from before these columns: they are the run's
                    frame.insert(1 + 2 * i, column, value)
        done = set(frame["step"]) if len(frame) else set()
        todo = [(step, path) for step, path in kept_checkpoints(run_dir) if step not in done]
        for step, path in todo:  # every snapshot looked at before the first is evaluated
            check_saved_model(path, what=f"snapshot {path}", fix=SNAPSHOT_FIX, error=CheckpointError)
        for step, path in progress_bar(todo, desc=f"checkpoints {run_dir.name}", disable=not progress):
            model = load_saved_model(path, what=f"snapshot {path}", fix=SNAPSHOT_FIX, error=CheckpointError).eval()
            rows = evaluate_knobs(model, sampler, knobs, n_per_knob=n_per_knob, seed=seed, batch_size=batch_size,
                                  depth_rule=depth_rule, progress=False)
            new = rows_frame(rows, run=str(run_dir), task=cfg.task, decider=cfg.decider, train_seed=cfg.seed,
                             step=step, **settings)
            frame = new if not len(frame) else pd.concat([frame, new], ignore_index=True)
            write_frame(frame, out_path)
    finally:
        for lock in reversed(locks):
            lock.release()
    return frame.sort_values(["step", "knob"], kind="stable").reset_index(drop=True)


def _check_same_evaluation(frame: pd.DataFrame, settings: dict, knobs, path: Path) -> None:
    """Resuming adds rows to a file only if they were computed the same way."""
    missing = [c for c in ("step", "knob", *SETTINGS) if c not in frame.columns]
    if missing:
        raise CheckpointError(f"{path} is not a checkpoint evaluation (no column(s) {missing}); delete it or "
                              "pass another out_path.")
    for name, value in settings.items():
        have = sorted(map(str, set(frame[name])))
        if have != [str(value)]:
            raise CheckpointError(f"{path} was evaluated with {name}={', '.join(have)}, not {value}; pass the "
                                  "same settings to resume it, or delete it to start over.")
    if sorted(map(str, set(frame["knob"]))) != sorted(map(str, knobs)):
        raise CheckpointError(f"{path} covers knobs {sorted(set(frame['knob']))}, not {list(knobs)}; pass the "
                              "same knobs to resume it, or delete it to start over.")


def evaluate_runs(run_dirs, **kw) -> pd.DataFrame:
    """`evaluate_checkpoints` of several runs, one frame (column `run` tells them apart)."""
    return pd.concat([evaluate_checkpoints(d, **kw) for d in run_dirs], ignore_index=True)


def main(argv=None):
    """`anira evaluate --checkpoints RUN_DIR ...` (or `python -m anira_lib.evaluation.checkpoint_eval`): every kept
    checkpoint of each run."""
    import argparse

    from ..cli import one_line_errors, program_name

    p = argparse.ArgumentParser(prog=program_name("anira_lib.evaluation.checkpoint_eval"), description="Accuracy and d̄ per knob at every kept checkpoint of a run "
                                            f"(resumable; rows in RUN_DIR/{EVAL_FILE}).")
    p.add_argument("--checkpoints", nargs="+", required=True, metavar="RUN_DIR",
                   help="run directories trained with keep_checkpoints=true")
    p.add_argument("--knobs", nargs="+", type=int, help="knob values (default: the task's training knobs)")
    p.add_argument("--n-per-knob", type=int, default=200, help="evaluation examples per knob value")
    p.add_argument("--seed", type=int, default=1234, help="seed of the evaluation sets")
    p.add_argument("--task", help="the task the runs must have trained (an error otherwise)")
    p.add_argument("--depth-rule", help="inference depth rule (default: the decider's)")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    args = p.parse_args(argv)
    for run_dir in args.checkpoints:
        with one_line_errors("anira evaluate", args.debug, hint=""):
            frame = evaluate_checkpoints(run_dir, knobs=args.knobs, n_per_knob=args.n_per_knob, seed=args.seed,
                                         task=args.task, depth_rule=args.depth_rule)
        wide = frame.pivot_table(index="step", columns="knob", values=["accuracy", "mean_depth"])
        print(f"{run_dir} ({frame['decider'].iloc[0]}): {frame['step'].nunique()} checkpoints -> "
              f"{Path(run_dir) / EVAL_FILE}\n{wide.round(3).to_string()}")


if __name__ == "__main__":
    main()
