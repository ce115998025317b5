"""cfg3b as data, fast sampling that matches the grammar, and a recogniser cross-checked with nltk."""

import random
import statistics

import pytest

from anira_lib.tasks.pcfg import PCFGSampler, load_pcfg
from anira_lib.tasks import get_task, rng_for
from anira_lib.tasks.lano import EOS


@pytest.fixture(scope="module")
def sampler():
    return PCFGSampler(load_pcfg("cfg3b"))


def test_grammar_facts(sampler):
    g = load_pcfg("cfg3b")
    assert len(g.productions()) == 32 and str(g.start()) == "AV"
    assert len(sampler.rules) == 16 and sampler.terminals == [1, 2, 3]


def test_sentence_statistics_match_spec(sampler):
    rng = rng_for(0, "stats")
    sents = [sampler.sample(rng) for _ in range(8000)]
    lengths = [len(s) for s in sents]
    assert abs(statistics.mean(lengths) - 275.625) < 2.0  # exact mean 275.625
    assert min(lengths) >= 138 and max(lengths) <= 432
    first = [s[0] for s in sents]
    for tok, p in ((1, 0.15625), (2, 0.125), (3, 0.71875)):
        assert abs(first.count(tok) / len(first) - p) < 0.015


def test_recognizer_agrees_with_nltk_on_short_derivations(sampler):
    """Sentences of a level-2 nonterminal are short enough for nltk's chart parser."""
    import nltk

    g = load_pcfg("cfg3b")
    sub = nltk.CFG(nltk.Nonterminal("AP"), g.productions())
    parser = nltk.ChartParser(sub)
    rng = random.Random(0)
    for _ in range(40):
        s = sampler.sample(rng, "AP")
        bad = list(s)
        j = rng.randrange(len(s))
        bad[j] = rng.choice([t for t in (1, 2, 3) if t != s[j]])
        for seq in (s, bad):
            expected = any(True for _ in parser.parse([str(t) for t in seq]))
            assert sampler.recognizes(seq, "AP") == expected


def test_lano_checker_on_10000_sentences_and_corruption(sampler):
    rng = rng_for(1, "check")
    rejected = 0
    for _ in range(10_000):
        s = sampler.sample(rng)
        assert sampler.recognizes(s)
        bad = list(s)
        j = rng.randrange(len(s))
        bad[j] = rng.choice([t for t in (1, 2, 3) if t != s[j]])
        rejected += not sampler.recognizes(bad)
    assert rejected >= 9_950  # a substitution rarely stays in the language (~0.1% do)


def test_windows_start_at_sentence_boundaries():
    task = get_task("lano", window=512)
    assert task.train_knobs == [None]  # no difficulty knob: evaluations cover the training distribution
    rng = rng_for(2, "win")
    for _ in range(20):
        ex = task.sample(rng)
        assert len(ex.tokens) == 512 and ex.meta["sentence_starts"][0] == 0
        for start in ex.meta["sentence_starts"][1:]:
            assert ex.tokens[start - 1] == EOS
        assert task.check(ex) and ex.targets == [False] + [True] * 511
    corrupted = list(ex.tokens)
    first_eos = corrupted.index(EOS)
    corrupted[first_eos] = 3  # two sentences glued together are not one sentence
    assert task.check(ex, ex.tokens[1:])  # the supervised positions: every token after the first
    assert not task.check(ex, corrupted[1:])


def test_grammar_errors(tmp_path):
    bad = tmp_path / "bad.pcfg"
    bad.write_text("S -> A B [0.5] | B A [0.4]\nA -> '1' [1.0]\nB -> '2' [1.0]\n")
    with pytest.raises(ValueError, match="must sum to 1, but S: 0.9"):
        load_pcfg(bad)
    with pytest.raises(FileNotFoundError, match="shipped grammars"):
        load_pcfg("cfg9z")
    loop = tmp_path / "loop.pcfg"
    loop.write_text("S -> A '1' [0.5] | '2' [0.5]\nA -> S [1.0]\n")
    with pytest.raises(ValueError, match="recursive"):
        PCFGSampler(load_pcfg(loop))
    with pytest.raises(ValueError, match="window"):
        get_task("lano", window=1)
