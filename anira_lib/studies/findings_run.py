"""`make findings`: train what the verdicts need over seeds, then write the verdict table.

A findings file (`configs/studies/findings.yaml`) lists studies. A `knobs` study trains ANIRA-E, ANIRA-O,
fixed-1 and fixed-D per seed (`compare_deciders`), and optionally sweeps ANIRA-O's threshold τ
(`pareto: true`) and evaluates kept checkpoints (`dynamics: true`); an `extrapolation` study trains
the four Fig. 9 models plus fixed-1 on knobs up to train_max and evaluates past it. Every run is
resumed where it stopped, so a kill loses at most the steps since the run's last checkpoint.

`verdicts(path, out_root)` recomputes the verdict frame from the run folders without training;
`write_report` writes it as `docs/findings.md` with the depth-necessity tables, the figures and the
date, machine and commit it ran on.

    python -m anira_lib.studies.findings_run configs/studies/findings.yaml [--only mano,depo] [--out-root runs/findings]
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from ..cli import program_name
from ..analysis.depth_necessity import DEPTH_BASELINES, depth_necessity, summarize_necessity
from .experiments import BASELINES, VARIANTS, compare_deciders
from ..analysis.findings import (O, claim_row, comparison_rows, dynamics_by_seed, extrapolation_rows, need_by_seed,
                       not_measured, read_comparison, tau_trade_by_seed, tracking_by_seed, verdict_table)
from ..results import markdown_table, read_frame, write_frame

KINDS = ("knobs", "extrapolation")
STUDY_KEYS = {"kind", "task", "knobs", "knob_label", "eval_per_knob", "settings", "pareto", "dynamics",
              "train_max", "eval_max", "note", "optional"}  # optional: run only when --only names it
ALL_VARIANTS = {**VARIANTS, **DEPTH_BASELINES}


def load_plan(path: str | Path) -> dict:
    """A findings file: {seeds: [...], studies: {name: spec}}, checked key by key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"findings file {path} not found; the shipped one is configs/studies/findings.yaml.")
    plan = yaml.safe_load(path.read_text()) or {}
    if not isinstance(plan, dict) or set(plan) - {"seeds", "studies"} or "studies" not in plan:
        raise ValueError(f"{path} must hold 'seeds' (a list) and 'studies' (name: spec); got {sorted(plan)}.")
    for name, spec in plan["studies"].items():
        unknown = set(spec) - STUDY_KEYS
        if unknown or spec.get("kind") not in KINDS or "task" not in spec or "settings" not in spec:
            raise ValueError(f"study {name!r} in {path}: needs kind ({' or '.join(KINDS)}), task and settings; "
                             f"unknown keys {sorted(unknown)}." if unknown else
                             f"study {name!r} in {path}: needs kind ({' or '.join(KINDS)}), task and settings.")
    plan.setdefault("seeds", [0, 1, 2])
    return plan


def _settings(spec: dict) -> dict:
    settings = {**spec["settings"], "task": spec["task"]}
    if spec.get("dynamics"):  # snapshots for the checkpoint evaluation: eight per run
        settings.update(keep_checkpoints=True, checkpoint_every=max(settings.get("steps", 1000) // 8, 1))
    return settings


def run_study(name: str, spec: dict, seeds, out_root: str | Path, processes: int = 2,
              figure_dir: str | Path | None = None) -> None:
    """Train and evaluate one study into `out_root/name/` (resuming whatever is there)."""
    out = Path(out_root) / name
    figure = Path(figure_dir) / f"findings_{name}.png" if figure_dir else None
    label = spec.get("knob_label", "knob")
    if spec["kind"] == "extrapolation":
        from .extrapolation import compare_extrapolation

        settings = {**_settings(spec), "task_args": {**spec["settings"].get("task_args", {})}}
        compare_extrapolation(settings, spec["train_max"], spec["eval_max"], out, seeds=list(seeds),
                              eval_per_knob=spec.get("eval_per_knob", 200), figure_path=figure, processes=processes)
        return
    comparison = compare_deciders(_settings(spec), spec["knobs"], out, eval_per_knob=spec.get("eval_per_knob", 200),
                                  knob_label=label, title=f"{name}: {len(seeds)} seeds (mean, min–max)",
                                  figure_path=figure, processes=processes, variants=ALL_VARIANTS, seeds=list(seeds))
    if spec.get("pareto"):
        from ..analysis.pareto import TAUS, pareto_sweep

        path, done = out / "pareto.csv", read_frame(out / "pareto.csv")
        frames = [done] if len(done) else []
        for seed, runs in comparison.runs_by_seed.items():
            if len(done) and seed in set(done["seed"]):
                continue
            run = runs["ANIRA-O"]
            sweep = pareto_sweep(run.model, run.task, spec["knobs"], rules=(), taus=TAUS,
                                 n_per_knob=spec.get("eval_per_knob", 200), decode_rounds=0, progress=False)
            frames.append(sweep.assign(seed=seed))
            write_frame(pd.concat(frames, ignore_index=True), path)  # per seed: a kill keeps the seeds done
    if spec.get("dynamics"):
        from ..evaluation.checkpoint_eval import evaluate_runs

        runs = [out / f"seed_{s}" / d for s in seeds for d in ("early", "online")]
        evaluate_runs(runs, knobs=spec["knobs"], n_per_knob=min(spec.get("eval_per_knob", 200), 100),
                      task=spec["task"], progress=False)


def study_rows(name: str, spec: dict, out_root: str | Path) -> list[dict]:
    """The verdict rows one study's run folder supports (read back, no training)."""
    out = Path(out_root) / name
    if spec["kind"] == "extrapolation":
        variants = [*VARIANTS, *BASELINES]
        frame = read_comparison(out, spec["task"], variants)
        return extrapolation_rows(frame, spec["train_max"], f"{name} (L_train = {spec['train_max']})")
    frame = read_comparison(out, spec["task"], list(ALL_VARIANTS))
    rows = comparison_rows(frame, name)
    condition = summarize_necessity(depth_necessity(frame))
    rows += allocation_rows(out, name, condition)
    if spec.get("pareto"):
        sweep = read_frame(out / "pareto.csv")
        rows.append(claim_row("tau_trades", tau_trade_by_seed(sweep), f"{name}, {O}", condition) if len(sweep)
                    else not_measured("tau_trades", name, f"{out / 'pareto.csv'} missing: run the study"))
    if spec.get("dynamics"):
        files = sorted(out.glob("seed_*/*/checkpoint_eval.csv"))
        if files:
            dyn = dynamics_by_seed(pd.concat([pd.read_csv(f) for f in files], ignore_index=True))
            rows.append(claim_row("easy_to_hard", dyn["easy_to_hard"], f"{name}, E and O", condition))
            rows.append(claim_row("two_phases", dyn["depth_drop"], f"{name}, E and O", condition))
        else:
            rows += [not_measured(c, name, "no checkpoint evaluations: run the study") for c in ("easy_to_hard", "two_phases")]
    return rows


def allocation_rows(out: Path, name: str, condition: str) -> list[dict]:
    """The per-token claims from a study's allocation dumps (format 3): need rises with the knob
    (fixed-D's sufficient depths) and allocation tracks need (E's and O's)."""
    from ..evaluation.explorer import load_dump

    def by_seed(variant_dir):
        paths = {int(p.parent.name.removeprefix("seed_")): p for p in sorted(out.glob(f"seed_*/allocations_{variant_dir}.jsonl"))}
        return {seed: load_dump(p) for seed, p in paths.items()}

    fixed = by_seed("fixed-d")
    if not fixed or any("iteration_correct" not in recs[0] for recs in fixed.values()):
        why = "no allocation dumps with the per-iteration view (format 3): run the study again to re-evaluate"
        return [not_measured("need_rises", name, why), not_measured("allocation_tracks_need", name, why)]
    rows = [claim_row("need_rises", need_by_seed(fixed), f"{name}, fixed-D", condition)]
    for variant, vdir in (("ANIRA-E", "early"), (O, "online")):
        rows.append(claim_row("allocation_tracks_need", tracking_by_seed(by_seed(vdir)), f"{name}, {variant}", condition))
    return rows


UNMEASURED = {  # claims no study measures yet, and why
    "clrs_unseen_drop": "CLRS-Text: notebook 05 (one seed); not in make findings yet",
    "brevo_e_structural": "BREVO ΔR²: notebook 12 (one seed); not in make findings yet",
    "mano_parse_state": "MANO parse state: notebook 11 (one seed); not in make findings yet",
    "table1_signs": "LANO Table 1: notebooks 04 / 06 (one seed); not in make findings yet",
}


def selected(plan: dict, only=None) -> list[str]:
    """The studies a run covers: those `only` names, else every study not marked `optional: true` (an
    optional study takes too long for the two-hour budget and runs when named)."""
    return list(only) if only else [name for name, spec in plan["studies"].items() if not spec.get("optional")]


def verdicts(path: str | Path, out_root: str | Path = "runs/findings", only=None) -> pd.DataFrame:
    """The verdict frame from the run folders of a findings file (no training): one row per claim × scope."""
    plan = load_plan(path)
    only = selected(plan, only)
    rows = []
    for name, spec in plan["studies"].items():
        if name not in only:
            continue
        rows += study_rows(name, spec, out_root)
    measured = {r["claim"] for r in rows}
    rows += [not_measured(c, "—", why) for c, why in UNMEASURED.items() if c not in measured]
    return verdict_table(rows)


def necessity_tables(path: str | Path, out_root: str | Path = "runs/findings", only=None) -> dict[str, pd.DataFrame]:
    """{study: depth_necessity table} of every knobs study in the findings file."""
    plan = load_plan(path)
    only = selected(plan, only)
    return {name: depth_necessity(read_comparison(Path(out_root) / name, spec["task"], list(DEPTH_BASELINES)))
            for name, spec in plan["studies"].items() if spec["kind"] == "knobs" and name in only}


def write_report(table: pd.DataFrame, necessity: dict[str, pd.DataFrame], path: str | Path, *, wall_s: float | None,
                 seeds, figures: list[Path], plan_path: str | Path, skipped=()) -> Path:
    """docs/findings.md: when, where and on which commit it ran, the verdict table, the rule, the
    depth-necessity table of each study and the figures (paths relative to the report). skipped: the
    studies of the plan this report leaves out (--only), named in its header."""
    from .calibration import commit, machine
    from ..analysis.findings import RULE
    from ..files import atomic_write_text

    path = Path(path)
    took = f"{wall_s / 60:.0f} min" if wall_s is not None else "verdicts recomputed from existing runs"
    shown = table.assign(value=table["value"].round(3), low=table["low"].round(3), high=table["high"].round(3))
    parts = [
        "# Findings: the paper's claims at CPU scale",
        "",
        f"Generated by `make findings` ({plan_path}) on {datetime.date.today().isoformat()}, {machine()}, commit "
        f"{commit()}, seeds {list(seeds)}, {took}. Do not edit by hand: run it again.",
        *(["", f"**Partial:** this report leaves out the plan's studies {', '.join(skipped)} (optional ones, or "
               "not named by --only; `--only NAME` runs one)."] if skipped else []),
        "",
        f"Verdict rule: {RULE}. Intervals are Student t over seeds (each seed's statistic averages its own "
        "evaluation examples). The condition column says where depth is needed at all (fixed-D − fixed-1 accuracy, "
        "paired by seed: needed when the interval is above 0 and the mean gap is at least 0.15; helps when the interval is above 0, whatever the size).",
        "",
        markdown_table(shown[["claim", "scope", "value", "low", "high", "seeds", "verdict", "condition"]]),
        "",
        "## The claims",
        "",
        markdown_table(table[["claim", "paper", "statistic"]].drop_duplicates("claim")),
        "",
    ]
    for name, nec in necessity.items():
        parts += [f"## Is depth needed? {name}", "", markdown_table(nec.round(3)), ""]
    for fig in figures:
        parts += [f"![{fig.stem}]({os.path.relpath(Path(fig).resolve(), path.parent.resolve())})", ""]
    atomic_write_text(path, "\n".join(parts))
    return path


README_BEGIN, README_END = "<!-- findings: generated by make findings -->", "<!-- /findings -->"


def update_readme(table: pd.DataFrame, readme: str | Path, report: str | Path, skipped=()) -> bool:
    """Replace the README's block between README_BEGIN and README_END with the verdict table (one
    row per claim and scope; the interval and condition are in the report). False if there is no block."""
    from ..files import atomic_write_text

    readme = Path(readme)
    text = readme.read_text() if readme.is_file() else ""
    if README_BEGIN not in text or README_END not in text:
        return False
    head, rest = text.split(README_BEGIN, 1)
    tail = rest.split(README_END, 1)[1]
    shown = table.assign(value=[f"{v:.2f} [{lo:.2f}, {hi:.2f}]" if hi == hi else ("—" if v != v else f"{v:.2f}")
                                for v, lo, hi in zip(table["value"], table["low"], table["high"])])
    body = markdown_table(shown[["claim", "scope", "value", "seeds", "verdict", "condition"]])
    link = os.path.relpath(Path(report).resolve(), readme.parent.resolve())
    partial = f" Partial: the studies {', '.join(skipped)} were not run." if skipped else ""
    atomic_write_text(readme, f"{head}{README_BEGIN}\n{body}\n\nIntervals, conditions and figures: [{link}]({link}).{partial}\n"
                              f"{README_END}{tail}")
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=program_name("anira_lib.studies.findings_run"), description=__doc__.split("\n\n")[0])
    parser.add_argument("file", nargs="?", default="configs/studies/findings.yaml")
    parser.add_argument("--only", default="", help="comma-separated study names (default: all)")
    parser.add_argument("--out-root", default="runs/findings")
    parser.add_argument("--report", default="docs/findings.md")
    parser.add_argument("--figure-dir", default="docs/figures")
    parser.add_argument("--readme", default="README.md", help="README whose findings block is rewritten")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--report-only", action="store_true", help="no training: verdicts from the runs there")
    args = parser.parse_args(argv)
    try:
        plan = load_plan(args.file)
        only = [s for s in args.only.split(",") if s]
        unknown = [s for s in only if s not in plan["studies"]]
        if unknown:
            raise ValueError(f"no study {unknown} in {args.file}; it has {sorted(plan['studies'])}.")
        only = selected(plan, only)  # without --only: every study but the optional ones
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    start = time.time()
    if not args.report_only:
        for name, spec in plan["studies"].items():
            if name in only:
                print(f"== study {name} ({spec['kind']}, {spec['task']})", file=sys.stderr)
                run_study(name, spec, plan["seeds"], args.out_root, args.processes, args.figure_dir)
    table = verdicts(args.file, args.out_root, only)
    necessity = necessity_tables(args.file, args.out_root, only)
    figures = sorted(Path(args.figure_dir).glob("findings_*.png"))
    wall_s = None if args.report_only else time.time() - start
    skipped = [name for name in plan["studies"] if name not in only]
    figures = [f for f in figures if f.stem.removeprefix("findings_") not in skipped]
    report = write_report(table, necessity, args.report, wall_s=wall_s, seeds=plan["seeds"],
                          figures=figures, plan_path=args.file, skipped=skipped)
    with pd.option_context("display.width", 220, "display.max_columns", 12, "display.max_colwidth", 60):
        print(table[["claim", "scope", "value", "low", "high", "seeds", "verdict"]].round(3).to_string(index=False))
    print(f"report: {report}" + (f"; {args.readme}'s findings block updated" if update_readme(table, args.readme, report, skipped) else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
