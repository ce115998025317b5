"""BREVO and DEPO: formats, spec statistics, independent checkers that bite, clear knob errors."""

import statistics

import pytest

from anira_lib.tasks import get_task, rng_for
from anira_lib.tasks.brevo import ANSWER, EOS, QUERY, BrevoTask
from anira_lib.tasks.depo import FIRST_QUERY, DepoTask


def corrupt(tokens, positions, rng, choices):
    """Change one supervised answer token to another valid name."""
    out = list(tokens)
    i = positions[rng.randrange(len(positions))]
    out[i] = rng.choice([c for c in choices if c != tokens[i]])
    return out


@pytest.mark.parametrize("n", [None, 5, 30])
def test_brevo_checker_on_10000_samples_and_corruption(n):
    task = BrevoTask(max_nodes=30)
    rng = rng_for(0, "brevo", n)
    names = list(range(5, task.vocab_size))
    for _ in range(10_000):
        ex = task.sample(rng, n)
        _, _, answer = task.parse(ex.tokens)
        assert task.check(ex) and task.is_valid(ex.tokens, answer)
        start = ex.tokens.index(ANSWER) + 1
        bad = corrupt(ex.tokens, list(range(start, start + len(answer))), rng, names)
        assert not task.check(ex, [ANSWER, *bad[start:start + len(answer)], EOS])
        assert task.check(ex, [ANSWER, *answer, EOS]) and not task.check(ex, answer)  # delimiters are part of it


def test_brevo_reference_target_is_a_valid_order_ending_with_query():
    task = BrevoTask(max_nodes=20, target="reference")
    rng = rng_for(1, "ref")
    for _ in range(3000):
        ex = task.sample(rng)
        parents, q, answer = task.parse(ex.tokens)
        assert answer[-1] == q and task.check(ex)
        assert not task.check(ex, [ANSWER, *answer[::-1], EOS]) or len(answer) <= 2


def test_brevo_dfs_answer_is_also_valid_and_swaps_are_caught():
    task = BrevoTask(max_nodes=25)
    rng = rng_for(2, "swap")
    caught = 0
    for _ in range(2000):
        ex = task.sample(rng)
        canonical = task.canonical_answer(ex.tokens)
        assert task.is_valid(ex.tokens, canonical)
        if len(canonical) >= 2:
            swapped = canonical[1:] + canonical[:1]
            caught += not task.check(ex, [ANSWER, *swapped, EOS])
    assert caught > 1000


def test_brevo_statistics_match_spec():
    task = BrevoTask(max_nodes=70)
    rng = rng_for(3, "stats")
    train = [task.sample(rng) for _ in range(3000)]
    assert 23 < statistics.mean(e.knob for e in train) < 29  # spec: mean n ≈ 26 for N = 70
    test = [task.sample(rng, 70) for _ in range(400)]
    assert 315 < statistics.mean(len(e.tokens) for e in test) < 355  # spec ≈ 336
    assert 25 < statistics.mean(len(e.meta["answer"]) for e in test) < 33  # spec ≈ 29
    ex = test[0]
    sup = [t for t, s in zip(ex.tokens, ex.targets) if s]
    assert sup[0] == ANSWER and sup[-1] == EOS and sup[1:-1] == ex.meta["answer"]
    assert ex.tokens[ex.tokens.index(QUERY) + 2] == ANSWER


def test_brevo_graph_degree_bounds():
    task = BrevoTask(max_nodes=70)
    rng = rng_for(4, "deg")
    for _ in range(300):
        names, deps = task.sample_graph(rng, 60)
        used = [0] * 60
        roots = [i for i in range(60) if not deps[i]]
        assert roots == list(range(len(roots))) and 1 <= len(roots) <= 59 // 4 + 1
        for i, d in enumerate(deps):
            assert len(d) <= 4 and all(j < i for j in d) and len(set(d)) == len(d)
            for j in d:
                used[j] += 1
        assert max(used) <= 4


@pytest.mark.parametrize("k", [None, 1, 5, 16])
def test_depo_checker_on_10000_samples_and_corruption(k):
    task = DepoTask()
    rng = rng_for(0, "depo", k)
    for _ in range(10_000):
        ex = task.sample(rng, k)
        assert task.check(ex)
        sup = [i for i, t in enumerate(ex.targets) if t]
        names = sorted(set(ex.tokens[1:2 * ex.meta["n"] + 1]))
        bad = corrupt(ex.tokens, sup, rng, names)
        assert not task.check(ex, [bad[i] for i in sup])
        if k is not None:
            assert ex.meta["ks"] == [k] * len(sup)


def test_depo_format_and_length():
    task = DepoTask()
    ex = task.sample(rng_for(5, "f"), 3, n=6)
    sym = task.decode(ex.tokens)
    assert sym[0] == "<bos>" and sym[-1] == "<eos>"
    q = sym[13:18]
    assert q[0] == "<query-03>" and q[2] == "<ans>" and q[4] == "<eoa>"
    assert sum(ex.targets) == 6  # min(M, n) queries, one supervised token each
    rng = rng_for(6, "len")
    assert max(len(task.sample(rng).tokens) for _ in range(2000)) <= 256  # Table 5 maxlen


@pytest.mark.parametrize("name,knobs,match", [
    ("brevo", dict(max_nodes=2), "N"), ("brevo", dict(target="bfs"), "target"),
    ("depo", dict(max_k=0), "K"), ("depo", dict(max_nodes=1), "N"),
])
def test_bad_knobs(name, knobs, match):
    with pytest.raises(ValueError, match=match):
        get_task(name, **knobs)


def test_out_of_range_knob_values():
    with pytest.raises(ValueError, match="3 <= n"):
        BrevoTask(max_nodes=10).sample(rng_for(0), 11)
    with pytest.raises(ValueError, match="k > K|1 <= k"):
        DepoTask(max_k=8).sample(rng_for(0), 9)
    with pytest.raises(ValueError, match="1 <= k"):
        DepoTask().sample(rng_for(0), 0)


@pytest.mark.parametrize("name", ["mano", "brevo", "depo", "lano"])
def test_every_checker_takes_the_predictions_at_the_supervised_positions(name):
    """The task protocol's contract: check(example, the tokens at the example's supervised positions)
    agrees with check(example) on the example's own tokens, and a changed token there is refused."""
    task = get_task(name, **({"window": 160} if name == "lano" else {}))
    rng = rng_for(5, "protocol", name)
    for _ in range(20):
        ex = task.sample(rng)
        supervised = [t for t, s in zip(ex.tokens, ex.targets) if s]
        assert task.check(ex) and task.check(ex, supervised)
        if name != "lano":  # any answer token changed is wrong (LANO: a grammatical change may stay grammatical)
            wrong = list(supervised)
            wrong[-1 if name == "depo" else 0] = task.pad_id
            assert not task.check(ex, wrong)


def test_depo_min_nodes_draws_only_cycles_that_large_and_leaves_the_default_stream_alone():
    def cycle_size(task, tokens):
        end = next(i for i, t in enumerate(tokens) if i > 0 and FIRST_QUERY <= t < task.first_name)
        return (end - 1) // 2

    big = DepoTask(max_nodes=7, max_k=3, queries=4, min_nodes=7)
    rng = rng_for(0, "min")
    for k in (None, 1, 2, 3):
        for _ in range(200):
            ex = big.sample(rng, k)
            assert big.check(ex) and cycle_size(big, ex.tokens) == 7
    assert {cycle_size(big, DepoTask(max_nodes=7, max_k=3, queries=4).sample(rng).tokens) for _ in range(300)} \
        == {3, 4, 5, 6, 7}
    default, explicit = DepoTask(max_nodes=7, max_k=3, queries=4), DepoTask(max_nodes=7, max_k=3, queries=4, min_nodes=3)
    assert default.train_batch(5, 8)["input_ids"].equal(explicit.train_batch(5, 8)["input_ids"])
    with pytest.raises(ValueError, match="min_nodes must be between 3 and max_nodes"):
        DepoTask(max_nodes=5, min_nodes=6)
