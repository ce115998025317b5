"""The incremental prefix parser against the checks of docs/prefix_parser.md: closed forms, brute-force
enumeration, an independent inside computation (nltk), a dense recount of the sparse op counts, and an
optional cross-check with genlm-grammar (a different algorithm)."""

import itertools
import math
import random

import nltk
import numpy as np
import pytest

from anira_lib.tasks.pcfg import PCFGSampler, load_pcfg
from anira_lib.analysis.prefix_parser import END, FEATURES, PrefixParser, to_cnf

# A finite grammar with every construct the converter handles: ternary and mixed-terminal rules, a
# shared binarised tail, a unary rule and a terminal used both alone and inside longer rules.
TINY = """
S -> A B [0.5] | 'b' C 'b' [0.3] | C [0.2]
A -> 'a' [0.6] | 'b' 'a' [0.4]
B -> A C 'b' [0.7] | 'b' [0.3]
C -> 'b' [0.5] | 'a' 'b' 'a' [0.5]
"""


def _strings(grammar, symbol, depth=0):
    """{terminal tuple: probability} of `symbol`, by expanding the original (non-CNF) rules."""
    assert depth < 20
    out: dict[tuple, float] = {}
    for prod in grammar.productions(lhs=symbol):
        partial = {(): prod.prob()}
        for s in prod.rhs():
            sub = _strings(grammar, s, depth + 1) if isinstance(s, nltk.Nonterminal) else {(s,): 1.0}
            partial = {t + u: q * r for t, q in partial.items() for u, r in sub.items()}
        for t, q in partial.items():
            out[t] = out.get(t, 0.0) + q
    return out


@pytest.fixture(scope="module")
def cfg3b():
    g = load_pcfg("cfg3b")
    return g, to_cnf(g), PCFGSampler(g)


def _sentences(sampler, n, seed=0):
    rng = random.Random(seed)
    return [sampler.sample(rng) for _ in range(n)]


def test_cnf_of_cfg3b_has_40_nonterminals_and_keeps_probabilities(cfg3b):
    g, cnf, _ = cfg3b
    assert len(cnf.nonterminals) == 40 and cnf.binarization == "right"
    assert any("right-binarised" in n for n in cnf.notes)
    assert np.all(np.diag(cnf.closure) == 1.0)  # nilpotent left corners: E = I + P_L + P_L^2 + ...


def test_empty_prefix_and_first_token_distribution(cfg3b):
    _, cnf, _ = cfg3b
    parser = PrefixParser(cnf)
    assert parser.prefix == 1.0
    dist = parser.next_token_probs()
    assert dist[END] == 0.0
    assert dist["1"] == pytest.approx(0.15625) and dist["2"] == pytest.approx(0.125)
    assert dist["3"] == pytest.approx(0.71875)


def test_conservation_and_monotone_prefix_probability(cfg3b):
    _, cnf, sampler = cfg3b
    for s in _sentences(sampler, 5):
        tr = PrefixParser(cnf).parse(s)
        assert tr.off_grammar_at is None
        np.testing.assert_allclose(tr.next_token.sum(1), 1.0, atol=1e-12)  # prefix(w) = P(w) + Σ_a prefix(wa)
        logp = np.concatenate([[0.0], tr.prefix_logprob])
        assert np.all(np.isfinite(logp)) and np.all(np.diff(logp) <= 1e-12)
        idx = [tr.terminals.index(str(t)) for t in s]
        np.testing.assert_allclose(np.exp(np.diff(logp)), tr.next_token[np.arange(len(s)), idx], rtol=1e-9)
        assert tr.end_prob[-1] > 0  # a complete sentence can end here


def test_brute_force_enumeration_on_a_tiny_grammar():
    g = nltk.PCFG.fromstring(TINY)
    cnf = to_cnf(g)
    assert any("unary" in n for n in cnf.notes)
    assert "@[C T[b]]" in cnf.nonterminals  # one binarised tail shared by S and B
    language = _strings(g, g.start())
    assert sum(language.values()) == pytest.approx(1.0)
    parser = PrefixParser(cnf)
    longest = max(map(len, language))
    for n in range(1, longest + 1):
        for w in itertools.product("ab", repeat=n):
            expected = sum(p for s, p in language.items() if s[:n] == w)
            tr = parser.parse(list(w))
            if expected == 0:
                assert tr.off_grammar_at is not None and tr.off_grammar_at < n
                assert np.isnan(tr.prefix_logprob[tr.off_grammar_at])
                continue
            assert tr.off_grammar_at is None
            assert math.exp(tr.prefix_logprob[-1]) == pytest.approx(expected, rel=1e-12)
            assert tr.end_prob[-1] * expected == pytest.approx(language.get(w, 0.0), abs=1e-15)
            for j, a in enumerate(tr.terminals):  # next-token distribution
                nxt = sum(p for s, p in language.items() if s[:n + 1] == w + (a,))
                assert tr.next_token[n, j] * expected == pytest.approx(nxt, abs=1e-15)


def test_left_recursion_uses_the_closure():
    """S -> S 'a' [0.4] | 'a' [0.6]: every string is a^m, so prefix(a^n) = 0.4^(n-1)."""
    cnf = to_cnf(nltk.PCFG.fromstring("S -> S 'a' [0.4] | 'a' [0.6]"))
    tr = PrefixParser(cnf).parse(["a"] * 6)
    np.testing.assert_allclose(np.exp(tr.prefix_logprob), 0.4 ** np.arange(6), rtol=1e-12)
    np.testing.assert_allclose(tr.end_prob, 0.6, rtol=1e-12)


def test_full_sentence_inside_probability_matches_nltk(cfg3b):
    """β(0,n|S) against nltk's InsideChartParser summed over parses (not π: a complete sentence
    can also be a proper prefix of another)."""
    g, cnf, sampler = cfg3b
    inside = nltk.InsideChartParser(g)
    for s in _sentences(sampler, 3, seed=1):
        tr = PrefixParser(cnf).parse(s)
        total = sum(t.prob() for t in inside.parse([str(x) for x in s]))
        complete = math.exp(tr.prefix_logprob[-1]) * tr.end_prob[-1]
        assert complete == pytest.approx(total, rel=1e-9)


def test_dense_recount_of_sparse_features(cfg3b):
    """A dense chart (numpy, every cell) recomputes each column and counts products of two nonzeros."""
    _, cnf, sampler = cfg3b
    s = _sentences(sampler, 1, seed=2)[0][:40]
    tr = PrefixParser(cnf).parse(s)
    n_nt = len(cnf.nonterminals)
    rules = np.zeros((n_nt, n_nt, n_nt))
    for x, y, z, p in cnf.binary:
        rules[x, y, z] += p
    E = cnf.closure
    n = len(s)
    beta = np.zeros((n + 1, n + 1, n_nt))
    gamma = np.zeros((n + 1, n + 1, n_nt, n_nt))
    rho = np.zeros((n + 1, n_nt))
    rho[0, cnf.start] = 1.0
    nz = lambda a: a != 0  # noqa: E731
    for k in range(1, n + 1):
        for x, p in cnf.lexical[str(s[k - 1])].items():
            beta[k - 1, k, x] = p
        mul = add = 0
        for i in range(k - 2, -1, -1):
            for j in range(i + 1, k):
                c = int((nz(gamma[i, j]) & nz(beta[j, k])[None, :]).sum())
                mul, add = mul + c, add + c
                beta[i, k] += gamma[i, j] @ beta[j, k]
            add -= int(nz(beta[i, k]).sum())
        delta = np.zeros((k, n_nt, n_nt))
        for i in range(k):
            c = int((nz(rules) & nz(beta[i, k])[None, :, None]).sum())
            gamma[i, k] = np.einsum("xyz,y->xz", rules, beta[i, k])
            mul, add = mul + c, add + c - int(nz(gamma[i, k]).sum())
            c = int((nz(E)[:, :, None] & nz(gamma[i, k])[None]).sum())
            delta[i] = np.einsum("xy,yz->xz", E, gamma[i, k])
            mul, add = mul + c, add + c - int(nz(delta[i]).sum())
            c = int((nz(rho[i])[:, None] & nz(delta[i])).sum())
            rho[k] += rho[i] @ delta[i]
            mul, add = mul + c, add + c
        add -= int(nz(rho[k]).sum())
        assert tr.features["ops_mul"][k - 1] == mul and tr.features["ops_add"][k - 1] == add
        assert tr.features["active_beta_end"][k - 1] == int(nz(beta[:k, k]).sum())
        assert tr.features["active_gamma_slice"][k - 1] == int(nz(gamma[:k, k]).sum())


def test_off_grammar_token_is_reported_with_its_position(cfg3b):
    _, cnf, sampler = cfg3b
    s = _sentences(sampler, 1, seed=4)[0]
    parser = PrefixParser(cnf)
    parser.parse(s[:10])
    dist = parser.next_token_probs()
    bad = next(int(a) for a in cnf.terminals if dist[a] == 0)
    tr = parser.parse(s[:10] + [bad] + s[11:20])
    assert tr.off_grammar_at == 10
    assert np.all(np.isfinite(tr.prefix_logprob[:10])) and np.all(np.isnan(tr.prefix_logprob[10:]))
    assert all(np.all(tr.features[f][10:] == -1) for f in FEATURES)
    with pytest.raises(ValueError, match="left the grammar at token 10"):
        parser.append(1)
    assert PrefixParser(cnf).parse([7]).off_grammar_at == 0  # a token the grammar never produces


def test_grammars_without_a_usable_cnf_are_refused():
    with pytest.raises(ValueError, match="unary cycle"):
        to_cnf(nltk.PCFG.fromstring("S -> A [0.5] | 'a' [0.5]\nA -> S [0.5] | 'b' [0.5]"))
    eps = nltk.PCFG.fromstring("S -> 'a' S [0.5] | [0.5]")
    with pytest.raises(ValueError, match="ε rule"):
        to_cnf(eps)
    with pytest.raises(ValueError, match="binarization"):
        to_cnf(nltk.PCFG.fromstring(TINY), binarization="left")


def test_agrees_with_genlm_grammar(cfg3b):
    """Prefix and next-token probabilities against genlm-grammar's Earley LM (a different algorithm)."""
    genlm = pytest.importorskip("genlm.grammar")
    g, cnf, sampler = cfg3b
    text = "\n".join(f"{p.prob()}: {p.lhs()} → " + " ".join(str(s) for s in p.rhs()) for p in g.productions())
    lm = genlm.EarleyLM(genlm.CFG.from_string(text, genlm.Float, start=str(g.start())))
    s = _sentences(sampler, 1, seed=5)[0]
    tr = PrefixParser(cnf).parse(s)
    context = tuple(str(t) for t in s)
    for k in range(len(s) + 1):
        theirs = lm.p_next(context[:k])
        ours = dict(zip(tr.terminals + [END], tr.next_token[k]))
        for a in tr.terminals:
            assert ours[a] == pytest.approx(theirs.get(a, 0.0), abs=1e-12)
        assert ours[END] == pytest.approx(theirs.get(lm.eos, 0.0), abs=1e-12)
