"""BREVO answer-token compute explained by graph structure and DFS state (paper §6.4 Table 2, A.8
Tables 6–10): `tasks.brevo_features` gives the features, `regression.staged_regression` runs the
four stages, and `compare_with_paper` puts our numbers next to the paper's.

The target is each answer token's expected depth Σ d·q(d). A node without dependencies has no
predecessor compute to average: its READ-style features are set to 0 (our choice; the paper does
not say).
"""

from __future__ import annotations

import pandas as pd

from .regression import StagedRegression, staged_regression
from ..tasks.brevo_features import FEATURES, answer_token_table

# The paper's values (paper Tables 6-9): ΔR² and coefficients of the linear fit (Tables 6 and 8),
# ΔR² ratios categorical / linear (Tables 7 and 9), R² of both fits.
PAPER = {
    "ANIRA-E": {"r2": 0.6866, "r2_categorical": 0.7337,
                "delta_r2": {"N": 0.2829, "out_degree_dep": 0.0441, "remaining_subtree": 0.0070, "frontier": 0.0064,
                             "newly_enabled": 0.0055},
                "coef": {"N": 0.059, "out_degree_dep": 0.152, "frontier": 0.049, "Intercept": 3.21},
                "ratio": {"out_degree_dep": 0.80, "remaining_subtree": 1.08, "frontier": 0.86, "newly_enabled": 0.84}},
    "ANIRA-O": {"r2": 0.7000, "r2_categorical": 0.7088,
                "delta_r2": {"dfs_depth": 0.0516, "N": 0.0483, "newly_enabled": 0.0375, "frontier": 0.0363,
                             "out_degree_dep": 0.0302},
                "coef": {"dfs_depth": 0.303, "N": 0.032, "newly_enabled": 0.287, "frontier": 0.170,
                         "out_degree_dep": 0.171, "Intercept": 2.09},
                "ratio": {"dfs_depth": 0.99, "newly_enabled": 0.99, "frontier": 0.99, "out_degree_dep": 0.94}},
}
READ_STYLE = ("avg_pred_exp_depth", "max_pred_exp_depth")


def answer_regression(records: list[dict], correct_only: bool = True, **thresholds) -> tuple[pd.DataFrame, StagedRegression]:
    """(the answer-token table of the correctly answered examples, the staged regression of expected
    depth on every feature that varies, N categorical in stage 4). thresholds: those of
    `staged_regression`. correct_only=False keeps every example (the features come from the task's
    own answer, whatever the model wrote)."""
    table = answer_token_table(records, correct_only=correct_only)
    table[list(READ_STYLE)] = table[list(READ_STYLE)].fillna(0.0)
    features = [f for f in FEATURES if table[f].nunique() > 1]  # e.g. N is constant in one-size data
    categorical = "N" if "N" in features else None
    return table, staged_regression(table, "expected_depth", features, categorical=categorical, **thresholds)


def compare_with_paper(result: StagedRegression, variant: str) -> pd.DataFrame:
    """One row per feature either side reports (and R² rows): ours and the paper's ΔR², coefficient
    and categorical / linear ratio; NaN where a side has no value (the paper's tables list only the
    selected features, and some coefficients were lost in extraction)."""
    paper = PAPER[variant]
    final = result.final.set_index("feature")
    ratio = result.categorical.set_index("feature")["ratio"] if result.categorical is not None else pd.Series(dtype=float)
    names = list(dict.fromkeys([*paper["delta_r2"], *result.selected, "Intercept"]))
    rows = [{"variant": variant, "feature": f,
             "delta_r2": final["delta_r2"].get(f, float("nan")), "paper_delta_r2": paper["delta_r2"].get(f, float("nan")),
             "coef": final["coef"].get(f, float("nan")), "paper_coef": paper["coef"].get(f, float("nan")),
             "ratio": ratio.get(f, float("nan")), "paper_ratio": paper["ratio"].get(f, float("nan")),
             "selected": f in result.selected} for f in names]
    rows.append({"variant": variant, "feature": "R² (linear)", "delta_r2": result.r2, "paper_delta_r2": paper["r2"],
                 "selected": True})
    rows.append({"variant": variant, "feature": "R² (N categorical)", "delta_r2": result.r2_categorical,
                 "paper_delta_r2": paper["r2_categorical"], "selected": True})
    return pd.DataFrame(rows)
