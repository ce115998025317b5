"""BREVO answer-token features against three hand-drawn graphs (worked by hand from the definitions
in `brevo_features`), and on sampled examples."""

import math
import random

import pytest

from anira_lib.tasks.brevo import ANSWER, BOS, EOS, QUERY, BrevoTask
from anira_lib.tasks.brevo_features import answer_token_features, answer_token_table

COLUMNS = ["node", "N", "out_degree_dep", "out_degree_with_query", "in_degree", "remaining_subtree", "dfs_depth",
           "frontier", "newly_enabled", "distance_to_query"]


def example(edges, q, answer):
    """Tokens of a BREVO example: edges as (dependency, dependent) pairs."""
    return [BOS] + [t for e in edges for t in e] + [QUERY, q, ANSWER] + answer + [EOS]


# a chain a(5) -> b(6) -> c(7) -> q(8): the query at depth 3 from its first answer node
CHAIN = (example([(6, 7), (5, 6), (7, 8)], 8, [5, 6, 7]), [
    [5, 4, 1, 1, 0, 2, 3, 0, 1, 3],
    [6, 4, 1, 1, 1, 1, 2, 0, 1, 2],
    [7, 4, 1, 1, 1, 0, 1, 0, 1, 1]])
# a hub r(5) that x(6), y(7), z(8) and w(10) depend on; q(9) depends on x, y, z; w is not q's dependency
HUB = (example([(5, 6), (5, 7), (5, 8), (5, 10), (6, 9), (7, 9), (8, 9)], 9, [5, 6, 7, 8]), [
    [5, 6, 4, 3, 0, 3, 2, 2, 3, 2],   # written under x: y and z still unseen from q; enables x, y, z
    [6, 6, 1, 1, 1, 2, 1, 2, 0, 1],   # q still needs y and z
    [7, 6, 1, 1, 1, 1, 1, 1, 0, 1],
    [8, 6, 1, 1, 1, 0, 1, 0, 1, 1]])  # the last one enables q
# a diamond a(5) -> b(6), c(7) -> d(8) -> q(9): a at depth 3 with two dependents
DIAMOND = (example([(5, 6), (5, 7), (6, 8), (7, 8), (8, 9)], 9, [5, 6, 7, 8]), [
    [5, 5, 2, 2, 0, 3, 3, 1, 2, 3],   # c is still unseen from d; writing a enables b and c
    [6, 5, 1, 1, 1, 2, 2, 1, 0, 2],
    [7, 5, 1, 1, 1, 1, 2, 0, 1, 2],
    [8, 5, 1, 1, 2, 0, 1, 0, 1, 1]])


@pytest.mark.parametrize("graph", [CHAIN, HUB, DIAMOND], ids=["chain", "hub", "diamond"])
def test_features_match_hand_drawn_graphs(graph):
    tokens, expected = graph
    assert BrevoTask(max_nodes=10).canonical_answer(tokens) == tokens[tokens.index(ANSWER) + 1:-1]
    table = answer_token_features(tokens)
    assert table[COLUMNS].values.tolist() == expected
    assert table["position"].tolist() == [tokens.index(n, tokens.index(ANSWER)) for n in table["node"]]
    assert (table["predicted_at"] == table["position"] - 1).all()
    assert table["avg_pred_exp_depth"].isna().all()  # no expected depths given


def test_read_style_features_average_the_predecessors_expected_depth():
    tokens, _ = DIAMOND
    first = tokens.index(ANSWER) + 1
    depth = [0.0] * len(tokens)
    for j, d in enumerate([1.0, 2.0, 3.0, 4.0]):  # at the positions predicting a, b, c, d
        depth[first + j - 1] = d
    table = answer_token_features(tokens, depth).set_index("node")
    assert math.isnan(table.loc[5, "avg_pred_exp_depth"])
    assert table.loc[6, "avg_pred_exp_depth"] == table.loc[6, "max_pred_exp_depth"] == 1.0  # b <- a
    assert table.loc[8, "avg_pred_exp_depth"] == 2.5 and table.loc[8, "max_pred_exp_depth"] == 3.0  # d <- b, c


def test_a_wrong_answer_is_refused():
    tokens, _ = DIAMOND
    wrong = tokens[:tokens.index(ANSWER) + 1] + [6, 5, 7, 8, EOS]
    with pytest.raises(ValueError, match="not the canonical DFS post-order"):
        answer_token_features(wrong)


def test_sampled_examples_satisfy_the_definitions():
    task = BrevoTask(max_nodes=30)
    rng = random.Random(0)
    for _ in range(40):
        ex = task.sample(rng)
        t = answer_token_features(ex.tokens, n_nodes=ex.knob)
        k = len(ex.meta["answer"])
        assert (answer_token_features(ex.tokens)["N"] <= ex.knob).all()  # isolated roots are in no edge
        assert t["node"].tolist() == ex.meta["answer"] and t["remaining_subtree"].tolist() == list(range(k - 1, -1, -1))
        assert (t["N"] == ex.knob).all() and (t["out_degree_with_query"] <= t["out_degree_dep"]).all()
        assert (t["dfs_depth"] >= t["distance_to_query"]).all() and (t["distance_to_query"] >= 1).all()
        assert (t["newly_enabled"] <= t["out_degree_with_query"]).all() and t["newly_enabled"].iloc[-1] >= 1
        assert t["frontier"].iloc[-1] == 0  # the last answer node leaves nothing unvisited


def test_answer_token_table_joins_dump_records_with_their_compute(tmp_path):
    from anira_lib.evaluation.explorer import load_allocations

    from .conftest import write_dumps

    task = BrevoTask(max_nodes=6)
    recs = load_allocations(write_dumps(tmp_path / "run", task, [4, 6], n_per_knob=5))["ANIRA-O"]
    # untrained models rarely answer right: give every record its canonical answer, marked correct
    fixed = []
    for r in recs:
        q_end = r["tokens"].index(ANSWER) + 1
        tokens = r["tokens"][:q_end] + task.canonical_answer(r["tokens"]) + [EOS]
        assert tokens == r["tokens"]  # the dumped examples are the task's own, with their canonical answers
        fixed.append({**r, "correct": True})
    table = answer_token_table(fixed)
    assert len(table) == sum(len(BrevoTask.parse(r["tokens"])[2]) for r in fixed)
    r = fixed[0]
    mine = table[(table.knob == r["knob"]) & (table.example == r["example"])]
    assert mine["expected_depth"].tolist() == [r["expected_depth"][p - 1] for p in mine["position"]]
    assert mine["exit_depth"].tolist() == [r["exit_depths"][p - 1] for p in mine["position"]]
    assert (table["N"] == table["knob"]).all()
    with pytest.raises(ValueError, match="no correctly answered"):
        answer_token_table(recs and [{**x, "correct": False} for x in recs])
