"""MANO parse state (s_t, r_t, c_t) against hand-worked expressions, and on sampled examples."""

import pytest

from anira_lib.tasks.mano import ManoTask
from anira_lib.tasks.mano_parse import parse_state, question_parse_state

# expression -> [(s, r, c) per symbol], worked by hand with the docstring's definitions
HAND_WORKED = {
    "+ 1 2": [(0, 0, 0), (1, 2, 0), (1, 1, 0)],
    "* + 1 2 3": [(0, 0, 0), (1, 2, 0), (2, 2, 0), (2, 1, 0), (1, 1, 1)],
    "+ 1 * 2 3": [(0, 0, 0), (1, 2, 0), (1, 1, 0), (2, 2, 0), (2, 1, 0)],
    "- * 1 2 + 3 4": [(0, 0, 0), (1, 2, 0), (2, 2, 0), (2, 1, 0), (1, 1, 1), (2, 2, 0), (2, 1, 0)],
    "+ * - 1 2 3 4": [(0, 0, 0), (1, 2, 0), (2, 2, 0), (3, 2, 0), (3, 1, 0), (2, 1, 1), (1, 1, 2)],
    # the 3 completes the inner +, which completes the outer + (2 operators): c = 2 at the 4
    "* + 1 + 2 3 4": [(0, 0, 0), (1, 2, 0), (2, 2, 0), (2, 1, 0), (3, 2, 0), (3, 1, 0), (1, 1, 2)],
    "7": [(0, 0, 0)],
}


@pytest.mark.parametrize("expression", sorted(HAND_WORKED))
def test_parse_state_matches_hand_worked_expressions(expression):
    rows = parse_state(expression.split())
    assert [(r["s"], r["r"], r["c"]) for r in rows] == HAND_WORKED[expression]
    assert [r["type"] for r in rows] == ["operator" if s in "+-*" else "value" for s in expression.split()]


@pytest.mark.parametrize("bad, message", [("+ 1", "still owe"), ("+ 1 2 3", "after the complete"),
                                          ("1 + 2", "starts with a value")])
def test_malformed_expressions_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        parse_state(bad.split())


@pytest.mark.parametrize("length_tag", [False, True])
def test_question_tokens_of_sampled_examples(length_tag):
    """On sampled examples: one row per expression symbol at its position, r = 0 exactly at the root,
    and the invariants of a binary prefix parse (s never 0 after the root; the last symbol is a value)."""
    import random

    task = ManoTask(max_ops=8, modulus=5, length_tag=length_tag)
    rng = random.Random(0)
    for _ in range(50):
        ex = task.sample(rng)
        symbols = task.decode(ex.tokens)
        rows = question_parse_state(symbols)
        assert [symbols[r["position"]] for r in rows] == task.expression(ex)
        assert [r["r"] == 0 for r in rows] == [i == 0 for i in range(len(rows))] or len(rows) == 1
        assert all(r["s"] >= 1 for r in rows[1:]) and rows[-1]["type"] == "value"
        assert sum(r["type"] == "operator" for r in rows) == ex.knob
        # a value right after an operator never follows a completion
        assert all(rows[i]["c"] == 0 for i in range(1, len(rows)) if rows[i - 1]["type"] == "operator")
