"""PCFGs as data: load a grammar file into `nltk.PCFG` with a strict normalisation check, sample
sentences fast, and recognise them.

Grammar files use nltk's `PCFG.fromstring` format; lines starting with `#` are comments; the first
rule's left-hand side is the start symbol. Terminals are quoted integers (token ids).
"""

from __future__ import annotations

import bisect
import random
from functools import lru_cache
from pathlib import Path

GRAMMAR_DIR = Path(__file__).resolve().parent / "grammars"
TOLERANCE = 1e-9


def grammar_path(name_or_path: str | Path) -> Path:
    """'cfg3b' (shipped) or a file path -> the grammar file."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = GRAMMAR_DIR / f"{name_or_path}.pcfg"
    if shipped.is_file():
        return shipped
    raise FileNotFoundError(f"grammar {name_or_path!r} not found; shipped grammars: "
                            f"{sorted(p.stem for p in GRAMMAR_DIR.glob('*.pcfg'))}, or pass a file path.")


def load_pcfg(name_or_path: str | Path = "cfg3b"):
    """Read a grammar file into an `nltk.PCFG`; each left-hand side's rules must sum to 1 (±1e-9)."""
    import nltk

    path = grammar_path(name_or_path)
    text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
    totals: dict[str, float] = {}
    for prod in nltk.grammar.read_grammar(text, nltk.grammar.standard_nonterm_parser,
                                          probabilistic=True)[1]:
        totals[str(prod.lhs())] = totals.get(str(prod.lhs()), 0.0) + prod.prob()
    bad = {lhs: s for lhs, s in totals.items() if abs(s - 1.0) > TOLERANCE}
    if bad:
        detail = ", ".join(f"{lhs}: {s:.6g}" for lhs, s in sorted(bad.items()))
        raise ValueError(f"grammar {path}: the rules of each left-hand side must sum to 1, but {detail}. "
                         "Fix the probabilities in the file.")
    return nltk.PCFG.fromstring(text)


class PCFGSampler:
    """Fast ancestral sampling and recognition for an acyclic PCFG with integer terminals.

    Sampling precomputes, for every nonterminal whose full expansions number at most
    `table_limit`, the table of (terminal string, probability); the recursion stops at those.
    """

    def __init__(self, grammar, table_limit: int = 10_000):
        import nltk

        self.start = str(grammar.start())
        self.rules: dict[str, list[tuple[tuple, float]]] = {}
        for prod in grammar.productions():
            rhs = tuple(str(s) if isinstance(s, nltk.Nonterminal) else int(s) for s in prod.rhs())
            self.rules.setdefault(str(prod.lhs()), []).append((rhs, prod.prob()))
        self._check_acyclic()
        self.tables: dict[str, tuple[list[tuple[int, ...]], list[float]]] = {}
        for nt in self.rules:
            exp = self._expansions(nt, table_limit)
            if exp is not None:
                strings, probs = zip(*exp)
                cum, total = [], 0.0
                for p in probs:
                    total += p
                    cum.append(total)
                self.tables[nt] = (list(strings), cum)
        self.terminals = sorted({s for rules in self.rules.values() for rhs, _ in rules for s in rhs
                                 if isinstance(s, int)})

    def _check_acyclic(self):
        state: dict[str, int] = {}

        def visit(nt, path):
            if state.get(nt) == 1:
                raise ValueError(f"grammar is recursive ({' -> '.join(path + [nt])}); this sampler needs "
                                 "an acyclic grammar.")
            if state.get(nt) == 2:
                return
            state[nt] = 1
            for rhs, _ in self.rules[nt]:
                for s in rhs:
                    if isinstance(s, str):
                        if s not in self.rules:
                            raise ValueError(f"nonterminal {s} (used by {nt}) has no rules.")
                        visit(s, path + [nt])
            state[nt] = 2

        for nt in self.rules:
            visit(nt, [])

    def _expansions(self, nt: str, limit: int):
        """All (string, prob) of `nt`, or None if more than `limit`."""
        out = []
        for rhs, p in self.rules[nt]:
            partial = [((), p)]
            for s in rhs:
                if isinstance(s, int):
                    partial = [(t + (s,), q) for t, q in partial]
                    continue
                sub = self.tables.get(s) and list(zip(self.tables[s][0], _diffs(self.tables[s][1])))
                if sub is None or sub is False:
                    sub = self._expansions(s, limit)
                if sub is None or len(partial) * len(sub) > limit:
                    return None
                partial = [(t + u, q * r) for t, q in partial for u, r in sub]
            out.extend(partial)
            if len(out) > limit:
                return None
        return out

    def sample(self, rng: random.Random, symbol: str | None = None) -> list[int]:
        """One sentence (list of terminal ids) derived from `symbol` (default: the start symbol)."""
        out: list[int] = []
        self._emit(symbol or self.start, rng.random, out)
        return out

    def _emit(self, nt, rand, out):
        table = self.tables.get(nt)
        if table is not None:
            strings, cum = table
            out.extend(strings[min(bisect.bisect_right(cum, rand() * cum[-1]), len(strings) - 1)])
            return
        rules = self.rules[nt]
        u, acc, rhs = rand(), 0.0, rules[-1][0]
        for r, p in rules:
            acc += p
            if u < acc:
                rhs = r
                break
        for s in rhs:
            if isinstance(s, int):
                out.append(s)
            else:
                self._emit(s, rand, out)

    def recognizes(self, tokens: list[int], symbol: str | None = None) -> bool:
        """True iff `symbol` derives exactly `tokens`: a chart of the span ends each nonterminal can
        reach from each start position (memoised, so each (nonterminal, start) is computed once)."""
        tokens = tuple(tokens)
        n = len(tokens)
        rules = self.rules

        @lru_cache(maxsize=None)
        def ends(sym, i):
            if isinstance(sym, int):
                return frozenset((i + 1,)) if i < n and tokens[i] == sym else frozenset()
            found = set()
            for rhs, _ in rules[sym]:
                frontier = {i}
                for s in rhs:
                    frontier = {j for k in frontier for j in ends(s, k)}
                    if not frontier:
                        break
                found |= frontier
            return frozenset(found)

        return n in ends(symbol or self.start, 0)


def _diffs(cum):
    prev, out = 0.0, []
    for c in cum:
        out.append(c - prev)
        prev = c
    return out
