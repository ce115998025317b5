"""ANIRA-O's accuracy–compute frontier (paper §6.4, Fig. 10): one trained model, several inference rules.

`pareto_sweep` evaluates the mode, median and mean rules and the threshold rule at each τ (Eq. 7 with
u = τ: stop at the first iteration whose halting CDF reaches τ) on the same examples, every answer
scored by the task's checker. Beyond the paper, each setting's decode speed and KV memory are measured
through the allocation-aware cache (`generate()`) against full depth in the same process: the rounds
interleave the settings, and the ratio is the median over rounds with its min–max.
"""

from __future__ import annotations

import statistics

import pandas as pd
import torch

from ..evaluation.evaluate import evaluate_knobs
from ..progress import progress_bar

TAUS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
RULES = ("mode", "median", "mean")


def settings(rules=RULES, taus=TAUS) -> list[dict]:
    """The inference settings of a sweep: {setting, rule, tau}, rules first, then τ ascending."""
    from ..modeling.configuration import check_halt_threshold

    for tau in taus:  # refuse a bad τ before anything runs
        check_halt_threshold(tau)
    return ([{"setting": r, "rule": r, "tau": None} for r in rules]
            + [{"setting": f"τ={t:g}", "rule": "threshold", "tau": float(t)} for t in sorted(taus)])


def pareto_sweep(model, task, knobs, rules=RULES, taus=TAUS, n_per_knob: int = 200, seed: int = 1234,
                 decode_rounds: int = 5, decode_prompts: int = 8, new_tokens: int = 8,
                 progress: bool = True) -> pd.DataFrame:
    """One row per setting: accuracy and answer-token d̄ over `knobs` (equal examples per knob), and
    (decode_rounds > 0) decode_speedup = tokens/s over full depth's [min, max over rounds], decode_depth
    (d̄ of the decoded tokens) and kv_held_over_full (KV bytes the cache holds over full depth's). The
    mode and mean rules need every iteration's halting probability before choosing, which cached
    decoding never computes: their decode columns are NaN."""
    if getattr(model.config, "decider", None) != "online":
        raise ValueError("the Pareto sweep varies ANIRA-O's halting threshold; this model's decider is "
                         f"{getattr(model.config, 'decider', None)!r} (train decider='online').")
    sweep, rows = settings(rules, taus), []
    for s in progress_bar(sweep, desc="pareto settings", disable=not progress):
        per_knob = evaluate_knobs(model, task, knobs, n_per_knob=n_per_knob, seed=seed, progress=False,
                                  depth_rule=s["rule"], halt_threshold=s["tau"])
        rows.append({**s, "accuracy": per_knob["accuracy"].mean(), "mean_depth": per_knob["mean_depth"].mean(),
                     "n": int(per_knob["n"].sum())})
    frame = pd.DataFrame(rows)
    if decode_rounds > 0:
        frame = frame.merge(decode_ratios(model, task, knobs, sweep, decode_rounds, decode_prompts, new_tokens, seed),
                            on="setting")
    return frame


@torch.no_grad()
def decode_ratios(model, task, knobs, sweep: list[dict], rounds: int = 5, prompts: int = 8, new_tokens: int = 8,
                  seed: int = 1234) -> pd.DataFrame:
    """Per setting: decode tokens/s over full depth's, measured round by round with full depth in every
    round (median and min–max over rounds), the decoded tokens' d̄ and the KV bytes held over full depth's.
    Prompts: `prompts` evaluation questions taken from the knobs in turn (easy and hard alike), all
    cut at the shortest question's answer position so the batch needs no padding."""
    from ..evaluation.savings import measure_decode

    knobs = list(knobs)
    per_knob = [task.eval_examples(k, -(-prompts // len(knobs)), seed) for k in knobs]
    examples = [ex for group in zip(*per_knob) for ex in group][:prompts]  # round robin over the knobs
    cut = min(_answer_start(ex) for ex in examples)  # one prompt length for the batch: no padding
    device = next(model.parameters()).device
    ids = torch.tensor([ex.tokens[:cut] for ex in examples], device=device)
    from ..modeling.deciders import PROBE_RULES

    decodable = [s for s in sweep if s["rule"] not in PROBE_RULES]  # mode / mean need q over all D first
    runs = {"full": dict(depth_rule="full"),
            **{s["setting"]: dict(depth_rule=s["rule"], halt_threshold=s["tau"]) for s in decodable}}
    speed = {name: [] for name in runs}
    last = {}
    for _ in range(rounds):  # interleaved: every round measures full depth and each setting
        for name, rule in runs.items():
            m = measure_decode(model, ids, new_tokens, **{k: v for k, v in rule.items() if v is not None})
            speed[name].append(m["tokens_per_s"])
            last[name] = m
    full_bytes = last["full"]["memory"]["bytes_held"]
    rows = [{"setting": s["setting"]} for s in sweep if s not in decodable]  # their columns stay NaN
    for s in decodable:
        ratios = [a / b for a, b in zip(speed[s["setting"]], speed["full"])]
        rows.append({"setting": s["setting"], "decode_speedup": statistics.median(ratios),
                     "decode_speedup_min": min(ratios), "decode_speedup_max": max(ratios),
                     "decode_depth": last[s["setting"]]["mean_depth"],
                     "kv_held_over_full": last[s["setting"]]["memory"]["bytes_held"] / full_bytes})
    return pd.DataFrame(rows)


def _answer_start(example) -> int:
    """Index of the first supervised token (the answer): the prompt is what comes before it."""
    return next(i for i, supervised in enumerate(example.targets) if supervised)


SETTING_COLUMNS = ("setting", "rule", "tau")


def pareto_over_seeds(frame: pd.DataFrame, by=("task",)) -> pd.DataFrame:
    """Sweeps of several trained seeds (a `seed` column) as one row per `by` × setting: the mean, min,
    max and s.d. over seeds of accuracy, d̄ and, where measured, the decode columns; `seeds` counts them."""
    from ..results import seed_spread

    keys = [c for c in (*by, *SETTING_COLUMNS) if c in frame.columns]
    values = [c for c in ("accuracy", "mean_depth", "decode_speedup", "kv_held_over_full") if c in frame.columns]
    return seed_spread(frame, keys, values=values)


def spaced_labels(sweep: pd.DataFrame, gap: float = 0.05) -> list:
    """The rows of a τ sweep to label so that no two labels overlap: a point closer than `gap` of the
    axis ranges (in both d̄ and accuracy) to the last labelled one is skipped."""
    x, y = sweep["mean_depth"].to_numpy(float), 100 * sweep["accuracy"].to_numpy(float)
    dx, dy = max(x.max() - x.min(), 1e-9) if len(x) else 1.0, max(y.max() - y.min(), 1e-9) if len(y) else 1.0
    kept, last = [], None
    for (_, r), xi, yi in zip(sweep.iterrows(), x, y):
        if last is None or abs(xi - last[0]) > gap * dx or abs(yi - last[1]) > gap * dy:
            kept.append(r)
            last = (xi, yi)
    return kept


def plot_pareto(frame: pd.DataFrame, path=None, title: str = ""):
    """Fig. 10 style: accuracy against d̄, the τ sweep as a line, the three rules as labelled markers.
    A frame of several seeds (a `seed` column) is drawn as the mean over seeds with min–max error bars."""
    import matplotlib.pyplot as plt

    from ..display.plots import finish_figure

    several = "seed" in frame.columns and frame["seed"].nunique() > 1
    if several:
        frame = pareto_over_seeds(frame, by=())
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    sweep = frame[frame["rule"] == "threshold"].sort_values("tau")
    ax.plot(sweep["mean_depth"], 100 * sweep["accuracy"], "-o", color="tab:orange", ms=4,
            label="threshold τ" + (f" (mean of {int(frame['seeds'].max())} seeds, min–max)" if several else ""))
    if several:
        ax.errorbar(frame["mean_depth"], 100 * frame["accuracy"], fmt="none", ecolor="0.6", lw=0.8,
                    xerr=[frame["mean_depth"] - frame["mean_depth_min"], frame["mean_depth_max"] - frame["mean_depth"]],
                    yerr=[100 * (frame["accuracy"] - frame["accuracy_min"]),
                          100 * (frame["accuracy_max"] - frame["accuracy"])])
    for r in spaced_labels(sweep):  # τ values whose points sit on top of a labelled one stay unlabelled
        ax.annotate(f"{r['tau']:g}", (r["mean_depth"], 100 * r["accuracy"]), fontsize=6, xytext=(3, -8),
                    textcoords="offset points")
    for (_, r), marker in zip(frame[frame["rule"] != "threshold"].iterrows(), "D^v"):
        ax.plot(r["mean_depth"], 100 * r["accuracy"], marker, color="k", ms=7, label=r["rule"], ls="none")
    ax.set(xlabel="mean depth d̄ (answer tokens)", ylabel="accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return finish_figure(fig, path)
