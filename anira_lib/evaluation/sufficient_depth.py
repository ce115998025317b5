"""Per-token sufficient depth: did each answer token get the depth it needed?

From the per-iteration view (`AniraForCausalLM.forward(output_iterations=...)`, stored in allocation
dumps of format 3 as `iteration_correct`), teacher-forced: for an answer token, row i says whether its
greedy prediction had it exited at iteration i is the supervised token. Two definitions:

    first     the first iteration whose prediction is correct
    stable    the first iteration from which the prediction stays correct through D (the default:
              a token that is right at 2, wrong at 3 and right at 4 needs 4, since a model that
              spends more than 2 would get it wrong)

Both are undefined (None / NaN) for a token never correct at D ("unsolved"). `allocation_efficiency`
compares them per knob with the depth the model chose (its exit depth under the inference rule);
`experiments.run_efficiency` does it for every variant of a run folder, re-evaluating a variant whose
dump predates the per-iteration fields (format 2) from its saved model. This module reads records
only: it imports nothing that evaluates or trains.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..intervals import spearman_or_nan

RULES = ("stable", "first")


def sufficient_depths(correct, rule: str = "stable") -> np.ndarray:
    """correct (N, D) bool, per token and iteration -> (N,) sufficient depth in 1..D, NaN if none.

    rule "stable": the first i with correct[i:] all True; "first": the first correct i."""
    if rule not in RULES:
        raise ValueError(f"rule={rule!r} is unknown; use 'stable' (correct from there through D) or 'first'.")
    c = np.asarray(correct, dtype=bool)
    if c.ndim != 2:
        raise ValueError(f"correct must be (tokens, D), got shape {c.shape}.")
    N, D = c.shape
    out = np.full(N, np.nan)
    if rule == "first":
        hit = c.any(axis=1)
        out[hit] = c[hit].argmax(axis=1) + 1
        return out
    # stable: suffix all-True; the first i where every j >= i is correct (D + 1: never)
    suffix = np.flip(np.cumprod(np.flip(c, axis=1), axis=1), axis=1).astype(bool)
    hit = suffix[:, -1] if D else np.zeros(N, bool)
    out[hit] = suffix[hit].argmax(axis=1) + 1
    return out


def token_table(records: list[dict], rule: str = "stable") -> pd.DataFrame:
    """One row per answer token of dump records (format 3): knob, example, position, exit_depth (the
    chosen depth), sufficient_depth (by `rule`, NaN: unsolved), correct_at_exit (its prediction at the
    chosen depth is right), correct_at_d (right at full depth)."""
    rows = []
    for r in records:
        if "iteration_correct" not in r:
            raise ValueError("these allocation records have no per-iteration fields (dump format 2); re-evaluate "
                             "the run (evaluate_knobs with a dump_path) to write format 3.")
        if not r["answer_positions"]:
            continue
        hits = np.asarray(r["iteration_correct"], dtype=bool)
        need = sufficient_depths(hits, rule)
        knob = tuple(r["knob"]) if isinstance(r["knob"], list) else r["knob"]
        for j, p in enumerate(r["answer_positions"]):
            d = r["exit_depths"][p]
            rows.append({"knob": knob, "example": r.get("example"), "position": p, "exit_depth": d,
                         "sufficient_depth": need[j], "correct_at_exit": bool(hits[j, d - 1]),
                         "correct_at_d": bool(hits[j, -1])})
    return pd.DataFrame(rows, columns=["knob", "example", "position", "exit_depth", "sufficient_depth",
                                       "correct_at_exit", "correct_at_d"])


def allocation_efficiency(records: list[dict], rule: str = "stable") -> pd.DataFrame:
    """Per knob value, over answer tokens (teacher-forced):

    tokens; solved (share with a sufficient depth); oracle_depth (mean sufficient depth of the solved);
    chosen_depth (mean exit depth of the same tokens); spearman (chosen vs sufficient over them);
    under / exact / over (shares of the solved with chosen < = > sufficient); accuracy_lost (share of
    all tokens wrong at the chosen depth that a deeper exit would have got right: under-allocated and
    solved); excess_iterations (mean over the solved of max(0, chosen − sufficient))."""
    table = token_table(records, rule)
    rows = []
    for knob, g in table.groupby("knob", sort=True):
        solved = g[g["sufficient_depth"].notna()]
        chosen, need = solved["exit_depth"].to_numpy(float), solved["sufficient_depth"].to_numpy(float)
        n = max(len(solved), 1)
        rows.append({"knob": knob, "tokens": len(g), "solved": len(solved) / len(g),
                     "oracle_depth": need.mean() if len(solved) else np.nan,
                     "chosen_depth": chosen.mean() if len(solved) else np.nan,
                     "spearman": spearman_or_nan(chosen, need),
                     "under": float((chosen < need).sum() / n), "exact": float((chosen == need).sum() / n),
                     "over": float((chosen > need).sum() / n),
                     "accuracy_lost": float(((chosen < need) & ~solved["correct_at_exit"].to_numpy()).sum() / len(g)),
                     "excess_iterations": float(np.maximum(chosen - need, 0).mean()) if len(solved) else np.nan})
    return pd.DataFrame(rows)
