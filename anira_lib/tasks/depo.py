"""DEPO: k-step successor on a directed cycle, knob k (paper A.3; docs/tasks.md).

A directed cycle over n distinct single-token names is listed as its n edges "u v" (v follows u),
shuffled, then up to M queries on distinct source nodes. ANIRA format (default), per query:
`<query-k> q <ans> y <eoa>`, where the token <query-k> encodes k and y is q's k-th successor;
supervision on y only. Training: n ∈ 3..N with P(n) ∝ 1/(n + √N), k uniform in 1..K per query;
evaluation sets fix k for every query. The checker re-parses the edges and walks the cycle.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .base import Example, TaskSampler

PAD, BOS, EOS, ANS, EOA = 0, 1, 2, 3, 4
FIRST_QUERY = 5


@dataclass(frozen=True)
class DepoTask(TaskSampler):
    """DEPO sampler and checker. max_nodes [N] names, max_k [K] steps, queries [M] per sequence.
    min_nodes: smallest cycle drawn (default 3, the paper's). Raising it removes the short cycles on
    which k steps forward are few steps back (not in the paper; for settings that need k hops)."""

    max_nodes: int = 100
    max_k: int = 16
    queries: int = 10
    seed: int = 0
    min_nodes: int = 3

    name = "depo"
    knob_label = "hops k"

    def __post_init__(self):
        if self.max_nodes < 3:
            raise ValueError(f"DEPO max_nodes (N) must be >= 3, got {self.max_nodes}.")
        if not 3 <= self.min_nodes <= self.max_nodes:
            raise ValueError(f"DEPO min_nodes must be between 3 and max_nodes ({self.max_nodes}), got {self.min_nodes}.")
        if self.max_k < 1:
            raise ValueError(f"DEPO max_k (K) must be >= 1, got {self.max_k}.")
        if self.queries < 1:
            raise ValueError(f"DEPO queries (M) must be >= 1, got {self.queries}.")
        sizes = list(range(self.min_nodes, self.max_nodes + 1))
        cum, total = [], 0.0
        for n in sizes:
            total += 1.0 / (n + math.sqrt(self.max_nodes))
            cum.append(total)
        object.__setattr__(self, "_sizes", sizes)
        object.__setattr__(self, "_cum_weights", cum)

    @property
    def first_name(self) -> int:
        return FIRST_QUERY + self.max_k

    bos_id, eos_id = BOS, EOS  # class attributes, not dataclass fields

    @property
    def train_knobs(self) -> list[int]:
        """The knob values training draws (what an evaluation covers by default)."""
        return list(range(1, self.max_k + 1))

    @property
    def vocab_size(self) -> int:
        return self.first_name + self.max_nodes

    @property
    def pad_id(self) -> int:
        return PAD

    @property
    def max_len(self) -> int:
        return 2 + 2 * self.max_nodes + 5 * self.queries

    def query_id(self, k: int) -> int:
        return FIRST_QUERY + k - 1

    def decode(self, tokens):
        special = {PAD: "<pad>", BOS: "<bos>", EOS: "<eos>", ANS: "<ans>", EOA: "<eoa>"}
        out = []
        for t in tokens:
            if t in special:
                out.append(special[t])
            elif t < self.first_name:
                out.append(f"<query-{t - FIRST_QUERY + 1:02d}>")
            else:
                out.append(f"v{t - self.first_name + 1}")
        return out

    def sample(self, rng: random.Random, k: int | None = None, n: int | None = None) -> Example:
        """One sequence; every query uses step count `k` if given (an evaluation set), else k ~ U(1..K)."""
        if k is not None and not 1 <= k <= self.max_k:
            raise ValueError(f"DEPO needs 1 <= k <= K={self.max_k}, got k={k}.")
        if n is None:
            n = rng.choices(self._sizes, cum_weights=self._cum_weights)[0]
        elif not 3 <= n <= self.max_nodes:
            raise ValueError(f"DEPO needs 3 <= n <= N={self.max_nodes}, got n={n}.")
        base = self.first_name
        cycle = [base + x for x in rng.sample(range(self.max_nodes), n)]
        edges = [(cycle[i], cycle[(i + 1) % n]) for i in range(n)]
        rng.shuffle(edges)
        tokens = [BOS] + [t for e in edges for t in e]
        targets = [False] * len(tokens)
        ks = []
        for src in rng.sample(range(n), min(self.queries, n)):
            kk = k if k is not None else 1 + int(rng.random() * self.max_k)
            ks.append(kk)
            tokens += [self.query_id(kk), cycle[src], ANS, cycle[(src + kk) % n], EOA]
            targets += [False, False, False, True, False]
        tokens.append(EOS)
        targets.append(False)
        return Example(tokens, targets, k if k is not None else max(ks), {"ks": ks, "n": n})



    def answers(self, tokens: list[int]) -> list[int]:
        """The correct y of every query, by walking the cycle parsed from the edge list."""
        end = next(i for i, t in enumerate(tokens) if i > 0 and FIRST_QUERY <= t < self.first_name)
        succ = dict(zip(tokens[1:end:2], tokens[2:end:2]))
        out = []
        for i in range(end, len(tokens) - 1, 5):
            k, node = tokens[i] - FIRST_QUERY + 1, tokens[i + 1]
            for _ in range(k):
                node = succ[node]
            out.append(node)
        return out

    def check(self, ex: Example, predicted: list[int] | None = None) -> bool:
        """Exact match of every query's answer (the example's own, or `predicted`)."""
        given = [ex.tokens[i] for i, t in enumerate(ex.targets) if t] if predicted is None else list(predicted)
        return given == self.answers(ex.tokens)
