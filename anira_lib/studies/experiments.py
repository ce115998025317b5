"""One call per paper comparison, so every number a notebook prints can be recomputed from Python.

`compare_deciders` trains ANIRA-E and ANIRA-O with the same settings, evaluates accuracy and
answer-token d̄ per knob value, dumps per-token allocations, and draws the Fig. 2 / Fig. 8 style plot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..evaluation.evaluate import depth_trend, evaluate_knobs, generation_validity, kl_to_exact, lm_token_stats
from ..files import atomic_write_json, atomic_write_npz
from ..display.plots import plot_knob_curves
from ..results import rows_frame, seed_spread, write_frame
from ..training.run_config import TrainConfig
from ..training.parallel_training import train_parallel
from ..training.train import TrainResult
from ..evaluation.sufficient_depth import allocation_efficiency
from ..variants import BASELINES, VARIANTS, variant_dir, variant_overrides

EXTRAPOLATION_VARIANTS = {**VARIANTS, **BASELINES}


@dataclass
class Comparison:
    """What `compare_deciders` returns. frame: one row per seed × variant × knob (the table to keep);
    results: {variant: rows} over seeds (mean; with several seeds also <value>_min / _max / _sd);
    runs: {variant: run} of the first seed, runs_by_seed: {seed: {variant: run}}."""
    runs: dict[str, TrainResult]
    results: dict[str, list[dict]]
    summary: dict
    figure: Path | None
    frame: "pd.DataFrame | None" = None
    runs_by_seed: dict | None = None

    def table(self) -> str:
        """Accuracy and d̄ per knob value, one column pair per variant."""
        names = list(self.results)
        lines = [f"{'knob':>5} " + " ".join(f"{n + ' acc':>12} {n + ' d̄':>11}" for n in names)]
        for i, row in enumerate(self.results[names[0]]):
            lines.append(f"{row['knob']:>5} " + " ".join(
                f"{self.results[n][i]['accuracy']:>12.3f} {self.results[n][i]['mean_depth']:>11.2f}" for n in names))
        for n in names:
            s = self.summary[n]
            lines.append(f"{n}: Spearman(knob, d̄) = {s['spearman_depth_vs_knob']:.2f}, "
                         f"lowest accuracy {s['min_accuracy']:.3f}, mean d̄ {s['mean_depth']:.2f}")
        return "\n".join(lines)


def train_variants(settings: dict, out_dir: str | Path, processes: int = 2,
                   variants: dict[str, str | dict] = VARIANTS) -> dict[str, TrainResult]:
    """Train one run per variant (TrainConfig fields in `settings`, then the variant's overrides) into
    `out_dir/<variant_dir>/`; a run already there (finished or killed) is resumed, so a notebook that
    dies loses no more than the steps since its last checkpoint."""
    configs = [variant_config(settings, out_dir, name, spec) for name, spec in variants.items()]
    return dict(zip(variants, train_parallel(configs, processes=processes, resume="auto")))


def variant_config(settings: dict, out_dir: str | Path, name: str, spec: str | dict) -> TrainConfig:
    """The TrainConfig of variant `name` (settings, then its overrides) in `out_dir/<variant_dir>/`."""
    return TrainConfig.from_dict({**settings, **variant_overrides(spec),
                                  "out_dir": str(Path(out_dir) / variant_dir(name, spec))})


def compare_deciders(settings: dict, knobs, out_dir: str | Path, eval_per_knob: int = 500,
                     knob_label: str = "knob", title: str = "", figure_path: str | Path | None = None,
                     processes: int = 2, train_max: int | None = None,
                     variants: dict[str, str | dict] = VARIANTS, seeds: list[int] | None = None) -> Comparison:
    """Train each variant with `settings` (TrainConfig fields) and compare them per knob value.

    variants: {name: decider or TrainConfig overrides}, e.g. EXTRAPOLATION_VARIANTS for Fig. 9.
    seeds: train every variant once per seed (None: settings' seed). Writes `out_dir/<variant_dir>/`
    runs (`out_dir/seed_<s>/...` with seeds), `allocations_<variant_dir>.jsonl` beside them,
    `out_dir/results.json`, `out_dir/results.csv` (the frame) and the figure (mean, min–max band)."""
    out_dir = Path(out_dir)
    seed_list = seeds if seeds is not None else [settings.get("seed", 0)]
    bases = {seed: out_dir / f"seed_{seed}" if seeds is not None else out_dir for seed in seed_list}
    configs = [variant_config({**settings, "seed": seed}, bases[seed], name, spec)
               for seed in seed_list for name, spec in variants.items()]
    # one pool for every seed x variant, longest runs first (more iterations, then fixed depth before
    # the adaptive models): the short ones (fixed-1) fill the gaps at the end instead of starting one
    order = sorted(range(len(configs)), key=lambda i: (-configs[i].max_depth, configs[i].decider != "none"))
    done = dict(zip(order, train_parallel([configs[i] for i in order], processes=processes, resume="auto")))
    trained = iter(done[i] for i in range(len(configs)))
    by_seed = {seed: {name: next(trained) for name in variants} for seed in seed_list}
    frames = []
    for seed, runs in by_seed.items():
        base = bases[seed]
        for name, run in runs.items():
            rows = evaluate_knobs(run.model, run.task, knobs, n_per_knob=eval_per_knob, variant=name,
                                  dump_path=base / f"allocations_{variant_dir(name, variants[name])}.jsonl")
            frames.append(rows_frame(rows, variant=name, seed=seed))
    frame = pd.concat(frames, ignore_index=True)
    stats = ("accuracy", "mean_depth", "mean_expected_depth")
    spread = seed_spread(frame, ["variant", "knob"], values=stats)
    spread["n"] = frame.groupby(["variant", "knob"], sort=False)["n"].first().to_numpy()  # examples per seed
    several = len(by_seed) > 1
    cols = ["knob", "n", *stats] + ([f"{v}_{s}" for v in stats for s in ("min", "max", "sd")] + ["seeds"]) * several
    results = {name: spread[spread["variant"] == name][cols].to_dict("records") for name in variants}
    summary = {name: {"rows": rows, "spearman_depth_vs_knob": depth_trend(rows),
                      "min_accuracy": min(r["accuracy"] for r in rows),
                      "mean_depth": sum(r["mean_depth"] for r in rows) / len(rows)}
               for name, rows in results.items()}
    atomic_write_json(out_dir / "results.json", summary)
    write_frame(frame, out_dir / "results.csv")
    figure = None
    if figure_path is not None:
        figure = Path(figure_path)
        plot_knob_curves(results, knob_label, title=title, train_max=train_max, path=figure)
    return Comparison(by_seed[next(iter(by_seed))], results, summary, figure, frame, by_seed)


def evaluate_lano(runs: dict[str, TrainResult], n_windows: int, out_dir: str | Path, generations: int = 16,
                  seed: int = 4321, proxy_cache: str | Path | None = "data/lano_proxies") -> dict:
    """LANO evaluation of each trained variant on `n_windows` held-out windows (paper §5.2):
    mean per-token expected depth, KL(exact next-token ‖ model) from the prefix parser, and the share of
    sampled sentences the grammar accepts. Writes `out_dir/lano_eval.npz` (windows, per-token expected
    depth per variant: the input of the Table 1 analysis), `out_dir/lano_summary.json` and the same
    windows' allocation dumps `out_dir/allocations_<variant_dir>.jsonl` (for the explorer); the summary also
    as a frame, `out_dir/lano_summary.csv` (one row per variant)."""
    from ..analysis.proxies import compute_proxies, terminal_order
    from ..tasks.lano import EOS, PAD

    task = next(iter(runs.values())).task
    examples = task.eval_examples(None, n_windows, seed)
    windows = np.array([ex.tokens for ex in examples])
    exact = compute_proxies(windows, task.grammar, cache_dir=proxy_cache)["next_token"]
    token_ids = [int(a) for a in terminal_order(task.grammar)] + [EOS]  # columns of `exact`
    prompt = [EOS]  # "a sentence just ended": every training window continues like this after its EOS
    summary, arrays = {}, {"windows": windows}
    for name, run in runs.items():
        stats = lm_token_stats(run.model, windows)
        kl = kl_to_exact(stats["next_probs"], exact, token_ids)
        gen = (generation_validity(run.model, prompt, task.sampler.recognizes, n=generations, eos_id=EOS,
                                   pad_id=PAD, seed=seed) if generations else {"validity": float("nan"), "n": 0})
        summary[name] = {"mean_expected_depth": float(stats["expected_depth"].mean()),
                         "mean_exit_depth": float(stats["exit_depths"].mean()),
                         "kl_to_exact_nats": float(np.nanmean(kl)), "generation_validity": gen["validity"],
                         "generations": gen["n"]}
        arrays[f"expected_depth_{name}"] = stats["expected_depth"]
        arrays[f"kl_{name}"] = kl
        evaluate_knobs(run.model, task, [None], n_per_knob=n_windows, seed=seed, progress=False, variant=name,
                       dump_path=Path(out_dir) / f"allocations_{variant_dir(name, VARIANTS.get(name, {}))}.jsonl")
    out_dir = Path(out_dir)
    atomic_write_npz(out_dir / "lano_eval.npz", arrays)
    atomic_write_json(out_dir / "lano_summary.json", summary)
    write_frame(pd.DataFrame([{"variant": name, **row} for name, row in summary.items()]), out_dir / "lano_summary.csv")
    return {"summary": summary, "arrays": arrays}


def evaluate_clrs(runs: dict[str, TrainResult], out_dir: str | Path, n_per_pair: int = 125,
                  figure_path: str | Path | None = None, representative: list[str] | None = None,
                  all_tasks_path: str | Path | None = None) -> dict[str, list[dict]]:
    """CLRS-Text evaluation per (algorithm, size): exact-match accuracy and answer-token d̄, with the
    task, whether the size is a training size, and the share of evaluation questions seen in training.
    Writes `out_dir/clrs_results.json` (and the same rows as a frame, `clrs_results.csv`), allocation
    dumps, and Fig. 3 / Fig. 7 style figures."""
    from ..tasks.clrs_text import task_of
    from ..display.plots import plot_task_size_grid

    task = next(iter(runs.values())).task
    pairs = task.eval_pairs()
    trained = set(task.train_pairs)
    overlap = {p: task.overlap(p) for p in pairs}
    results = {}
    for name, run in runs.items():
        rows = evaluate_knobs(run.model, task, pairs, n_per_knob=n_per_pair, variant=name,
                              dump_path=Path(out_dir) / f"allocations_{variant_dir(name, VARIANTS.get(name, {}))}.jsonl"
                              ).to_dict("records")
        for r in rows:
            algorithm, size = r.pop("knob")
            r.update(algorithm=algorithm, size=size, task=task_of(algorithm), train=(algorithm, size) in trained,
                     overlap=overlap[(algorithm, size)])
        results[name] = rows
    atomic_write_json(Path(out_dir) / "clrs_results.json", results)
    frame = pd.concat([rows_frame(rows, variant=name) for name, rows in results.items()], ignore_index=True)
    write_frame(frame, Path(out_dir) / "clrs_results.csv")  # the same rows, one per variant × (algorithm, size)
    names = sorted({r["task"] for rows in results.values() for r in rows})
    if figure_path is not None:
        plot_task_size_grid(results, (representative or names)[:4], figure_path, "CLRS-Text (Fig. 3 style)")
    if all_tasks_path is not None:
        plot_task_size_grid(results, names, all_tasks_path, "CLRS-Text, every task (Fig. 7 style)")
    return results


# the small runs notebook 15 trains where a task has no run yet (E, O and fixed-D, eager, a few minutes each)
SMALL_RUNS = {
    "mano": ({"task_args": {"max_ops": 4, "modulus": 2}, "max_depth": 4, "lr": 2e-3}, [1, 2, 3, 4], "operators ℓ"),
    "brevo": ({"task_args": {"max_nodes": 6}, "max_depth": 4, "lr": 1e-3}, [3, 4, 5, 6], "nodes n"),
    "depo": ({"task_args": {"max_nodes": 5, "max_k": 3, "queries": 4}, "max_depth": 4, "lr": 1e-3}, [1, 2, 3], "hops k"),
}


def sufficient_depth_study(run_dirs: dict, out_dir: str | Path, train_missing: bool = True, steps: int = 1500,
                           eval_per_knob: int = 100, rule: str = "stable", processes: int = 2,
                           figure_path: str | Path | None = None) -> dict:
    """Notebook 15 in one call: for each task's run folder ({task: folder}; tasks of `SMALL_RUNS`), the
    allocation efficiency of every variant (`run_efficiency`). A folder without dumps
    is replaced by a small run trained into `out_dir/<task>` when `train_missing`, else left out with a
    line saying so. Returns {"table": one frame (task, variant, knob, ...), "frames": {task: frame},
    "folders": {task: the folder read}, "figure": path or None}."""
    from ..analysis.depth_necessity import DEEP, DEPTH_BASELINES
    from ..evaluation.explorer import find_runs
    from ..display.plots import plot_oracle_vs_chosen

    frames, folders = {}, {}
    for task, folder in run_dirs.items():
        folder = Path(folder)
        if not find_runs([folder]):
            if not train_missing:
                print(f"{task}: {folder} holds no allocation dumps; run its notebook first or pass train_missing=True.")
                continue
            extra, knobs, _ = SMALL_RUNS[task]
            folder = Path(out_dir) / task
            settings = {"task": task, "hidden_size": 64, "intermediate_size": 256, "num_attention_heads": 4,
                        "kl_beta": 0.01, "steps": steps, "batch_size": 64, "warmup_steps": 50,
                        "checkpoint_every": max(steps // 2, 1), **extra}
            compare_deciders(settings, knobs, folder, eval_per_knob=eval_per_knob, processes=processes,
                             variants={**VARIANTS, DEEP: DEPTH_BASELINES[DEEP]})
        folders[task], frames[task] = folder, run_efficiency(folder, rule)
    table = pd.concat([f.assign(task=t) for t, f in frames.items()], ignore_index=True) if frames else pd.DataFrame()
    if len(table):
        table = table[["task", *[c for c in table.columns if c != "task"]]]
    figure = None
    if figure_path is not None and frames:
        labels = {t: SMALL_RUNS.get(t, (None, None, "knob"))[2] for t in frames}
        plot_oracle_vs_chosen(frames, labels, figure_path, title=f"sufficient ({rule}) vs chosen depth")
        figure = Path(figure_path)
    return {"table": table, "frames": frames, "folders": folders, "figure": figure}


def format3_dumps(run_dir, n_per_knob: int | None = None) -> dict[str, list[dict]]:
    """{variant: records} of a run folder's allocation dumps, each with the per-iteration fields: a
    variant whose dump lacks them is evaluated again from its saved model (run_dir/<dump stem>/, e.g.
    allocations_early.jsonl -> early/) on the same knob values and as many examples per knob (or
    `n_per_knob`), rewriting its dump."""
    from ..evaluation.checkpoint_eval import run_config
    from ..evaluation.explorer import load_allocations, load_dump, variant_name
    from ..training.train import load_run

    run_dir = Path(run_dir)
    load_allocations(run_dir)  # one line naming the problem if there are no dumps or they mix tasks
    data = {}
    for path in sorted(run_dir.glob("allocations_*.jsonl")):
        records = load_dump(path)
        if "iteration_correct" not in records[0]:
            run = load_run(run_config(run_dir / path.stem.removeprefix("allocations_")))
            knobs = list(dict.fromkeys(r["knob"] for r in records))
            count = n_per_knob or max(sum(r["knob"] == k for r in records) for k in knobs)
            evaluate_knobs(run.model, run.task, knobs, n_per_knob=count, dump_path=path, progress=False)
            records = load_dump(path)
        data[variant_name(path)] = records
    return data


def run_efficiency(run_dir, rule: str = "stable", n_per_knob: int | None = None) -> pd.DataFrame:
    """`allocation_efficiency` of every variant in a run folder, one frame with a variant column."""
    frames = [allocation_efficiency(records, rule).assign(variant=name)
              for name, records in format3_dumps(run_dir, n_per_knob).items()]
    frame = pd.concat(frames, ignore_index=True)
    return frame[["variant", *[c for c in frame.columns if c != "variant"]]]
