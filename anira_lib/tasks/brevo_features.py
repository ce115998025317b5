"""BREVO answer-token features (paper §6.4, Table 2; A.8), computed from an example's tokens.

The answer lists the query's transitive dependencies in DFS post-order. This module replays that
DFS (predecessors in increasing name order, as `BrevoTask.canonical_answer` does) and records, for the
answer token that writes node v (the j-th of k answer nodes):

Structural (the graph):
    N                      nodes in the graph: `n_nodes` (the example's knob) when given, else the
                           distinct names in its edges (a root nobody depends on is in no edge)
    out_degree_dep         "hub": nodes of the whole graph that depend on v
    out_degree_with_query  nodes that depend on v among the query's dependencies and the query itself
    in_degree              v's own dependencies
    remaining_subtree      answer nodes still to be written after v: k − j
Algorithmic (the DFS state when it writes v):
    dfs_depth              v's depth on the DFS path from the query (the query at 0; a direct dependency at 1)
    frontier               distinct nodes still to be visited from the path that remains once v is
                           written: unseen direct dependencies of the nodes on the stack
    newly_enabled          nodes depending on v (the query included) whose dependencies are all written
                           once v is
    distance_to_query      fewest dependency edges from v to the query
READ-style (needs the per-token expected depth of the same example, e.g. from an allocation dump):
    avg_pred_exp_depth, max_pred_exp_depth
                           mean and max expected depth of v's direct dependencies at the tokens that
                           wrote them (all are written before v); NaN for a node without dependencies

A node is "written" by its answer token, at the position whose logits predict it (`predicted_at`).
That position is one before the token (`position`), and it carries the compute.
"""

from __future__ import annotations

import math
from collections import deque

import pandas as pd

from .brevo import QUERY, BrevoTask, transitive_dependencies

FEATURES = ("N", "out_degree_dep", "out_degree_with_query", "in_degree", "remaining_subtree", "dfs_depth",
            "frontier", "newly_enabled", "distance_to_query", "avg_pred_exp_depth", "max_pred_exp_depth")


def _distances(parents: dict, q) -> dict:
    dist, todo = {q: 0}, deque([q])
    while todo:
        u = todo.popleft()
        for p in parents.get(u, []):
            if p not in dist:
                dist[p] = dist[u] + 1
                todo.append(p)
    return dist


def answer_token_features(tokens: list[int], expected_depth: list[float] | None = None,
                          n_nodes: int | None = None) -> pd.DataFrame:
    """One row per answer node of a BREVO example (dfs target), columns position, predicted_at, node and
    FEATURES (see the module docstring). `expected_depth` (T,): per-token expected depth of the same
    example, for the READ-style features (NaN without it). Raises ValueError when the example's
    answer is not the canonical DFS post-order (a wrong answer or the reference target)."""
    parents, q, answer = BrevoTask.parse(tokens)
    parents = {c: sorted(ps) for c, ps in parents.items()}
    nodes = set(parents) | {p for ps in parents.values() for p in ps}
    dependents: dict = {}
    for c, ps in parents.items():
        for p in ps:
            dependents.setdefault(p, []).append(c)
    ancestors = transitive_dependencies(parents, q)
    dist = _distances(parents, q)
    start = tokens.index(QUERY) + 3  # QUERY q ANSWER a1 ...: a1's position
    position = {node: start + j for j, node in enumerate(answer)}

    rows, written, seen = [], set(), {q}
    stack = [(q, iter(parents.get(q, [])))]
    while stack:
        node, it = stack[-1]
        nxt = next((p for p in it if p not in seen), None)
        if nxt is not None:
            seen.add(nxt)
            stack.append((nxt, iter(parents.get(nxt, []))))
            continue
        stack.pop()
        if node == q:
            break
        j = len(rows)
        if j >= len(answer) or answer[j] != node:
            raise ValueError("the example's answer is not the canonical DFS post-order (a wrong answer, or "
                             "target='reference'); these features are defined on correct dfs answers only.")
        written.add(node)
        pending = {p for u, _ in stack for p in parents.get(u, []) if p not in seen}
        preds = parents.get(node, [])
        pred_depths = [expected_depth[position[p] - 1] for p in preds] if expected_depth is not None else []
        rows.append({
            "position": position[node], "predicted_at": position[node] - 1, "node": node, "N": n_nodes or len(nodes),
            "out_degree_dep": len(dependents.get(node, [])),
            "out_degree_with_query": sum(c in ancestors or c == q for c in dependents.get(node, [])),
            "in_degree": len(preds), "remaining_subtree": len(answer) - j - 1, "dfs_depth": len(stack),
            "frontier": len(pending),
            "newly_enabled": sum(all(p in written for p in parents[c]) for c in dependents.get(node, [])
                                 if c in ancestors or c == q),
            "distance_to_query": dist[node],
            "avg_pred_exp_depth": sum(pred_depths) / len(pred_depths) if pred_depths else math.nan,
            "max_pred_exp_depth": max(pred_depths) if pred_depths else math.nan,
        })
    if len(rows) != len(answer):
        raise ValueError("the example's answer is not the canonical DFS post-order (extra answer tokens).")
    return pd.DataFrame(rows, columns=["position", "predicted_at", "node", *FEATURES])


def answer_token_table(records: list[dict], correct_only: bool = True) -> pd.DataFrame:
    """Features of every answer node in BREVO dump records, with the compute at the position that
    predicts it: columns example, knob, position, predicted_at, node, FEATURES, expected_depth,
    exit_depth. The paper's data: correct examples only (a wrong answer has no canonical DFS to
    replay). The READ-style features of a node without dependencies are NaN."""
    frames = []
    for r in records:
        if r.get("task") != "brevo":
            raise ValueError(f"answer_token_table reads BREVO dumps; this record is of task {r.get('task')!r}.")
        if correct_only and not r["correct"]:
            continue
        t = answer_token_features(r["tokens"], r["expected_depth"], n_nodes=r["knob"])
        t.insert(0, "example", r["example"])
        t.insert(1, "knob", r["knob"])
        t["expected_depth"] = [r["expected_depth"][p] for p in t["predicted_at"]]
        t["exit_depth"] = [r["exit_depths"][p] for p in t["predicted_at"]]
        frames.append(t)
    if not frames:
        raise ValueError("no correctly answered BREVO examples in these records: train longer, or evaluate more.")
    return pd.concat(frames, ignore_index=True)
