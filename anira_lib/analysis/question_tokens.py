"""MANO question-token compute against parse state (paper §6.5, Fig. 6, A.6 Eq. 8).

`question_token_table` joins an allocation dump's question tokens with their parse state (s_t, r_t,
c_t from `tasks.mano_parse`). The compute of token t is the depth spent at t's own position, while the
model reads t. `fit_parse_models` compares three OLS models of that compute by R²:

    type            token type alone (operator / value)
    type + r        type and r_t as categories, crossed
    piecewise       ours, standing in for Eq. 8 (its formula was lost in extraction): one cell per
                    (type, r_t), each with its own intercept and its own slopes in c_t and s_t
"""

from __future__ import annotations

import warnings

import pandas as pd
from statsmodels.tools.sm_exceptions import SingularMatrixWarning

from ..tasks.mano_parse import question_parse_state

MODELS = {"type": "Q('{y}') ~ C(type)",
          "type + r": "Q('{y}') ~ C(type):C(r)",
          "piecewise": "Q('{y}') ~ C(cell) + C(cell):c + C(cell):s"}


def question_token_table(records: list[dict], correct_only: bool = True) -> pd.DataFrame:
    """One row per question token of MANO dump records: example, knob, symbol, type, s, r, c,
    position, exit_depth, expected_depth (the compute at the token's own position), cell."""
    other = {r.get("task") for r in records} - {"mano"}
    if other:
        raise ValueError(f"question_token_table reads MANO dumps; these records are of task(s) {sorted(map(str, other))}.")
    chosen = [r for r in records if r["correct"] or not correct_only]
    if not chosen:
        raise ValueError("no examples to analyse" + (" (none answered correctly: train longer, or pass "
                                                     "correct_only=False)" if correct_only else "") + ".")
    rows = []
    for r in chosen:
        for row in question_parse_state(r["symbols"]):
            del row["index"]
            rows.append({"example": r["example"], "knob": r["knob"], **row, "exit_depth": r["exit_depths"][row["position"]],
                         "expected_depth": r["expected_depth"][row["position"]]})
    table = pd.DataFrame(rows)
    table["cell"] = table["type"] + " r=" + table["r"].astype(str)
    return table


def fit_parse_models(table: pd.DataFrame, target: str = "expected_depth") -> pd.DataFrame:
    """R² (and parameter count) of the three models in the module docstring, one row each."""
    import statsmodels.formula.api as smf

    rows = []
    for name, formula in MODELS.items():
        with warnings.catch_warnings():  # cells where c_t or s_t never varies (the root's) have no slope
            warnings.simplefilter("ignore", SingularMatrixWarning)
            fit = smf.ols(formula.format(y=target), table).fit()
        rows.append({"model": name, "r2": float(fit.rsquared), "parameters": int(round(fit.df_model)) + 1,
                     "n": int(fit.nobs)})
    return pd.DataFrame(rows)


def depth_by_cell(table: pd.DataFrame, target: str = "expected_depth") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two panels of Fig. 6: (mean compute per r_t on operator tokens, with `top` marking the r_t
    that gets the most; mean compute per c_t on operator tokens with r_t = 1). c_t can only vary at
    r_t = 1: an operator owing two operands (r_t = 2) follows another operator, and the root comes
    first, so neither follows a completed subtree."""
    ops = table[table["type"] == "operator"]
    per_r = ops.groupby("r")[target].agg(["mean", "count"]).reset_index()
    per_r["top"] = per_r["mean"] == per_r["mean"].max()
    per_c = ops[ops["r"] == 1].groupby("c")[target].agg(["mean", "count"]).reset_index()
    per_c.insert(0, "r", 1)
    return per_r, per_c
