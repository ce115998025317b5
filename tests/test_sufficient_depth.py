"""Sufficient depth: both definitions over every correctness pattern of D = 4, and the efficiency frame."""

import itertools

import numpy as np
import pandas as pd
import pytest

from anira_lib.evaluation.sufficient_depth import allocation_efficiency, sufficient_depths, token_table


def reference(pattern, rule):
    """By the words of the definitions, one pattern at a time."""
    D = len(pattern)
    for i in range(1, D + 1):
        if rule == "first" and pattern[i - 1]:
            return i
        if rule == "stable" and all(pattern[i - 1:]):
            return i
    return np.nan


@pytest.mark.parametrize("rule", ["stable", "first"])
@pytest.mark.parametrize("D", [1, 2, 3, 4, 5])
def test_every_correctness_pattern(rule, D):
    patterns = np.array(list(itertools.product([False, True], repeat=D)))
    got = sufficient_depths(patterns, rule)
    want = np.array([reference(p, rule) for p in patterns], dtype=float)
    np.testing.assert_array_equal(got, want)


def test_the_two_definitions_differ_where_a_token_flips():
    flip = [[True, False, True, True]]
    assert sufficient_depths(flip, "first")[0] == 1 and sufficient_depths(flip, "stable")[0] == 3
    with pytest.raises(ValueError, match="rule='last' is unknown"):
        sufficient_depths(flip, "last")


def record(knob, exits, correct):
    """A format-3 dump record with one answer token per position in `exits`."""
    T = len(exits) + 1
    return {"knob": knob, "example": 0, "answer_positions": list(range(1, T)), "exit_depths": [1, *exits],
            "iteration_correct": correct}


def test_allocation_efficiency_by_hand():
    D = [[False, True, True], [False, False, True], [True, True, True], [False, False, False]]
    # chosen 1 vs need 2 (under, wrong: lost), chosen 3 vs 3 (exact), chosen 3 vs 1 (over by 2), unsolved
    frame = allocation_efficiency([record(1, [1, 3, 3, 2], D)])
    row = frame.iloc[0]
    assert row["tokens"] == 4 and row["solved"] == 0.75
    assert row["oracle_depth"] == pytest.approx(2.0) and row["chosen_depth"] == pytest.approx(7 / 3)
    assert (row["under"], row["exact"], row["over"]) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert row["accuracy_lost"] == pytest.approx(1 / 4) and row["excess_iterations"] == pytest.approx(2 / 3)
    table = token_table([record(1, [1, 3, 3, 2], D)])
    assert table["correct_at_exit"].tolist() == [False, True, True, False]
    assert np.isnan(table["sufficient_depth"].iloc[3])


def test_format_2_records_are_refused_by_name():
    with pytest.raises(ValueError, match="dump format 2"):
        token_table([{"knob": 1, "answer_positions": [1], "exit_depths": [1, 1]}])


def test_dumps_carry_the_per_iteration_view(tmp_path):
    from anira_lib.evaluation.evaluate import evaluate_knobs, run_examples
    from anira_lib.tasks import get_task

    from .conftest import tiny_model

    task = get_task("mano", max_ops=2, modulus=3)
    model = tiny_model(seed=0, vocab_size=task.vocab_size, decider="online", max_depth=3).eval()
    examples = task.eval_examples(2, 6)
    recs = list(run_examples(model, task, examples, batch_size=4))
    import torch

    for r, ex in zip(recs, examples):  # the stored top-1 per iteration is the forced-exit forward's argmax
        assert len(r["iteration_top1"]) == len(ex.tokens) and len(r["iteration_top1"][0]) == 3
        p = r["answer_positions"][0]
        ids = torch.tensor([ex.tokens])
        for i in range(1, 4):
            forced = torch.tensor([r["exit_depths"]])
            forced[0, p] = i
            with torch.no_grad():
                ref = model(input_ids=ids, exit_depths=forced).logits[0, p].argmax().item()
            assert r["iteration_top1"][p][i - 1] == ref
            assert r["iteration_correct"][0][i - 1] == (ref == ex.tokens[p + 1])
    frame = evaluate_knobs(model, task, [1, 2], n_per_knob=5, dump_path=tmp_path / "d.jsonl", progress=False)
    import json

    dumped = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    eff = allocation_efficiency(dumped)
    assert list(eff["knob"]) == [1, 2] and (eff["tokens"] == 5).all() and len(frame) == 2
    assert isinstance(eff, pd.DataFrame)
