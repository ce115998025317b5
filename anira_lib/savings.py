"""Inference savings of adaptive depth (paper §3.2.4-3.2.5): decode speed and KV memory vs d̄.

`decode_savings` decodes with `generate()` (allocation-aware cache) at each ANIRA-O threshold τ and
at full depth, and returns one row per setting: measured d̄ of the decoded tokens, decode tokens/s,
speedup over full depth next to the layer-count bound (P + D + C)/(P + d̄ + C), and KV bytes held
over a fixed-depth cache next to the accounting (P + C + d̄ + f)/(P + D + C).
"""

from __future__ import annotations

import time

import torch


@torch.no_grad()
def _decode(model, ids, new_tokens, **rule):
    def run(n):
        t = time.perf_counter()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                             do_sample=False, return_dict_in_generate=True, **rule)
        return time.perf_counter() - t, out.past_key_values

    run(2)  # warm-up
    t_all, cache = run(new_tokens)
    t_one, _ = run(1)
    depths = cache.exit_depths[:, ids.shape[1]:].float()
    return ids.shape[0] * (new_tokens - 1) / max(t_all - t_one, 1e-9), float(depths.mean()), cache.memory_report()


def decode_savings(model, taus, batch_size: int = 1, prompt_len: int = 32, new_tokens: int = 32,
                   seed: int = 0) -> list[dict]:
    """Rows {setting, tau, mean_depth, tokens_per_s, speedup, bound, kv_held_over_fixed, kv_accounting}
    for each τ (ANIRA-O threshold rule; for ANIRA-E τ is ignored and the mode is used) and for "full"."""
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, cfg.vocab_size, (batch_size, prompt_len), generator=g).to(model.device)
    full_tps, _, full_mem = _decode(model, ids, new_tokens, depth_rule="full")
    P, D, C = cfg.prelude_layers, cfg.max_depth, cfg.coda_layers
    rows = []
    for tau in taus:
        rule = dict(depth_rule="threshold", halt_threshold=float(tau)) if cfg.decider == "online" else {}
        tps, d, mem = _decode(model, ids, new_tokens, **rule)
        rows.append({"setting": f"τ={tau:g}", "tau": float(tau), "mean_depth": d, "tokens_per_s": tps,
                     "speedup": tps / full_tps, "bound": (P + D + C) / (P + d + C),
                     "kv_held_over_fixed": mem["held_over_fixed"], "kv_accounting": mem["predicted_over_fixed"]})
    rows.append({"setting": "full depth", "tau": None, "mean_depth": float(D), "tokens_per_s": full_tps,
                 "speedup": 1.0, "bound": 1.0, "kv_held_over_fixed": full_mem["held_over_fixed"],
                 "kv_accounting": full_mem["predicted_over_fixed"]})
    return rows
