"""Inference savings of adaptive depth (paper §3.2.4-3.2.5): decode speed and KV memory vs d̄.

`decode_savings` decodes with `generate()` (allocation-aware cache) at each ANIRA-O threshold τ and
at full depth, and returns one row per setting: measured d̄ of the decoded tokens, decode tokens/s,
speedup over full depth next to the layer-count bound (P + R·D + C)/(P + R·d̄ + C), and KV bytes held
over a fixed-depth cache next to the accounting (P + C + R(d̄ + f))/(P + R·D + C).
"""

from __future__ import annotations

import statistics
import time

import torch


def random_adaptive_model(decider: str = "online", hidden_size: int = 256, intermediate_size: int = 1024,
                          num_attention_heads: int = 8, max_depth: int = 8, target_depth: float | None = None,
                          spread: float = 0.15, seed: int = 0, vocab_size: int = 64, **block):
    """An untrained ANIRA model whose tokens exit at many depths: the decider's output bias starts at
    E[d] = target_depth (default D/3) and its weights are drawn with std `spread`. Decode speed and KV
    memory depend only on the exit depths, so this is enough to measure them. `block`: further
    AniraConfig fields (recurrent_layers, input_injection, ...)."""
    from ..modeling.configuration import AniraConfig
    from ..modeling.model import AniraForCausalLM

    torch.manual_seed(seed)
    cfg = AniraConfig(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
                      num_attention_heads=num_attention_heads, max_depth=max_depth, decider=decider,
                      initial_depth=target_depth or max_depth / 3, pad_token_id=0, eos_token_id=None,
                      bos_token_id=None, **block)
    model = AniraForCausalLM(cfg).eval()
    with torch.no_grad():
        model.model.decider.down.weight.normal_(0, spread)
    return model


def dense_reference(config, mean_depth: float, seed: int = 0):
    """The dense model with the adaptive one's average compute and no adaptivity: a transformers
    `LlamaForCausalLM` of the same sizes with P + round(R·d̄) + C layers (eval mode, random weights; decode
    speed depends on the layer count, not the weights). The physical reference for a decode speed-up:
    the layer-count bound assumes layers are free to skip, this one runs them."""
    from transformers import LlamaConfig, LlamaForCausalLM

    layers = config.prelude_layers + max(1, round(config.recurrent_layers * mean_depth)) + config.coda_layers
    torch.manual_seed(seed)
    llama = LlamaConfig(vocab_size=config.vocab_size, hidden_size=config.hidden_size,
                        intermediate_size=config.intermediate_size, num_attention_heads=config.num_attention_heads,
                        num_key_value_heads=config.num_key_value_heads, num_hidden_layers=layers,
                        max_position_embeddings=config.max_position_embeddings, rms_norm_eps=config.rms_norm_eps,
                        pad_token_id=config.pad_token_id, eos_token_id=None, bos_token_id=None)
    return LlamaForCausalLM(llama).eval()


def layer_bound(config, mean_depth: float) -> float:
    """Speedup that layer counts allow at mean exit depth d̄: (P + R·D + C) / (P + R·d̄ + C). With the
    mean step depth (deepest exit per decode step) instead of d̄, the bound for a batch whose layer calls
    cost the same however few of its tokens still run (small batches on a CPU)."""
    P, R, C = config.prelude_layers, config.recurrent_layers, config.coda_layers
    return (P + R * config.max_depth + C) / (P + R * mean_depth + C)


def greedy_decode(model, ids, new_tokens: int, **kwargs):
    """Greedy `generate()` of exactly `new_tokens` after prompt ids (B, T), no padding; kwargs go to
    generate (depth_rule / halt_threshold for the model, return_dict_in_generate, output_logits)."""
    return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                          min_new_tokens=new_tokens, do_sample=False, **kwargs)


@torch.no_grad()
def measure_decode(model, ids, new_tokens: int, repeats: int = 1, **rule) -> dict:
    """Greedy `generate()` of `new_tokens` after prompt ids (B, T): decode tokens/s (median over repeats
    of time(N tokens) - time(1 token), so prefill is excluded), d̄ of the decoded tokens, and the cache's
    memory report (None for a dense model). mean_step_depth: the mean over decode steps of the deepest
    exit in the batch, the iterations each step runs (= d̄ at batch 1). `rule`: depth_rule / halt_threshold
    passed to the model."""
    def timed(n):
        if ids.device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = greedy_decode(model, ids, n, return_dict_in_generate=True, **rule)
        if ids.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t, out.past_key_values

    timed(2)  # warm-up
    decode = []
    for _ in range(repeats):
        t_all, cache = timed(new_tokens)
        t_one, _ = timed(1)
        decode.append(t_all - t_one)
    adaptive = hasattr(cache, "exit_depths")  # a dense model's DynamicCache has neither depths nor a report
    return {"tokens_per_s": ids.shape[0] * (new_tokens - 1) / max(statistics.median(decode), 1e-9),
            "mean_depth": float(cache.exit_depths[:, ids.shape[1]:].float().mean()) if adaptive else None,
            "mean_step_depth": float(cache.exit_depths[:, ids.shape[1]:].max(0).values.float().mean()) if adaptive else None,
            "memory": cache.memory_report() if adaptive else None}


def decode_savings(model, taus, batch_size: int = 1, prompt_len: int = 32, new_tokens: int = 32,
                   seed: int = 0) -> list[dict]:
    """Rows {setting, tau, mean_depth, tokens_per_s, speedup, bound, kv_held_over_fixed, kv_accounting}
    for each τ (ANIRA-O threshold rule; for ANIRA-E τ is ignored and the mode is used) and for "full"."""
    from ..modeling.configuration import check_halt_threshold

    for tau in taus:  # refuse every bad τ before anything runs
        check_halt_threshold(tau)
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, cfg.vocab_size, (batch_size, prompt_len), generator=g).to(model.device)
    full = measure_decode(model, ids, new_tokens, depth_rule="full")
    rows = []
    for tau in taus:
        rule = dict(depth_rule="threshold", halt_threshold=float(tau)) if cfg.decider == "online" else {}
        m = measure_decode(model, ids, new_tokens, **rule)
        d = m["mean_depth"]
        rows.append({"setting": f"τ={tau:g}", "tau": float(tau), "mean_depth": d, "tokens_per_s": m["tokens_per_s"],
                     "speedup": m["tokens_per_s"] / full["tokens_per_s"], "bound": layer_bound(cfg, d),
                     "kv_held_over_fixed": m["memory"]["held_over_fixed"],
                     "kv_accounting": m["memory"]["predicted_over_fixed"]})
    rows.append({"setting": "full depth", "tau": None, "mean_depth": float(cfg.max_depth), "tokens_per_s": full["tokens_per_s"],
                 "speedup": 1.0, "bound": 1.0, "kv_held_over_fixed": full["memory"]["held_over_fixed"],
                 "kv_accounting": full["memory"]["predicted_over_fixed"]})
    return rows


@torch.no_grad()
def cached_decoding_error(model, ids, new_tokens: int) -> dict:
    """Greedy cached generation of `new_tokens` after ids (B, T) against the full forward (no cache) of
    the (B, T + new_tokens) sequence it produced: the max |logit difference| over the generated steps,
    the logits' scale, and whether the exit depths of every position the cache processed agree (the
    share that differ). The cache contract says they agree exactly up to float rounding."""
    out = greedy_decode(model, ids, new_tokens, return_dict_in_generate=True, output_logits=True)
    seq = out.sequences
    full = model(input_ids=seq, attention_mask=torch.ones_like(seq), use_cache=False)
    T = ids.shape[1]
    cached_logits = torch.stack(out.logits, dim=1).float()          # (B, new, V): predicted at T-1 .. end-2
    full_logits = full.logits[:, T - 1:seq.shape[1] - 1].float()
    cached_depths = out.past_key_values.exit_depths[:, :seq.shape[1] - 1]
    full_depths = full.exit_depths[:, :seq.shape[1] - 1]
    differ = (cached_depths != full_depths).float().mean().item()
    return {"max_abs_logit_diff": (cached_logits - full_logits).abs().max().item(),
            "logit_scale": full_logits.abs().max().item(), "depths_identical": differ == 0.0,
            "share_of_depths_differing": differ}
