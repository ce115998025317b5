"""MANO question-token tables and the parse-state models, on dumps and on constructed compute."""

import numpy as np
import pandas as pd
import pytest

from anira_lib.evaluation.explorer import load_allocations
from anira_lib.analysis.question_tokens import depth_by_cell, fit_parse_models, question_token_table
from anira_lib.tasks import get_task

from .conftest import write_dumps


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    run = write_dumps(tmp_path_factory.mktemp("q") / "run", get_task("mano", max_ops=4, modulus=2), [1, 2, 3, 4],
                      n_per_knob=10)
    return load_allocations(run)["ANIRA-E"]


def test_table_has_one_row_per_question_token_of_the_correct_examples(records):
    records = [{**r, "correct": r["example"] % 2 == 0} for r in records]  # untrained: mark half right
    t = question_token_table(records)
    right = [r for r in records if r["correct"]]
    assert len(t) == sum(2 * r["knob"] + 1 for r in right)  # ℓ operators and ℓ + 1 values
    assert t.groupby(["knob", "example"]).ngroups == len(right)
    rec = right[0]
    mine = t[(t.knob == rec["knob"]) & (t.example == rec["example"])]
    assert mine["expected_depth"].tolist() == [rec["expected_depth"][p] for p in mine["position"]]
    assert mine["symbol"].tolist() == [rec["symbols"][p] for p in mine["position"]]
    assert len(question_token_table(records, correct_only=False)) == sum(2 * r["knob"] + 1 for r in records)
    with pytest.raises(ValueError, match="none answered correctly"):
        question_token_table([{**r, "correct": False} for r in records])


def test_models_are_nested_and_the_piecewise_one_finds_constructed_compute(records):
    t = question_token_table(records, correct_only=False)
    # compute that is exactly a function of (cell, c): only the piecewise model can fit it all
    t["expected_depth"] = t["cell"].map(lambda c: hash(c) % 3 + 1.0) + 0.5 * t["c"]
    fits = fit_parse_models(t).set_index("model")["r2"]
    assert fits["type"] <= fits["type + r"] <= fits["piecewise"] and fits["piecewise"] == pytest.approx(1.0)


def test_c_varies_only_for_operators_owing_one_operand(records):
    t = question_token_table(records, correct_only=False)
    ops = t[t.type == "operator"]
    assert (ops.loc[ops.r != 1, "c"] == 0).all() and (ops.loc[ops.r == 1, "c"] > 0).any()
    per_r, per_c = depth_by_cell(t)
    assert per_r["top"].sum() >= 1 and (per_c["r"] == 1).all()
    assert np.allclose(per_c.set_index("c")["mean"], ops[ops.r == 1].groupby("c")["expected_depth"].mean())


def test_a_dump_of_another_task_is_refused(tmp_path):
    run = write_dumps(tmp_path / "run", get_task("depo", max_nodes=6, max_k=2, queries=2), [1], n_per_knob=4)
    with pytest.raises(ValueError, match="reads MANO dumps"):
        question_token_table(load_allocations(run)["ANIRA-E"])  # named even when no example is correct
