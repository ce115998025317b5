"""Calibration of CPU defaults: screen a candidate setting as fixed-1 against fixed-D over seeds.

A candidate (a named entry of `configs/studies/calibration.yaml`: task, knob values, TrainConfig settings)
is worth training ANIRA-E and ANIRA-O on only where depth is needed (`depth_necessity`). Every
screen appends its per-seed rows to `data/calibration/<task>.csv` with the settings, the machine,
the commit and the training time, so the choice of a default can be audited later.

    python -m anira_lib.studies.calibration configs/studies/calibration.yaml depo_n8_k4_d4 --seeds 0,1,2
    python -m anira_lib.studies.calibration configs/studies/calibration.yaml --report docs/calibration.md

`summary` and `write_report` turn the stored tables into one row per candidate × knob: both
baselines' accuracy over seeds, the paired gap with its interval, whether depth is needed there, and
the median training time of each baseline.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from ..cli import program_name
from ..analysis.depth_necessity import DEEP, DEPTH_BASELINES, SHALLOW, depth_necessity, summarize_necessity
from .experiments import compare_deciders
from ..results import markdown_table, read_frame, write_frame

TABLE_DIR = Path("data/calibration")
CANDIDATE_KEYS = {"task", "knobs", "settings", "eval_per_knob", "note", "result"}  # result: what was concluded


def machine() -> str:
    """The CPU's model name (what compiled kernels follow), e.g. 'AMD EPYC' or 'Intel Xeon ...'."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def commit() -> str:
    """The repository's short commit hash ('unknown' outside a git checkout), '+' if the tree is dirty."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
        return head.stdout.strip() + ("+" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load_candidates(path: str | Path) -> dict[str, dict]:
    """The candidates of a calibration file: {name: {task, knobs, settings, eval_per_knob, note}}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration file {path} not found; the shipped one is configs/studies/calibration.yaml.")
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} must map candidate names to their settings, got {type(loaded).__name__}.")
    for name, spec in loaded.items():
        unknown = set(spec) - CANDIDATE_KEYS if isinstance(spec, dict) else {"(not a mapping)"}
        if unknown or not {"task", "knobs", "settings"} <= set(spec):
            raise ValueError(f"candidate {name!r} in {path}: keys must be task, knobs, settings (and optionally "
                             f"eval_per_knob, note, result); got {sorted(spec) if isinstance(spec, dict) else spec!r}.")
    return loaded


def screen(name: str, spec: dict, seeds=(0, 1, 2), out_root: str | Path = "runs/calibration",
           table_dir: str | Path = TABLE_DIR, processes: int = 2) -> pd.DataFrame:
    """Train fixed-1 and fixed-D of candidate `name` for each seed (resuming runs already there),
    evaluate per knob, append the rows to `table_dir/<task>.csv` (replacing this candidate's rows for
    these seeds) and return them: candidate, task, settings (JSON), machine, commit, date, variant,
    seed, knob, n, accuracy, mean_depth, train_s, steps."""
    settings = {**spec["settings"], "task": spec["task"]}
    start = time.time()
    comparison = compare_deciders(settings, spec["knobs"], Path(out_root) / name,
                                  eval_per_knob=spec.get("eval_per_knob", 200), processes=processes,
                                  variants=DEPTH_BASELINES, seeds=list(seeds))
    frame = comparison.frame.copy()
    seconds = {(seed, variant): run.metrics[-1]["elapsed_s"] if run.metrics else float("nan")
               for seed, runs in comparison.runs_by_seed.items() for variant, run in runs.items()}
    frame["train_s"] = [round(seconds[(s, v)], 3) for s, v in zip(frame["seed"], frame["variant"])]  # a tiny run: 0.04 s
    frame["steps"] = settings.get("steps")
    front = {"candidate": name, "task": spec["task"], "settings": json.dumps(spec["settings"], sort_keys=True),
             "machine": machine(), "commit": commit(), "date": datetime.date.today().isoformat()}
    for i, (column, value) in enumerate(front.items()):
        frame.insert(i, column, value)
    path = Path(table_dir) / f"{spec['task']}.csv"
    old = read_frame(path)
    if len(old):
        old = old[~((old["candidate"] == name) & old["seed"].isin(list(seeds)))]
    write_frame(pd.concat([old, frame], ignore_index=True), path)
    print(f"{name}: {len(seeds)} seeds in {time.time() - start:.0f} s -> {path}", file=sys.stderr)
    return frame


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate × knob of stored calibration rows: depth_necessity's columns, the seeds,
    and the median training seconds of each baseline (train_s fixed-1 / fixed-D)."""
    out = []
    for name, rows in table.groupby("candidate", sort=False):
        nec = depth_necessity(rows)
        times = rows.groupby("variant")["train_s"].median()
        nec.insert(0, "candidate", name)
        nec[f"train_s {SHALLOW}"] = times.get(SHALLOW, float("nan"))
        nec[f"train_s {DEEP}"] = times.get(DEEP, float("nan"))
        out.append(nec)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def write_report(candidates: dict, path: str | Path, table_dir: str | Path = TABLE_DIR) -> Path:
    """docs/calibration.md from the stored tables: per task, each screened candidate's settings, where
    and when it ran, and its depth-necessity rows (generated; the CSVs are the record)."""
    parts = ["# Calibration: where do the CPU-scale tasks need depth?", "",
             "Generated by `python -m anira_lib.studies.calibration configs/studies/calibration.yaml --report docs/calibration.md` "
             f"from `{table_dir}/*.csv`. Each candidate trains fixed-1 (one iteration of the recurrent block) and "
             "fixed-D (all D iterations) per seed; `gap` is fixed-D − fixed-1 accuracy, paired by seed, with its "
             "95% t interval over seeds; `needed` is yes when the interval is above 0 and the gap is at least 0.15.", ""]
    tables = {path_csv.stem: read_frame(path_csv) for path_csv in sorted(Path(table_dir).glob("*.csv"))}
    screened = {name for table in tables.values() for name in set(table["candidate"])}
    stopped = {}  # candidates with a result but no rows: screens stopped before they finished
    for name, spec in candidates.items():
        if name not in screened and spec.get("result"):
            stopped.setdefault(spec.get("task", "other"), []).append(name)
    for task in sorted(set(tables) | set(stopped)):
        table = tables.get(task)
        parts += [f"## {task}", ""]
        for name in stopped.get(task, []):
            spec = candidates[name]
            parts += [f"### {name} (stopped: no rows)", "", spec.get("note", ""), "", f"**Result:** {spec['result']}", "",
                      f"settings `{json.dumps(spec.get('settings', {}), sort_keys=True)}`.", ""]
        for name, rows in (table.groupby("candidate", sort=False) if table is not None else ()):
            spec = candidates.get(name, {})
            parts += [f"### {name}", "", spec.get("note", "(no longer in the candidates file)"), "",
                      *([f"**Result:** {spec['result']}", ""] if spec.get("result") else []),
                      f"settings `{rows['settings'].iloc[0]}`; {rows['machine'].iloc[0]}, {rows['date'].iloc[0]}, "
                      f"commit {rows['commit'].iloc[0]}; seeds {sorted(set(rows['seed']))}; "
                      f"{summarize_necessity(depth_necessity(rows))}.", "",
                      markdown_table(summary(rows).drop(columns="candidate").round(3)), ""]
    from ..files import atomic_write_text

    atomic_write_text(path, "\n".join(parts))
    return Path(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=program_name("anira_lib.studies.calibration"), description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="calibration candidates (YAML), e.g. configs/studies/calibration.yaml")
    parser.add_argument("names", nargs="*", help="candidate names to screen, in order")
    parser.add_argument("--report", default=None, help="write the calibration report (e.g. docs/calibration.md)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds (default 0,1,2)")
    parser.add_argument("--out-root", default="runs/calibration", help="where the runs go (resumed if there)")
    parser.add_argument("--table-dir", default=str(TABLE_DIR), help="where <task>.csv tables are appended")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        candidates = load_candidates(args.file)
        unknown = [n for n in args.names if n not in candidates]
        if unknown:
            raise ValueError(f"no candidate(s) {unknown} in {args.file}; it has {sorted(candidates)}.")
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.names and not args.report:
        print("error: name candidates to screen, or --report PATH to write the report.", file=sys.stderr)
        return 2
    for name in args.names:
        frame = screen(name, candidates[name], seeds, args.out_root, args.table_dir, args.processes)
        table = depth_necessity(frame)
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(f"\n{name} ({candidates[name]['task']}): {summarize_necessity(table)}")
            print(table.round(3).to_string(index=False))
    if args.report:
        print(f"report: {write_report(candidates, args.report, args.table_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
