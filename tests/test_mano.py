"""MANO: format, determinism, distribution facts from docs/tasks.md, and the independent checker."""

import collections

import pytest

from anira_lib.tasks import get_task, rng_for
from anira_lib.tasks.mano import ManoTask


def test_spec_example():
    task = ManoTask()
    # (− (× 9 (− 16 12)) 7) = 29 ≡ 6 (mod 23)
    assert task.evaluate_prefix("- * 9 - 16 12 7".split()) == 6


@pytest.mark.parametrize("opts", [dict(), dict(division=True), dict(length_tag=True, synonyms=True)])
def test_checker_agrees_on_10000_samples_and_rejects_corruption(opts):
    task = ManoTask(max_ops=16, **opts)
    rng = rng_for(7, "test")
    for _ in range(10_000):
        ex = task.sample(rng)
        assert task.check(ex), task.decode(ex.tokens)
        wrong = task.value_id((ex.meta["answer"] + 1 + rng.randrange(task.modulus - 1)) % task.modulus)
        assert not task.check(ex, [wrong]) and task.check(ex, [ex.tokens[-1]])


@pytest.mark.parametrize("ell", [1, 3, 16, 20])
def test_format_and_length(ell):
    for tag in (False, True):
        task = ManoTask(length_tag=tag)
        ex = task.sample(rng_for(0, ell), ell)
        assert len(ex.tokens) == 2 * ell + 4 + int(tag)
        assert ex.targets == [False] * (len(ex.tokens) - 1) + [True]
        sym = task.decode(ex.tokens)
        assert sym[0] == "<bos>" and sym[-2] == "<ans>"
        assert sum(s in "+-*/" for s in sym) == ell
        if tag:
            assert sym[1] == f"<len{ell}>"


def test_deterministic_per_seed_and_step():
    a = ManoTask(seed=3).train_batch(5, 16)
    b = ManoTask(seed=3).train_batch(5, 16)
    c = ManoTask(seed=3).train_batch(6, 16)
    assert (a["input_ids"] == b["input_ids"]).all()
    assert not (a["input_ids"].shape == c["input_ids"].shape and (a["input_ids"] == c["input_ids"]).all())
    assert (a["labels"] != -100).sum(1).eq(1).all()  # one supervised token per row


def test_answer_distribution_matches_spec():
    task = ManoTask()
    rng = rng_for(0, "dist")
    counts = collections.Counter(task.sample(rng).meta["answer"] for _ in range(30_000))
    assert 0.058 < counts[0] / 30_000 < 0.078  # × makes 0 over-represented (≈6-7%)
    others = [counts[v] / 30_000 for v in range(1, 23)]
    assert 0.036 < min(others) and max(others) < 0.05


def test_synonyms_use_both_ids():
    task = ManoTask(synonyms=True)
    rng = rng_for(1, "s")
    toks = [task.sample(rng).tokens[0] for _ in range(50)]
    assert set(toks) == {1, 2}


@pytest.mark.parametrize("knobs,match", [
    (dict(max_ops=0), "max_ops"), (dict(modulus=22), "prime"), (dict(colour=1), "no knob"),
])
def test_bad_knobs(knobs, match):
    with pytest.raises(ValueError, match=match):
        get_task("mano", **knobs)


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown task 'manos'"):
        get_task("manos")


def test_with_an_end_token_the_prediction_is_the_answer_then_eos():
    task = ManoTask(max_ops=3, modulus=5, end_token=True)
    ex = task.sample(rng_for(3, "eos"))
    answer = ex.tokens[-2]
    assert ex.tokens[-1] == task.eos_id
    assert task.check(ex, [answer, task.eos_id])
    assert not task.check(ex, [answer]) and not task.check(ex, [answer, answer])
