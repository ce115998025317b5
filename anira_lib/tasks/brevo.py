"""BREVO: list the dependencies of a query node in a DAG, knob N = number of nodes (paper §5.1).

Sequence: BOS  p1 c1 p2 c2 ...  QUERY q  ANSWER a1 ... ak  EOS, where "p c" means c depends on p
(all edges, shuffled). Node names are single tokens drawn without replacement from N names.
Graph (docs/tasks.md): the first r nodes (r uniform in 1..⌊(n-1)/4⌋+1) have no dependencies; each
later node depends on k ∈ 1..min(4, eligible) earlier nodes, chosen among those that are still a
dependency of fewer than 4 nodes. The query is the last-created node.

Target (ANIRA default): the transitive predecessors of q in DFS post-order, predecessors visited in
increasing order of their name token (the "lexicographic order by node name" of the paper, with
names as token ids), q excluded. `target="reference"` gives a random valid topological order of
the ancestors ending with q (the reference's convention). Supervision: ANSWER, the answer tokens,
EOS. The checker re-parses the edges from the token sequence and runs its own iterative traversal.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .base import Example, TaskSampler

PAD, BOS, EOS, QUERY, ANSWER = 0, 1, 2, 3, 4
FIRST_NAME = 5


@dataclass(frozen=True)
class BrevoTask(TaskSampler):
    """BREVO sampler and checker. max_nodes [N]: names come from N tokens; training n ∈ 3..N."""

    max_nodes: int = 70
    target: str = "dfs"  # "dfs" (ANIRA) | "reference"
    seed: int = 0

    name = "brevo"
    knob_label = "number of nodes n"

    def __post_init__(self):
        if self.max_nodes < 3:
            raise ValueError(f"BREVO max_nodes (N) must be >= 3 (a query needs a dependency), got {self.max_nodes}.")
        if self.target not in ("dfs", "reference"):
            raise ValueError(f"BREVO target={self.target!r} is unknown; use 'dfs' (ANIRA) or 'reference'.")
        sizes = list(range(3, self.max_nodes + 1))
        weights = [1.0 / (n + math.sqrt(self.max_nodes)) for n in sizes]
        object.__setattr__(self, "_sizes", sizes)
        object.__setattr__(self, "_cum_weights", list(_accumulate(weights)))

    bos_id, eos_id = BOS, EOS  # class attributes, not dataclass fields

    @property
    def train_knobs(self) -> list[int]:
        """The knob values training draws (what an evaluation covers by default)."""
        return list(range(3, self.max_nodes + 1))

    @property
    def vocab_size(self) -> int:
        return FIRST_NAME + self.max_nodes

    @property
    def pad_id(self) -> int:
        return PAD

    @property
    def max_len(self) -> int:
        n = self.max_nodes
        return 1 + 2 * (4 * n) + 3 + n + 1

    def decode(self, tokens):
        special = {PAD: "<pad>", BOS: "<bos>", EOS: "<eos>", QUERY: "<query>", ANSWER: "<answer>"}
        return [special.get(t, f"v{t - FIRST_NAME + 1}") for t in tokens]

    # -- sampler ----------------------------------------------------------------------------
    def sample_graph(self, rng: random.Random, n: int):
        """(names, deps): names[i] is node i's token; deps[i] lists the earlier nodes i depends on."""
        rand = rng.random  # uniform draws as int(rand() * m): ~2x faster than randint/sample here
        while True:
            names = [FIRST_NAME + x for x in rng.sample(range(self.max_nodes), n)]
            r = 1 + int(rand() * ((n - 1) // 4 + 1))
            deps: list[list[int]] = [[] for _ in range(n)]
            used = [0] * n
            eligible = list(range(r))
            ok = True
            for i in range(r, n):
                m = len(eligible)
                if not m:
                    ok = False
                    break
                k = 1 + int(rand() * min(4, m))
                picks: list[int] = []  # k distinct positions of `eligible`, uniformly, in draw order
                while len(picks) < k:
                    x = int(rand() * m)
                    if x not in picks:
                        picks.append(x)
                chosen = [eligible[x] for x in picks]
                deps[i] = chosen
                for j in chosen:
                    used[j] += 1
                    if used[j] == 4:
                        eligible.remove(j)
                eligible.append(i)
            if ok:
                return names, deps

    def sample(self, rng: random.Random, n: int | None = None) -> Example:
        if n is None:
            n = rng.choices(self._sizes, cum_weights=self._cum_weights)[0]
        elif not 3 <= n <= self.max_nodes:
            raise ValueError(f"BREVO needs 3 <= n <= N={self.max_nodes}, got n={n}.")
        names, deps = self.sample_graph(rng, n)
        edges = [(names[j], names[i]) for i in range(n) for j in deps[i]]
        rand = rng.random
        for a in range(len(edges) - 1, 0, -1):  # Fisher-Yates on random(): faster than rng.shuffle
            b = int(rand() * (a + 1))
            edges[a], edges[b] = edges[b], edges[a]
        q = n - 1
        if self.target == "dfs":
            order = _dfs_postorder(q, deps, names)
        else:
            order = _random_topological(q, deps, rng) + [q]
        answer = [names[i] for i in order]
        tokens = [BOS] + [t for e in edges for t in e] + [QUERY, names[q], ANSWER] + answer + [EOS]
        n_prompt = 1 + 2 * len(edges) + 2
        targets = [False] * n_prompt + [True] * (len(answer) + 2)
        return Example(tokens, targets, n, {"answer": answer})



    # -- checker ----------------------------------------------------------------------------
    @staticmethod
    def parse(tokens: list[int]):
        """tokens -> (parents: {child: [parent, ...]}, query, answer list)."""
        qpos = tokens.index(QUERY)
        parents: dict[int, list[int]] = {}
        for p, c in zip(tokens[1:qpos:2], tokens[2:qpos:2]):
            parents.setdefault(c, []).append(p)
        query = tokens[qpos + 1]
        end = tokens.index(EOS, qpos) if EOS in tokens[qpos:] else len(tokens)
        return parents, query, tokens[qpos + 3:end]

    def canonical_answer(self, tokens: list[int]) -> list[int]:
        """DFS post-order of the query's ancestors by an explicit-stack traversal of the parsed edges."""
        parents, query, _ = self.parse(tokens)
        order, seen = [], {query}
        stack = [(query, iter(sorted(parents.get(query, []))))]
        while stack:
            node, it = stack[-1]
            nxt = next((p for p in it if p not in seen), None)
            if nxt is None:
                stack.pop()
                if node != query:
                    order.append(node)
            else:
                seen.add(nxt)
                stack.append((nxt, iter(sorted(parents.get(nxt, [])))))
        return order

    def is_valid(self, tokens: list[int], answer: list[int]) -> bool:
        """Reference validity: the right node set, every node after all of its dependencies."""
        parents, query, _ = self.parse(tokens)
        ancestors = transitive_dependencies(parents, query)
        body = answer[:-1] if self.target == "reference" and answer and answer[-1] == query else answer
        if len(body) != len(ancestors) or set(body) != ancestors:
            return False
        placed = set()
        for node in body:
            if any(p not in placed for p in parents.get(node, [])):
                return False
            placed.add(node)
        return True

    def check(self, ex: Example, predicted: list[int] | None = None) -> bool:
        """Exact match of the canonical list (dfs target) or validity (reference target). `predicted`
        holds the supervised positions' tokens: ANSWER, the answer, EOS."""
        if predicted is None:
            answer = self.parse(ex.tokens)[2]
        else:
            predicted = list(predicted)
            if len(predicted) < 2 or predicted[0] != ANSWER or predicted[-1] != EOS:
                return False
            answer = predicted[1:-1]
        if self.target == "dfs":
            return answer == self.canonical_answer(ex.tokens)
        return self.is_valid(ex.tokens, answer)


def transitive_dependencies(parents: dict, node) -> set:
    """Every node `node` depends on, directly or through others ({child: [parent, ...]} edges)."""
    found, todo = set(), [node]
    while todo:
        for p in parents.get(todo.pop(), []):
            if p not in found:
                found.add(p)
                todo.append(p)
    return found


def _accumulate(xs):
    total = 0.0
    for x in xs:
        total += x
        yield total


def _dfs_postorder(q: int, deps: list[list[int]], names: list[int]) -> list[int]:
    order, seen = [], {q}

    def visit(u):
        for p in sorted(deps[u], key=names.__getitem__):
            if p not in seen:
                seen.add(p)
                visit(p)
                order.append(p)

    visit(q)
    return order


def _random_topological(q: int, deps: list[list[int]], rng: random.Random) -> list[int]:
    ancestors, frontier = set(), [q]
    while frontier:
        for p in deps[frontier.pop()]:
            if p not in ancestors:
                ancestors.add(p)
                frontier.append(p)
    remaining = {a: {p for p in deps[a]} for a in ancestors}
    order = []
    ready = sorted(a for a, ps in remaining.items() if not ps)
    while ready:
        u = ready.pop(rng.randrange(len(ready)))
        order.append(u)
        for a, ps in remaining.items():
            if u in ps:
                ps.discard(u)
                if not ps:
                    ready.append(a)
    return order
