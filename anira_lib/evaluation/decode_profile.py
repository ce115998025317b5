"""Where a decode step's time goes: torch.profiler over greedy `generate()`, split by what runs.

Shares of the profiled wall time (all after one warm-up decode):

    layers       the decoder layers' forwards (Prelude, recurrent block, Coda): the compute the
                 layer-count bound counts
    decider      the exit decider's forward (ANIRA-E once per token, ANIRA-O after each iteration)
    embed_head   embedding, final norm and LM head
    bookkeeping  the rest of the model's forward: packing running tokens, masks, position embeddings,
                 views into the cache, frozen-entry writes, the loop's control
    generate     outside the model's forward: generate()'s logits processing, stopping checks, Python

Ranges are put around modules with forward hooks for the profiled call only, so the model runs its
ordinary code. A dense Llama profiles the same way (no decider; bookkeeping is its mask and rotary work).
The profiler adds a cost to every op it records, which weighs most where ops are many and small
(bookkeeping): read the shares to rank where time goes, and time with `measure_decode`.
"""

from __future__ import annotations

import collections
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch

from .savings import greedy_decode

CATEGORIES = ("layers", "decider", "embed_head", "bookkeeping", "generate")


def _category(name: str, module) -> str | None:
    kind = type(module).__name__
    if kind.endswith("DecoderLayer"):
        return "layers"
    if name.endswith("decider"):
        return "decider"
    if name.endswith(("embed_tokens", "lm_head")) or name in ("model.norm",):
        return "embed_head"
    return None


@contextmanager
def _ranges(model):
    """profiler ranges named anira::<category> around the modules of each category, and anira::forward
    around the model's whole forward; removed on exit."""
    handles = []

    def wrap(module, label):
        state = {}

        def pre(*_):
            state.setdefault("stack", []).append(torch.autograd.profiler.record_function(label).__enter__())

        def post(*_):
            state["stack"].pop().__exit__(None, None, None)

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))

    for name, module in model.named_modules():
        category = _category(name, module)
        if category is not None:
            wrap(module, f"anira::{category}")
    wrap(model, "anira::forward")
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def decode_profile(model, ids: torch.Tensor, new_tokens: int, **rule) -> dict[str, float]:
    """Shares (summing to 1) of the wall time of one greedy `generate()` of `new_tokens` after prompt ids
    (B, T), by CATEGORIES, plus 'wall_s'. `rule`: depth_rule / halt_threshold for the model."""
    def decode():
        greedy_decode(model, ids, new_tokens, **rule)

    decode()  # warm-up: first-call allocations and lazy initialisation stay out of the profile
    with _ranges(model), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        decode()
        wall = time.perf_counter() - t
    totals = {c: 0.0 for c in ("forward", *CATEGORIES)}
    for event in prof.events():
        if event.name.startswith("anira::"):
            totals[event.name.removeprefix("anira::")] += event.cpu_time_total / 1e6
    inside = totals["layers"] + totals["decider"] + totals["embed_head"]
    totals["bookkeeping"] = max(totals["forward"] - inside, 0.0)
    totals["generate"] = max(wall - totals["forward"], 0.0)
    total = sum(totals[c] for c in CATEGORIES) or 1.0
    return {**{c: totals[c] / total for c in CATEGORIES}, "wall_s": wall}


@torch.no_grad()
def ops_per_token(model, ids: torch.Tensor, new_tokens: int = 16, **rule) -> float:
    """aten ops the CPU dispatches per decoded token of a greedy `generate()` after prompt ids (B, T):
    (ops of new_tokens + 1 tokens - ops of 1 token) / new_tokens, so prefill is excluded. A count, not a
    time: it does not move with the machine, which makes it the before/after figure for bookkeeping."""
    def count(n):
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            greedy_decode(model, ids, n, **rule)
        return sum(1 for e in prof.events() if e.name.startswith("aten::"))

    count(1)  # warm-up
    return (count(new_tokens + 1) - count(1)) / new_tokens


def _source(frame, roots: tuple[str, ...]) -> str:
    """'module.py:function' of the innermost frame whose file lies under one of `roots`, else 'other'."""
    while frame is not None:
        path = frame.f_code.co_filename
        if any(root in path for root in roots):
            return f"{Path(path).name}:{frame.f_code.co_name}"
        frame = frame.f_back
    return "other"


@torch.no_grad()
def ops_by_source(model, ids: torch.Tensor, new_tokens: int = 8, **rule) -> pd.DataFrame:
    """Top-level aten ops per decoded token (as `ops_per_token`, prefill excluded), by the function of
    anira_lib or transformers that issued them: a frame with columns source ('cache.py:append', ...) and
    ops_per_token, largest first. Where `ops_per_token` says how much bookkeeping there is, this says
    where it comes from. Counted by a dispatch mode, so ops another op runs inside itself are not
    counted again (the profiler's count is larger)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    roots = (str(Path(__file__).parents[1]), f"{os.sep}transformers{os.sep}")

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.counts = collections.Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.counts[_source(sys._getframe(1), roots)] += 1
            return func(*args, **(kwargs or {}))

    def count(n):
        with Count() as mode:
            greedy_decode(model, ids, n, **rule)
        return mode.counts

    count(1)  # warm-up
    one, more = count(1), count(new_tokens + 1)
    rows = [(src, (more[src] - one[src]) / new_tokens) for src in more]
    frame = pd.DataFrame([r for r in rows if r[1] > 0], columns=["source", "ops_per_token"])
    return frame.sort_values("ops_per_token", ascending=False, kind="stable").reset_index(drop=True)
