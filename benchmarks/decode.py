"""Decode speed and KV memory of adaptive depth vs the same model at full depth (paper §3.2.4-3.2.5).

    python benchmarks/decode.py                               # CPU preset
    python benchmarks/decode.py --preset paper --device cuda  # Table 5 BREVO/LANO block size

For ANIRA-E and ANIRA-O, one model each (random weights; the decider's output layer is spread so
tokens exit at many depths around `--target-depth`), greedy `generate()` with the default
AllocationCache at batch 1 and 16. "adaptive" uses the inference rule, "full" the same model with
depth_rule="full" (every token runs D iterations, same code path). Decode time = time(prompt + N new
tokens) - time(prompt + 1 new token), so prefill is excluded. Printed side by side:

    speedup = adaptive tokens/s / full tokens/s,  bound = (P + D + C) / (P + d̄ + C)  (d̄ measured on the
    decoded tokens), and speedup / bound (goal: >= 0.85 at batch 1, >= 0.7 at batch 16);
    KV bytes held / fixed-depth bytes next to the accounting (P + C + d̄ + f) / (P + D + C), f = share of
    tokens with d < D (each keeps one frozen key/value).
"""

from __future__ import annotations

import argparse

import torch

from anira_lib.savings import measure_decode, random_adaptive_model

PRESETS = {
    "cpu": dict(hidden_size=256, intermediate_size=1024, num_attention_heads=8, max_depth=8, prompt=64, new=64),
    "paper": dict(hidden_size=512, intermediate_size=2048, num_attention_heads=8, max_depth=6, prompt=256, new=256),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--target-depth", type=float, default=None, help="decider's starting E[d] (default D/3)")
    ap.add_argument("--spread", type=float, default=0.15, help="std of the decider's output weights")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    p = PRESETS[args.preset]
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    D, P, C = p["max_depth"], 1, 1
    target = args.target_depth or D / 3
    print(f"preset {args.preset}: H={p['hidden_size']} I={p['intermediate_size']} D={D} P=C=1, prompt {p['prompt']}, "
          f"{p['new']} new tokens, {device}, {args.dtype}, torch threads {torch.get_num_threads()}")
    header = (f"{'variant':8} {'batch':>5} {'d̄':>5} {'adaptive tok/s':>15} {'full tok/s':>11} {'speedup':>8} "
              f"{'bound':>6} {'of bound':>9} {'KV held/fixed':>14} {'accounting':>11}")
    print(header)
    for name, decider in (("ANIRA-E", "early"), ("ANIRA-O", "online")):
        model = random_adaptive_model(decider, p["hidden_size"], p["intermediate_size"], p["num_attention_heads"],
                                      p["max_depth"], target, args.spread).to(device=device, dtype=dtype)
        for batch in args.batches:
            ids = torch.randint(1, 64, (batch, p["prompt"]), generator=torch.Generator().manual_seed(batch)).to(device)
            ada = measure_decode(model, ids, p["new"], args.repeats)
            full = measure_decode(model, ids, p["new"], args.repeats, depth_rule="full")
            speedup = ada["tokens_per_s"] / full["tokens_per_s"]
            bound = (P + D + C) / (P + ada["mean_depth"] + C)
            m = ada["memory"]
            print(f"{name:8} {batch:>5} {ada['mean_depth']:5.2f} {ada['tokens_per_s']:15.1f} {full['tokens_per_s']:11.1f} "
                  f"{speedup:8.2f} {bound:6.2f} {speedup / bound:9.2f} {m['held_over_fixed']:14.3f} "
                  f"{m['predicted_over_fixed']:11.3f}")


if __name__ == "__main__":
    main()
