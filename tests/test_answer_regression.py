"""BREVO answer regression: from dump records to the staged fit and the paper comparison."""

import numpy as np
import pytest

from anira_lib.analysis.answer_regression import PAPER, answer_regression, compare_with_paper
from anira_lib.evaluation.explorer import load_allocations
from anira_lib.tasks.brevo import BrevoTask
from anira_lib.tasks.brevo_features import answer_token_table

from .conftest import write_dumps


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    run = write_dumps(tmp_path_factory.mktemp("b") / "run", BrevoTask(max_nodes=12), list(range(4, 13)), n_per_knob=12)
    return load_allocations(run)["ANIRA-E"]


def test_compute_built_from_the_features_is_recovered(records):
    """Expected depth set to a known function of hub and DFS depth: the fit selects exactly those two
    and recovers their coefficients."""
    table = answer_token_table(records, correct_only=False)
    made = []
    for r in records:
        rows = table[(table.knob == r["knob"]) & (table.example == r["example"])]
        depth = list(r["expected_depth"])
        for _, row in rows.iterrows():
            depth[int(row.predicted_at)] = 1.0 + 0.4 * row.out_degree_dep + 0.25 * row.dfs_depth
        made.append({**r, "expected_depth": depth, "correct": True})
    table, res = answer_regression(made, delta_r2_threshold=0.01)
    assert set(res.selected) == {"out_degree_dep", "dfs_depth"}
    final = res.final.set_index("feature")["coef"]
    assert np.isclose(final["out_degree_dep"], 0.4) and np.isclose(final["dfs_depth"], 0.25)
    assert res.r2 == pytest.approx(1.0)
    assert table[["avg_pred_exp_depth", "max_pred_exp_depth"]].notna().all().all()  # roots' READ features: 0


def test_comparison_puts_ours_next_to_the_paper(records):
    _, res = answer_regression(records, correct_only=False)
    for variant in PAPER:
        table = compare_with_paper(res, variant).set_index("feature")
        assert table.loc["R² (linear)", "paper_delta_r2"] == PAPER[variant]["r2"]
        assert table.loc["R² (linear)", "delta_r2"] == pytest.approx(res.r2)
        for feature, value in PAPER[variant]["delta_r2"].items():
            assert table.loc[feature, "paper_delta_r2"] == value
        assert set(res.selected) <= set(table.index)
