"""Incremental prefix parsing of a PCFG (Nowak & Cotterell 2023) and the LANO difficulty proxies.

Paper §5.2 / A.7 and docs/prefix_parser.md. Pipeline:

    cnf = to_cnf(load_pcfg("cfg3b"))           # preterminals + right binarisation, probabilities kept
    parser = PrefixParser(cnf)
    trace = parser.parse([3, 1, 2, ...])         # one token at a time

Charts over half-open spans [i, k) (token w_{i+1..k}); after appending token k:

    β(i,k|X)   = Σ_{i<j<k} Σ_Z γ(i,j|X,Z) β(j,k|Z),       β(k-1,k|X) = p(X → w_k)
    γ(i,k|X,Z) = Σ_Y p(X → Y Z) β(i,k|Y)                  ("X's left child spans [i,k), Z is awaited")
    δ(i,k|X,Z) = Σ_Y E[X,Y] γ(i,k|Y,Z),                    E = (I - P_L)^-1, P_L[X,Y] = Σ_Z p(X → Y Z)
    ρ(k)[Z]    = Σ_{i<k} Σ_X ρ(i)[X] δ(i,k|X,Z),           ρ(0) = e_S;  σ(k) = ρ(k) E

so prefix(w_1..k) = σ(k-1)·p(· → w_k), P(next = a | w_1..k) = σ(k)·p(· → a) / prefix(w_1..k) and
P(end | w_1..k) = β(0,k|S) / prefix(w_1..k). ρ/σ replace the π chart of the paper's algorithm with the
same probabilities (docs/prefix_parser.md, "cheaper equivalent").

Features of token k (the proxies of Table 1):
    active_beta_end    #{(i,X): β(i,k|X) > 0}                 parse convergence
    active_gamma_slice #{(i,X,Z): γ(i,k|X,Z) > 0}             parse-space expansion
    ops_mul, ops_add   arithmetic of the column update, counting only products of two nonzeros;
                       additions per contraction = nonzero products - nonzero outputs.
Evaluation order (fixed; counts depend on it): the β column as the γ·β contraction above, then, per
start i, the γ slice, the δ slice and its contribution to ρ(k) (the prefix-probability column, our
sparse stand-in for the paper's π column). σ = ρE is not counted. On cfg3b every nonzero β, γ and δ
entry comes from exactly one product, so all additions are made in the ρ(k) contraction.

Everything is float64 with non-negative arithmetic only, so structural zeros stay exact zeros
(the counts rely on it). cfg3b sentences (≤ 432 tokens) reach prefix probabilities near 1e-97; float64
holds strings of roughly 1,500 cfg3b tokens before underflow.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

FEATURES = ("active_gamma_slice", "active_beta_end", "ops_add", "ops_mul")
END = "<end>"


# ----------------------------------------------------------------------------- grammar preparation

@dataclass
class CNFGrammar:
    """A PCFG in Chomsky normal form, indexed for the parser.

    nonterminals: names, index = id; binary: (X, Y, Z, p) for X → Y Z; lexical: terminal → {X: p};
    closure: E = (I - P_L)^-1 (N, N) with structural zeros exact; notes: what the conversion did."""

    nonterminals: list[str]
    start: int
    binary: list[tuple[int, int, int, float]]
    lexical: dict[str, dict[int, float]]
    closure: np.ndarray
    notes: list[str] = field(default_factory=list)
    binarization: str = "right"

    def __post_init__(self):
        self.terminals = sorted(self.lexical)
        self.by_left: dict[int, list[tuple[int, int, float]]] = {}
        for x, y, z, p in self.binary:
            self.by_left.setdefault(y, []).append((x, z, p))
        # E_cols[Y] = [(X, E[X,Y])] for E[X,Y] > 0: who can have Y as a (transitive) left corner.
        self.closure_cols = {y: [(x, float(self.closure[x, y])) for x in np.nonzero(self.closure[:, y])[0]]
                             for y in range(len(self.nonterminals))}
        self.closure_rows = {x: [(y, float(self.closure[x, y])) for y in np.nonzero(self.closure[x])[0]]
                             for x in range(len(self.nonterminals))}

    def __repr__(self):
        return (f"CNFGrammar({len(self.nonterminals)} nonterminals, {len(self.binary)} binary rules, "
                f"{sum(map(len, self.lexical.values()))} lexical rules, {self.binarization} binarisation)")


def to_cnf(grammar, binarization: str = "right") -> CNFGrammar:
    """Convert an `nltk.PCFG` to CNF without changing any string's probability.

    Terminals inside longer right-hand sides get preterminals `T[a] → a` (p = 1); right-hand sides
    longer than two are binarised to the right, X → A @[B C], @[B C] → B C (p = 1, shared between
    left-hand sides); acyclic unary rules X → Y are folded into X's other rules. Errors: ε rules and
    unary cycles (no CNF with the same distribution exists that this parser can use)."""
    import nltk

    if binarization != "right":
        raise ValueError(f"binarization={binarization!r} is not supported; use 'right' (the features are "
                         "defined for right binarisation, docs/prefix_parser.md).")
    rules: dict[str, list[tuple[tuple, float]]] = {}
    for prod in grammar.productions():
        lhs = str(prod.lhs())
        rhs = tuple(("N", str(s)) if isinstance(s, nltk.Nonterminal) else ("T", str(s)) for s in prod.rhs())
        if not rhs:
            raise ValueError(f"rule {prod} is an ε rule (empty right-hand side); this grammar has no CNF "
                             "the prefix parser can use. Remove ε rules from the grammar file first.")
        rules.setdefault(lhs, []).append((rhs, prod.prob()))
    notes: list[str] = []
    rules = _fold_unary(rules, notes)

    names: list[str] = []
    index: dict[str, int] = {}

    def nt(name):
        if name not in index:
            index[name] = len(names)
            names.append(name)
        return index[name]

    start = nt(str(grammar.start()))
    for lhs in rules:
        nt(lhs)
    binary: dict[tuple[int, int, int], float] = {}
    lexical: dict[str, dict[int, float]] = {}
    preterminals = set()

    def symbol(sym):
        kind, name = sym
        if kind == "N":
            return nt(name)
        pre = f"T[{name}]"
        if pre not in index:
            preterminals.add(name)
            lexical.setdefault(name, {})[nt(pre)] = 1.0
        return index[pre]

    def add_binary(x, y, z, p):
        binary[(x, y, z)] = binary.get((x, y, z), 0.0) + p

    binarised = set()
    for lhs, alts in rules.items():
        x = index[lhs]
        for rhs, p in alts:
            if len(rhs) == 1:  # X -> a (unary nonterminal rules were folded away)
                lexical.setdefault(rhs[0][1], {})
                lexical[rhs[0][1]][x] = lexical[rhs[0][1]].get(x, 0.0) + p
                continue
            syms = [symbol(s) for s in rhs]
            head, prob = x, p
            while len(syms) > 2:
                rest = syms[1:]
                name = "@[" + " ".join(names[s] for s in rest) + "]"
                new = name not in index
                r = nt(name)
                add_binary(head, syms[0], r, prob)
                if not new:
                    break  # the shared @[...] symbol already has its rules
                binarised.add(name)
                head, prob, syms = r, 1.0, rest
            else:
                add_binary(head, syms[0], syms[1], prob)
    if preterminals:
        notes.append(f"added preterminals for {len(preterminals)} terminals inside longer rules")
    if binarised:
        notes.append(f"right-binarised: {len(binarised)} shared @[...] symbols")
    n = len(names)
    left = np.zeros((n, n))
    for (x, y, _), p in binary.items():
        left[x, y] += p
    closure = _left_corner_closure(left, names)
    notes.append(f"CNF: {n} nonterminals, {len(binary)} binary rules")
    return CNFGrammar(names, start, [(x, y, z, p) for (x, y, z), p in binary.items()], lexical, closure, notes)


def _fold_unary(rules, notes):
    """Replace unary rules X → Y by X → α with p(X→Y)·p(Y→α); unary cycles are an error."""
    unary = {lhs: [(rhs[0][1], p) for rhs, p in alts if len(rhs) == 1 and rhs[0][0] == "N"]
             for lhs, alts in rules.items()}
    if not any(unary.values()):
        return rules
    state: dict[str, int] = {}
    done: dict[str, list] = {}

    def expand(x, path):
        if state.get(x) == 1:
            raise ValueError("unary cycle " + " -> ".join(path + [x]) + ": a grammar with unary cycles has no "
                             "CNF this parser can use. Break the cycle in the grammar file.")
        if x in done:
            return done[x]
        state[x] = 1
        out = [(rhs, p) for rhs, p in rules.get(x, []) if not (len(rhs) == 1 and rhs[0][0] == "N")]
        for y, p in unary[x] if x in unary else []:
            out += [(rhs, p * q) for rhs, q in expand(y, path + [x])]
        state[x] = 2
        done[x] = out
        return out

    folded = {x: expand(x, []) for x in rules}
    notes.append(f"folded {sum(map(len, unary.values()))} unary rules")
    return folded


def _left_corner_closure(left: np.ndarray, names) -> np.ndarray:
    """E = Σ_k P_L^k with exact structural zeros; errors when the series diverges (left recursion
    with probability mass 1)."""
    n = len(names)
    reach = np.eye(n, dtype=bool) | (left > 0)
    for _ in range(max(1, math.ceil(math.log2(max(n, 2)))) + 1):
        reach = reach | ((reach.astype(np.int64) @ reach.astype(np.int64)) > 0)
    power, total = np.eye(n), np.eye(n)
    for _ in range(n + 1):  # nilpotent grammars (cfg3b) end here with an exact finite sum
        power = power @ left
        if not power.any():
            return total
        total = total + power
    radius = max(abs(np.linalg.eigvals(left)))
    if radius >= 1 - 1e-12:
        raise ValueError(f"left-corner matrix has spectral radius {radius:.4f} >= 1: the grammar's left "
                         "recursion is not tight, so prefix probabilities are undefined.")
    return np.where(reach, np.linalg.inv(np.eye(n) - left), 0.0)


# ----------------------------------------------------------------------------- the parser

@dataclass
class ParseTrace:
    """Per-token results of parsing one string (n tokens; arrays of length n unless stated).

    prefix_logprob[k]: log prefix(w_1..k+1); next_token (n+1, T+1): P(next | w_1..k) for the grammar's
    terminals then `<end>`, row 0 = the empty prefix; end_prob[k]: P(end | w_1..k+1); features: the four
    proxies (int64). off_grammar_at: index of the first token with zero prefix probability (None if
    the string stays in the grammar); entries from that token on are NaN / -1."""

    tokens: list
    terminals: list[str]
    prefix_logprob: np.ndarray
    next_token: np.ndarray
    end_prob: np.ndarray
    features: dict[str, np.ndarray]
    off_grammar_at: int | None = None


class PrefixParser:
    """Incremental prefix parser: `append(token)` adds one token (an int or a terminal string)."""

    def __init__(self, cnf: CNFGrammar):
        self.cnf = cnf
        self.reset()

    def reset(self):
        self.k = 0
        self.gamma_end: list[dict[int, dict[int, list[tuple[int, float]]]]] = [{}]  # [j][i][Z] -> [(X, γ)]
        self.rho: list[dict[int, float]] = [{self.cnf.start: 1.0}]
        self.sigma: list[dict[int, float]] = [self._times_closure(self.rho[0])]
        self.beta_column: dict[int, dict[int, float]] = {}
        self.prefix = 1.0
        self.off_grammar_at: int | None = None

    def _times_closure(self, rho):
        out: dict[int, float] = {}
        rows = self.cnf.closure_rows
        for x, r in rho.items():
            for y, e in rows[x]:
                out[y] = out.get(y, 0.0) + r * e
        return out

    def next_token_probs(self) -> dict[str, float]:
        """P(next terminal | prefix) and P(<end> | prefix); the values sum to 1."""
        if self.off_grammar_at is not None:
            raise ValueError(f"the string left the grammar at token {self.off_grammar_at}; reset() first.")
        sigma = self.sigma[self.k]
        out = {a: sum(sigma.get(x, 0.0) * p for x, p in lex.items()) / self.prefix
               for a, lex in self.cnf.lexical.items()}
        out[END] = self.beta_column.get(0, {}).get(self.cnf.start, 0.0) / self.prefix if self.k else 0.0
        return out

    def append(self, token) -> dict[str, int] | None:
        """Read one more token. Returns its four features, or None if the prefix has probability 0
        (then `off_grammar_at` holds its index and the parser refuses further tokens)."""
        if self.off_grammar_at is not None:
            raise ValueError(f"the string left the grammar at token {self.off_grammar_at}; reset() first.")
        a = str(token)
        lex = self.cnf.lexical.get(a, {})
        prefix = sum(self.sigma[self.k].get(x, 0.0) * p for x, p in lex.items())
        if prefix <= 0.0:
            self.off_grammar_at = self.k
            return None
        k = self.k = self.k + 1
        self.prefix = prefix
        mul = add = 0

        # β column: j from k-1 down, since β(i,k) reads β(j,k) for j > i.
        beta: dict[int, dict[int, float]] = {k - 1: dict(lex)}
        heap = [-(k - 1)]
        while heap:
            j = -heapq.heappop(heap)
            bj = beta[j]
            for i, gz in self.gamma_end[j].items():
                acc = beta.get(i)
                if acc is None:
                    acc = beta[i] = {}
                    heapq.heappush(heap, -i)
                for z, bz in bj.items():
                    for x, g in gz.get(z, ()):
                        acc[x] = acc.get(x, 0.0) + g * bz
                        mul += 1
            # outputs of β(·,k) rows finished below j are counted once all contributions are in
        products_beta = mul
        beta = {i: b for i, b in beta.items() if b}
        outputs_beta = sum(len(b) for i, b in beta.items() if i < k - 1)
        add += products_beta - outputs_beta

        # γ slice at split point k, then δ slice and ρ(k).
        gamma_k: dict[int, dict[int, list[tuple[int, float]]]] = {}
        rho: dict[int, float] = {}
        active_gamma = 0
        cols = self.cnf.closure_cols
        for i, bi in beta.items():
            g: dict[tuple[int, int], float] = {}
            for y, b in bi.items():
                for x, z, p in self.cnf.by_left.get(y, ()):
                    g[(x, z)] = g.get((x, z), 0.0) + p * b
                    mul += 1
                    add += 1
            add -= len(g)
            active_gamma += len(g)
            byz: dict[int, list[tuple[int, float]]] = {}
            for (x, z), v in g.items():
                byz.setdefault(z, []).append((x, v))
            gamma_k[i] = byz
            d: dict[tuple[int, int], float] = {}
            for (y, z), v in g.items():
                for x, e in cols[y]:
                    d[(x, z)] = d.get((x, z), 0.0) + e * v
                    mul += 1
                    add += 1
            add -= len(d)
            rho_i = self.rho[i]
            for (x, z), v in d.items():
                r = rho_i.get(x)
                if r:
                    rho[z] = rho.get(z, 0.0) + r * v
                    mul += 1
                    add += 1
        add -= len(rho)
        self.gamma_end.append(gamma_k)
        self.rho.append(rho)
        self.sigma.append(self._times_closure(rho))
        self.beta_column = beta
        return {"active_gamma_slice": active_gamma, "active_beta_end": sum(len(b) for b in beta.values()),
                "ops_add": add, "ops_mul": mul}

    def parse(self, tokens) -> ParseTrace:
        """Parse `tokens` from the empty prefix; a token that leaves the grammar ends the parse."""
        self.reset()
        terms = self.cnf.terminals
        n = len(tokens)
        logp = np.full(n, np.nan)
        nxt = np.full((n + 1, len(terms) + 1), np.nan)
        end = np.full(n, np.nan)
        feats = {f: np.full(n, -1, dtype=np.int64) for f in FEATURES}
        dist = self.next_token_probs()
        nxt[0] = [dist[a] for a in terms] + [dist[END]]
        for t, tok in enumerate(tokens):
            f = self.append(tok)
            if f is None:
                break
            logp[t] = math.log(self.prefix)
            dist = self.next_token_probs()
            nxt[t + 1] = [dist[a] for a in terms] + [dist[END]]
            end[t] = dist[END]
            for name in FEATURES:
                feats[name][t] = f[name]
        return ParseTrace(list(tokens), terms, logp, nxt, end, feats, self.off_grammar_at)
