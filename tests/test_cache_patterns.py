"""The cache contract over its whole small input space (docs/cache_contract.md):
a cached forward (prefill, then token-by-token decoding) equals the uncached one, for every
assignment of exit depths to short prompts; outputs at position t never depend on later tokens or
their depths; greedy generate() equals an uncached greedy loop.

The patterns: D = 3, prompts of 2, 3 and 4 tokens, every assignment of depths 1..3 (9 + 27 + 81 =
117 patterns). Each runs as a batch of three rows: the pattern; the same prompt without its first
token, left-padded (so padding and the pattern's tail are covered); the pattern with its last token
and that token's depth changed. The prompt is prefilled in one call, then two tokens (depths 1 and D)
are decoded one at a time. That is done for ANIRA-E, ANIRA-O (which also reports its decider's
distribution under forced depths) and fixed depth, on four blocks: R = 1, R = 2, R = 1 with input
injection, R = 2 with input injection from a zero initial state: 117 x 3 x 4 = 1,404 cases.
"""

import itertools

import pytest
import torch

from anira_lib import AllocationCache, AniraConfig, AniraForCausalLM
from anira_lib.modeling.cache import CacheStep, SlotView

D, VOCAB, TOL = 3, 13, 1e-5
PATTERNS = [p for T in (2, 3, 4) for p in itertools.product(range(1, D + 1), repeat=T)]
DECODED = (1, D)  # depths of the two decoded tokens: one frozen below D, one that runs to D
BLOCKS = {
    "R=1": {},
    "R=2": dict(recurrent_layers=2),
    "R=1, adapter": dict(input_injection=True),
    "R=2, adapter, zero state": dict(recurrent_layers=2, input_injection=True, initial_state="zeros"),
}
DECIDERS = ("early", "online", "none")


def make_model(decider, block=None, seed=0, spread=None):
    """Weights N(0, 0.18) (attention far from uniform, so a wrong key shows); `spread`: std of the
    decider's output weights, so that its own choices exit at many depths."""
    torch.manual_seed(seed)
    cfg = AniraConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_attention_heads=2,
                      num_key_value_heads=1, max_depth=D, decider=decider, pad_token_id=0, **(block or {}))
    model = AniraForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.18)
        if spread is not None:
            model.model.decider.down.weight.normal_(0, spread)
    return model


def pattern_batch(pattern):
    """ids, mask, depths (3, T + 2) for one pattern; the ids depend on T only, so patterns that share a
    prefix share the tokens of that prefix."""
    T = len(pattern)
    g = torch.Generator().manual_seed(T)
    ids = torch.randint(1, VOCAB, (1, T + 2), generator=g).repeat(3, 1)
    depths = torch.tensor([list(pattern) + list(DECODED)]).repeat(3, 1)
    mask = torch.ones_like(ids)
    mask[1, 0], ids[1, 0], depths[1, 0] = 0, 0, 1  # row 1: left padding in place of the first token
    ids[2, T - 1] = ids[2, T - 1] % (VOCAB - 1) + 1  # row 2: the last prompt token and its depth changed
    depths[2, T - 1] = pattern[-1] % D + 1
    return ids, mask, depths


@torch.no_grad()
def cached(model, ids, mask, prefill, **kw):
    """Prefill `prefill` tokens, then decode the rest one at a time; kw (per call) from `kw_for(t0, t1)`."""
    cache = AllocationCache(model.config)
    spans = [(0, prefill)] + [(t, t + 1) for t in range(prefill, ids.shape[1])]
    outs = [model(input_ids=ids[:, a:b], attention_mask=mask[:, :b], past_key_values=cache,
                  **{k: (v[:, a:b] if torch.is_tensor(v) else v) for k, v in kw.items()}) for a, b in spans]
    return {name: torch.cat([getattr(o, name) for o in outs], 1) for name in ("logits", "exit_depths", "exit_probs")}


def compare(model, ids, mask, prefill, **kw):
    """Max |cached - uncached| over real tokens (logits, exit probs), whether depths agree, cached outputs."""
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask, **kw)
    out = cached(model, ids, mask, prefill, **kw)
    real = mask.bool()
    err = max((out[n][real] - getattr(full, n)[real]).abs().max().item() for n in ("logits", "exit_probs"))
    return err, torch.equal(out["exit_depths"][real], full.exit_depths[real]), out


def pattern_failures(model, patterns=PATTERNS):
    """Every way the model breaks the contract over `patterns`: (pattern, what, size)."""
    failures, prefix_logits = [], {}
    for pattern in patterns:
        T = len(pattern)
        ids, mask, depths = pattern_batch(pattern)
        err, same, out = compare(model, ids, mask, T, exit_depths=depths)
        if err > TOL or not same:
            failures.append((pattern, "cached != uncached", err))
        change = (out["logits"][2, :T - 1] - out["logits"][0, :T - 1]).abs().max().item()
        if change > TOL:  # a later token (and its depth) changed the outputs before it
            failures.append((pattern, "later token changed earlier outputs", change))
        for k in range(1, T):  # same depths up to k: positions < k must not see the later depths
            ref = prefix_logits.setdefault((T, pattern[:k]), out["logits"][0, :k])
            change = (out["logits"][0, :k] - ref).abs().max().item()
            if change > TOL:
                failures.append((pattern, f"depths after position {k - 1} changed its outputs", change))
    return failures


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("decider", DECIDERS)
def test_every_depth_pattern_is_cached_exactly_and_causally(decider, block):
    model = make_model(decider, BLOCKS[block])
    assert pattern_failures(model) == []


def test_the_reported_two_token_case_is_exact():
    """The defect as first seen: P = 1, D = 4, C = 1, H = 32, input [[7, 11]], forced depths [[2, 1]]."""
    torch.manual_seed(0)
    cfg = AniraConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_attention_heads=4, max_depth=4,
                      decider="none", pad_token_id=0)
    model = AniraForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.18)
        ids = torch.tensor([[7, 11]])
        outs = {}
        for second in (1, 2):
            depths = torch.tensor([[2, second]])
            full = model(ids, exit_depths=depths).logits
            outs[second] = model(ids, exit_depths=depths, past_key_values=AllocationCache(cfg)).logits
            assert (outs[second] - full).abs().max() <= TOL
    assert (outs[1][0, 0] - outs[2][0, 0]).abs().max() <= TOL  # token 0 ignores token 1's depth


def serve_stale_frozen_keys(monkeypatch):
    """Mutant: a frozen token gets the key/value it produced at its last active iteration (from
    h_{d-1}) instead of the one from its frozen state h_d."""
    original = CacheStep.add_frozen

    def stale(self, layer, rows, keys, values, seq, valid, depth):
        keys, values = keys.clone(), values.clone()
        pool = self.cache.core_pools[layer]
        for b, j in valid.nonzero().tolist():
            d = depth if isinstance(depth, int) else int(depth[b, j])
            n = pool.n
            own = (pool.row[:n] == rows[b]) & (pool.seq[:n] == seq[b, j]) & (pool.lo[:n] == d - 1) & (pool.hi[:n] == d - 1)
            keys[b, :, j], values[b, :, j] = pool.keys[own.nonzero()[0, 0]], pool.values[own.nonzero()[0, 0]]
        original(self, layer, rows, keys, values, seq, valid, depth)

    monkeypatch.setattr(CacheStep, "add_frozen", stale)


def drop_mask_for_one_query_per_row(monkeypatch):
    """Mutant: the old shortcut, 'one running query per row means decoding', so no causal mask."""
    original = SlotView.__init__

    def shortcut(self, pool, view, rows, query_seq, query_valid, dtype, one_step, layout=None):
        original(self, pool, view, rows, query_seq, query_valid, dtype, one_step or query_seq.shape[1] == 1, layout)

    monkeypatch.setattr(SlotView, "__init__", shortcut)


@pytest.mark.parametrize("mutant", [serve_stale_frozen_keys, drop_mask_for_one_query_per_row])
@pytest.mark.parametrize("block", ["R=1", "R=2, adapter, zero state"])
def test_mutant_caches_fail_the_pattern_test(mutant, block, monkeypatch):
    model = make_model("none", BLOCKS[block])
    mutant(monkeypatch)
    failures = pattern_failures(model)
    assert len(failures) >= 5, failures
    assert max(size for _, _, size in failures) > 1e-3


def random_prompts(n, seed):
    """n batches of 2 rows, lengths 2..4 + 2 decoded tokens, row 1 left-padded by 0 or 1 token."""
    g = torch.Generator().manual_seed(seed)
    for k in range(n):
        T = 2 + k % 3
        ids = torch.randint(1, VOCAB, (2, T + 2), generator=g)
        mask = torch.ones_like(ids)
        mask[1, : k % 2] = 0
        yield ids.masked_fill(mask == 0, 0), mask, T


@pytest.mark.parametrize("block", ["R=1", "R=2", "R=2, adapter, zero state"])
@pytest.mark.parametrize("decider,rule", [("early", {}), ("online", {}),
                                          ("online", dict(depth_rule="threshold", halt_threshold=0.05)),
                                          ("online", dict(depth_rule="threshold", halt_threshold=0.95))])
def test_deciders_own_choices_are_cached_exactly(decider, rule, block):
    model = make_model(decider, BLOCKS[block], spread=3.0)
    seen = set()
    for ids, mask, T in random_prompts(30, seed=len(block)):
        err, same, out = compare(model, ids, mask, T, **rule)
        assert err <= TOL and same
        seen.update(tuple(row[m.bool()].tolist()) for row, m in zip(out["exit_depths"], mask))
    if rule.get("halt_threshold") != 0.05:  # at τ = 0.05 nearly every token exits at 1, where the defect was seen
        assert len(seen) >= 15 and len({d for p in seen for d in p}) >= 2  # the deciders chose many patterns


def uncached_greedy(model, ids, mask, steps, **rule):
    seq, mask = ids, mask
    for _ in range(steps):
        with torch.no_grad():
            nxt = model(input_ids=seq, attention_mask=mask, **rule).logits[:, -1].argmax(-1, keepdim=True)
        seq, mask = torch.cat([seq, nxt], 1), torch.cat([mask, torch.ones_like(nxt)], 1)
    return seq


@pytest.mark.parametrize("block", ["R=1", "R=2, adapter, zero state"])
@pytest.mark.parametrize("tau", [0.05, 0.3, 0.5, 0.7, 0.95])
def test_greedy_generate_equals_uncached_loop_at_every_tau(tau, block):
    model = make_model("online", BLOCKS[block], spread=3.0)
    ids, mask, _ = next(random_prompts(1, seed=7))
    ids, mask = torch.cat([ids, ids], 1), torch.cat([mask, torch.ones_like(mask)], 1)  # 8-token prompts
    rule = dict(depth_rule="threshold", halt_threshold=tau)
    out = model.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0,
                         eos_token_id=None, **rule)
    assert torch.equal(out, uncached_greedy(model, ids, mask, 6, **rule))


def test_anira_e_greedy_generate_equals_uncached_loop():
    model = make_model("early", BLOCKS["R=2"], spread=3.0)
    ids, mask, _ = next(random_prompts(1, seed=8))
    out = model.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=None)
    assert torch.equal(out, uncached_greedy(model, ids, mask, 6))
