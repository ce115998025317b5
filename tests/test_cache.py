"""Allocation-aware KV cache: cached decoding reproduces the full forward pass (Eq. 5 semantics) at
mixed exit depths with left padding, generate() uses it untouched, the accounting adds up, and a
deliberately wrong cache is caught by the same test."""

import pytest
import torch
from transformers import AutoModelForCausalLM, DynamicCache

from anira_lib import AllocationCache, AniraConfig, AniraForCausalLM
from anira_lib.modeling.cache import CacheLayout, PackedKVLayer

B, T, PREFILL = 3, 10, 5


def make_model(decider, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = AniraConfig(vocab_size=13, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                      num_key_value_heads=2, max_depth=4, decider=decider, pad_token_id=0, **kw)
    model = AniraForCausalLM(cfg).eval()
    if model.model.decider is not None:
        with torch.no_grad():  # spread the decider so that tokens exit at many different depths
            model.model.decider.down.weight.normal_(0, 2.0)
    return model


def left_padded_batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 13, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, :3] = 0
    mask[2, :1] = 0
    return ids.masked_fill(mask == 0, 0), mask


@torch.no_grad()
def cached_pass(model, ids, mask, prefill=PREFILL):
    """Prefill `prefill` tokens with mixed exits, then decode the rest one token at a time.
    Returns logits, exit depths, exit distributions (concatenated over calls) and the cache."""
    cache = AllocationCache(model.config)
    outs = [model(input_ids=ids[:, :prefill], attention_mask=mask[:, :prefill], past_key_values=cache)]
    for t in range(prefill, ids.shape[1]):
        outs.append(model(input_ids=ids[:, t:t + 1], attention_mask=mask[:, :t + 1], past_key_values=cache))
    cat = lambda name: torch.cat([getattr(o, name) for o in outs], 1)  # noqa: E731
    return cat("logits"), cat("exit_depths"), cat("exit_probs"), cache


def cached_vs_full(model):
    """(max |Δlogits|, max |Δexit probs|, depths identical, full-pass depths) over a padded batch's real tokens."""
    ids, mask = left_padded_batch()
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask)
    logits, depths, probs, _ = cached_pass(model, ids, mask)
    real = mask.bool()
    return ((logits[real] - full.logits[real]).abs().max().item(),
            (probs[real] - full.exit_probs[real]).abs().max().item(),
            bool(torch.equal(depths[real], full.exit_depths[real])), full.exit_depths[real])


@pytest.mark.parametrize("decider", ["early", "online", "none"])
def test_cached_decoding_equals_full_forward(decider):
    logit_err, prob_err, same_depths, depths = cached_vs_full(make_model(decider))
    assert logit_err <= 1e-5 and prob_err <= 1e-5 and same_depths
    if decider != "none":
        assert len(depths.unique()) >= 3  # the test really exercises mixed exits


def test_forced_exit_depths_and_threshold_rule_are_cached_exactly():
    model = make_model("online")
    ids, mask = left_padded_batch(seed=3)
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask, depth_rule="threshold", halt_threshold=0.8)
        cache = AllocationCache(model.config)
        a = model(input_ids=ids[:, :4], attention_mask=mask[:, :4], past_key_values=cache, depth_rule="threshold",
                  halt_threshold=0.8)
        b = model(input_ids=ids[:, 4:], attention_mask=mask, past_key_values=cache, depth_rule="threshold",
                  halt_threshold=0.8)  # several new tokens against a filled cache
    real = mask.bool()
    logits = torch.cat([a.logits, b.logits], 1)
    assert (logits[real] - full.logits[real]).abs().max() <= 1e-5
    forced = torch.randint(1, 5, (B, T))
    with torch.no_grad():
        full = make_model("early")(input_ids=ids, attention_mask=mask, exit_depths=forced)
    model = make_model("early")
    cache = AllocationCache(model.config)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, exit_depths=forced, past_key_values=cache)
    assert (out.logits[real] - full.logits[real]).abs().max() <= 1e-5


def test_wrong_frozen_keys_are_caught(monkeypatch):
    """The stale-frozen-key mutant (tests/test_cache_patterns.py) also fails this test, on the
    deciders' own mixed depths."""
    from .test_cache_patterns import serve_stale_frozen_keys

    for decider in ("early", "online"):
        logit_err, prob_err, same_depths, _ = cached_vs_full(make_model(decider))
        assert logit_err <= 1e-5 and prob_err <= 1e-5 and same_depths
    serve_stale_frozen_keys(monkeypatch)
    for decider in ("early", "online"):
        logit_err, prob_err, same_depths, _ = cached_vs_full(make_model(decider))
        assert logit_err > 1e-3  # the same check now fails


def test_cache_holds_only_what_exit_depths_need():
    model = make_model("early")
    ids, mask = left_padded_batch()
    _, depths, _, cache = cached_pass(model, ids, mask)
    real = mask.bool()
    d = depths[real].float()
    P, D, C = 1, 4, 1
    per_token = P + C + d + (d < D).float()  # the frozen entry of tokens that exit early
    report = cache.memory_report()
    assert report["tokens"] == int(real.sum())
    assert report["bytes_used"] / report["bytes_fixed_depth"] == pytest.approx(float(per_token.sum()) / (real.sum() * (P + D + C)))
    assert report["used_over_fixed"] == pytest.approx(report["predicted_over_fixed"], rel=1e-6)
    assert report["bytes_held"] >= report["bytes_used"]
    assert cache.block_calls == int(d.sum())  # iterations actually run = Σ exit depths
    assert torch.equal(cache.exit_depths[real], depths[real]) and (cache.exit_depths[~real] == 0).all()


def view_members(pool, view, row):
    """Sorted sequence indices of the entries `view` lists for `row`."""
    idx = pool.index[view, row, : pool.counts[view, row]]
    return sorted(pool.seq[idx].tolist())


@pytest.mark.parametrize("decider", ["early", "online"])
def test_each_iteration_attends_to_one_entry_per_cached_token(decider):
    """Iteration i's view lists, for every real token, its own slot-i entry if d >= i, else its one
    frozen entry: exactly one key per token, and frozen entries are stored once, not per view."""
    ids, mask = left_padded_batch()
    _, depths, _, cache = cached_pass(make_model(decider), ids, mask)
    pool, D = cache.core_pools[0], cache.max_depth
    for row in range(B):
        real = mask[row].nonzero().flatten().tolist()
        for view in range(D):
            assert view_members(pool, view, row) == real
            idx = pool.index[view, row, : pool.counts[view, row]]
            d = depths[row, pool.seq[idx]]  # own entries are listed in their view only (lo = view);
            assert torch.equal(pool.lo[idx], torch.clamp(d, max=view))  # frozen ones from view d on
    real = mask.bool()
    assert pool.n == int(depths[real].sum()) + int((depths[real] < D).sum())


def test_reorder_select_repeat_crop_keep_exit_depths_in_step():
    model = make_model("online")
    ids, mask = left_padded_batch()
    _, _, _, cache = cached_pass(model, ids, mask)
    depths = cache.exit_depths.clone()

    def per_row(layer, batch):
        return torch.bincount(layer.row[: layer.n], minlength=batch)

    counts = [per_row(layer, B) for layer in cache.layers]
    cache.reorder_cache(torch.tensor([2, 0, 1]))
    assert torch.equal(cache.exit_depths, depths[[2, 0, 1]])
    assert all(torch.equal(per_row(layer, B), c[[2, 0, 1]]) for layer, c in zip(cache.layers, counts))
    cache.batch_select_indices(torch.tensor([1, 2]))
    assert torch.equal(cache.exit_depths, depths[[0, 1]]) and cache.batch_size == 2
    cache.batch_repeat_interleave(2)
    assert torch.equal(cache.exit_depths, depths[[0, 0, 1, 1]])
    assert all(torch.equal(per_row(layer, 4), c[[0, 0, 1, 1]]) for layer, c in zip(cache.layers, counts))
    members = [view_members(cache.core_pools[0], v, r) for v in range(4) for r in range(4)]
    cache.crop(-3)
    assert cache.get_seq_length() == T - 3 and cache.exit_depths.shape == (4, T - 3)
    for layer in cache.layers:
        assert not (layer.seq[: layer.n] >= T - 3).any()
    cropped = [view_members(cache.core_pools[0], v, r) for v in range(4) for r in range(4)]
    assert cropped == [[s for s in m if s < T - 3] for m in members]


def test_crop_then_continue_matches_full_forward():
    """Assisted decoding crops rejected tokens and continues: the result must still be exact."""
    model = make_model("early")
    ids, mask = left_padded_batch()
    wrong = ids.clone()
    wrong[:, 7:] = (wrong[:, 7:] % 12) + 1
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask)
        cache = AllocationCache(model.config)
        model(input_ids=wrong, attention_mask=mask, past_key_values=cache)
        cache.crop(-3)
        out = model(input_ids=ids[:, 7:], attention_mask=mask, past_key_values=cache)
    assert (out.logits - full.logits[:, 7:]).abs().max() <= 1e-5


@pytest.mark.parametrize("decider", ["early", "online"])
def test_generate_uses_the_cache_out_of_the_box(decider, tmp_path):
    make_model(decider).save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids, mask = left_padded_batch()
    kw = dict(attention_mask=mask, max_new_tokens=6, pad_token_id=0)
    cached = model.generate(ids, **kw, return_dict_in_generate=True)
    assert isinstance(cached.past_key_values, AllocationCache)
    assert torch.equal(cached.sequences, model.generate(ids, **kw, use_cache=False))  # greedy
    beams = dict(num_beams=3, do_sample=False)
    assert torch.equal(model.generate(ids, **kw, **beams), model.generate(ids, **kw, **beams, use_cache=False))
    torch.manual_seed(5)
    sampled = model.generate(ids, **kw, do_sample=True)
    torch.manual_seed(5)
    assert torch.equal(sampled, model.generate(ids, **kw, do_sample=True, use_cache=False))


def test_foreign_or_mismatched_caches_are_refused():
    model = make_model("early")
    ids, mask = left_padded_batch()
    with pytest.raises(ValueError, match="cannot use a DynamicCache"):
        model.generate(ids, attention_mask=mask, max_new_tokens=2, past_key_values=DynamicCache(config=model.config))
    other = AniraConfig(vocab_size=13, hidden_size=32, intermediate_size=64, num_attention_heads=4, max_depth=6)
    with pytest.raises(ValueError, match=r"built for another model: max_depth=6 \(model: 4\), "
                                         r"num_key_value_heads=4 \(model: 2\); pass AllocationCache\(model.config\)"):
        model(input_ids=ids, attention_mask=mask, past_key_values=AllocationCache(other))
    with pytest.raises(NotImplementedError, match="use depth_rule='median'"):
        make_model("online")(input_ids=ids, past_key_values=AllocationCache(make_model("online").config),
                             depth_rule="mode")
    with pytest.raises(RuntimeError, match="driven by AniraModel"):
        AllocationCache(model.config).update(torch.zeros(1, 2, 1, 8), torch.zeros(1, 2, 1, 8), 0)
    with pytest.raises(RuntimeError, match="SlotView of each layer call"):
        PackedKVLayer().update(torch.zeros(1), torch.zeros(1))
    step = AllocationCache(model.config).open_step(torch.ones(1, 2, dtype=torch.bool), torch.float32, "cpu")
    with pytest.raises(ValueError, match="exit depth in 1..D-1"):  # a token at depth D is never frozen
        step.add_frozen(0, None, None, None, None, None, depth=4)
    with pytest.raises(IndexError, match="core layer 1 is outside 0..0"):
        CacheLayout.of(model.config).pool("core", 1)
    with pytest.raises(IndexError, match="iteration 5 is outside 1..D = 1..4"):
        step.layer_view("core", 0, None, None, None, iteration=5)
    with pytest.raises(ValueError, match="part 'middle' is unknown"):
        step.layer_view("middle", 0, None, None, None)
    step.commit(torch.ones(1, 2, dtype=torch.long))
    with pytest.raises(RuntimeError, match="committed already"):
        step.commit(torch.ones(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="holds 1 sequences but 3 were passed"):
        model(input_ids=ids, attention_mask=torch.ones(3, 12, dtype=torch.long), past_key_values=step.cache)


@pytest.mark.parametrize("decider", ["early", "online"])
def test_full_rule_runs_every_token_to_depth_d(decider):
    model = make_model(decider)
    ids, mask = left_padded_batch()
    cache = AllocationCache(model.config)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, depth_rule="full", past_key_values=cache)
        ref = model(input_ids=ids, attention_mask=mask, exit_depths=torch.full((B, T), 4))
    assert (out.exit_depths[mask.bool()] == 4).all()
    assert (out.logits - ref.logits)[mask.bool()].abs().max() <= 1e-5
    assert cache.memory_report()["used_over_fixed"] == 1.0


def test_forced_depths_on_anira_o_report_the_same_exit_distribution_with_a_cache():
    model = make_model("online")
    ids, mask = left_padded_batch(seed=4)
    forced = torch.randint(1, 5, (B, T))
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask, exit_depths=forced)
        cached = model(input_ids=ids, attention_mask=mask, exit_depths=forced, past_key_values=AllocationCache(model.config))
    real = mask.bool()
    assert torch.equal(cached.exit_depths[real], forced[real])
    assert (cached.logits[real] - full.logits[real]).abs().max() <= 1e-5
    assert (cached.exit_probs[real] - full.exit_probs[real]).abs().max() <= 1e-5


@pytest.mark.parametrize("R", [1, 2])
def test_a_step_builds_each_view_once_per_group_and_stays_exact(R, monkeypatch):
    """The Prelude's and the Coda's pools hold the same entries, as do the R block layers' pools: a
    decode step builds one view for the Prelude and Coda together, and one per iteration for the block
    (layer 0's, reused by layers 1..R-1), and the logits still equal the full forward's."""
    model = make_model("early", recurrent_layers=R)
    ids, mask = left_padded_batch()
    built = []
    original = PackedKVLayer.layout

    def counting(self, view, rows, every_row=False):
        built.append(view)
        return original(self, view, rows, every_row)

    monkeypatch.setattr(PackedKVLayer, "layout", counting)
    logits, depths, _, _ = cached_pass(model, ids, mask)
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask)
    real = mask.bool()
    assert (logits[real] - full.logits[real]).abs().max().item() < 1e-5
    steps = 1 + T - PREFILL  # the prefill and each decoded token
    deepest = [int(depths[:, :PREFILL].max())] + [int(depths[:, t].max()) for t in range(PREFILL, T)]
    assert len(built) == steps + sum(deepest)  # one edge view per step, one block view per iteration run


@pytest.mark.parametrize("layers", [dict(recurrent_layers=1), dict(recurrent_layers=2, prelude_layers=2, coda_layers=2)])
def test_rows_selected_or_cropped_then_continued_stay_exact_in_every_pool_of_a_group(layers):
    """The pools after a group's first store only keys/values and follow its directory, through
    select, reorder and crop too: continuing after each equals the full forward of those rows."""
    model = make_model("online", **layers)
    ids, mask = left_padded_batch()
    rows = torch.tensor([2, 0])
    with torch.no_grad():
        full = model(input_ids=ids[rows], attention_mask=mask[rows])
        cache = AllocationCache(model.config)
        model(input_ids=ids[:, :8], attention_mask=mask[:, :8], past_key_values=cache)
        cache.batch_select_indices(rows)
        cache.crop(-1)
        out = [model(input_ids=ids[rows, t:t + 1], attention_mask=mask[rows, :t + 1], past_key_values=cache).logits
               for t in range(7, T)]
    real = mask[rows, 7:].bool()
    assert (torch.cat(out, 1) - full.logits[:, 7:])[real].abs().max() <= 1e-5
    followers = [pool for pool in cache.layers if pool.leader is not None]
    assert len(followers) == (1 if layers["recurrent_layers"] == 1 else 4)  # Coda; 3 of 4 edge pools + 1 block pool
    assert all(pool.n == pool.leader.n and pool.keys.shape[1:] == pool.leader.keys.shape[1:] for pool in followers)
