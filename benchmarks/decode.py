"""Decode speed and KV memory of adaptive depth vs the same model at full depth (paper §3.2.4-3.2.5).

    python benchmarks/decode.py                               # CPU preset
    python benchmarks/decode.py --preset paper --device cuda  # Table 5 BREVO/LANO block size

For ANIRA-E and ANIRA-O, with a block of R = 1 and R = 2 layers, one model each (random weights; the
decider's output layer is spread so tokens exit at many depths around `--target-depth`), greedy
`generate()` with the default AllocationCache at batch 1 and 16. "adaptive" uses the inference rule,
"full" the same model with depth_rule="full" (every token runs D iterations, same code path). Decode
time = time(prompt + N new tokens) - time(prompt + 1 new token), so prefill is excluded. Adaptive
and full alternate, `--repeats` times; each pair gives one ratio, and the median and range are printed:

    speedup = adaptive tokens/s / full tokens/s,  bound = (P + R·D + C) / (P + R·d̄ + C) (d̄ measured on
    the decoded tokens), and speedup / bound (goal: >= 0.85 at batch 1, >= 0.7 at batch 16); "step d" is
    the mean over decode steps of the deepest exit in the batch, the iterations a step runs, and "step
    bound" the same ratio with it in place of d̄ (equal at batch 1): what layer counts allow when a layer
    call costs the same however few of the batch's tokens still run;
    KV bytes held / fixed-depth bytes next to the accounting (P + C + R·(d̄ + f)) / (P + R·D + C), f =
    share of tokens with d < D (each keeps one frozen key/value per block layer).

The physical reference beside the bound: transformers' `LlamaForCausalLM` with P + round(R·d̄) + C
layers of the same sizes (`savings.dense_reference`: the adaptive model's average compute, no
adaptivity), decoded the same way in the same rounds (adaptive, full, dense in turn); "of dense" =
adaptive tokens/s over its tokens/s (goal: >= 0.9).
"""

from __future__ import annotations

import argparse
import statistics

import torch

from anira_lib.evaluation.decode_profile import CATEGORIES, decode_profile, ops_by_source, ops_per_token
from anira_lib.evaluation.savings import dense_reference, layer_bound, measure_decode, random_adaptive_model

PRESETS = {
    "cpu": dict(hidden_size=256, intermediate_size=1024, num_attention_heads=8, max_depth=8, prompt=64, new=64),
    "paper": dict(hidden_size=512, intermediate_size=2048, num_attention_heads=8, max_depth=6, prompt=256, new=256),
    "smoke": dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, max_depth=4, prompt=8, new=6),  # the suite's
}


def spread(values) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--recurrent-layers", type=int, nargs="+", default=[1, 2], help="R of the block")
    ap.add_argument("--target-depth", type=float, default=None, help="decider's starting E[d] (default D/3)")
    ap.add_argument("--spread", type=float, default=0.15, help="std of the decider's output weights")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--profile", action="store_true",
                    help="also print where one decode's time goes (anira_lib.evaluation.decode_profile), adaptive and dense")
    args = ap.parse_args()
    p = PRESETS[args.preset]
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    D = p["max_depth"]
    target = args.target_depth or D / 3
    print(f"preset {args.preset}: H={p['hidden_size']} I={p['intermediate_size']} D={D} P=C=1, prompt {p['prompt']}, "
          f"{p['new']} new tokens, {device}, {args.dtype}, torch threads {torch.get_num_threads()}, "
          f"median [range] of {args.repeats} interleaved pairs")
    print(f"{'variant':8} {'R':>2} {'batch':>5} {'d̄':>5} {'adaptive tok/s':>15} {'full tok/s':>11} {'speedup':>17} "
          f"{'bound':>6} {'of bound':>17} {'step d':>6} {'step bound':>10} {'of step bound':>17} {'dense L':>7} {'dense tok/s':>11} {'of dense':>17} {'KV held/fixed':>14} "
          f"{'accounting':>11}")
    profiles, sources = [], []
    for R in args.recurrent_layers:
        for name, decider in (("ANIRA-E", "early"), ("ANIRA-O", "online")):
            model = random_adaptive_model(decider, p["hidden_size"], p["intermediate_size"], p["num_attention_heads"],
                                          D, target, args.spread, recurrent_layers=R).to(device=device, dtype=dtype)
            for batch in args.batches:
                ids = torch.randint(1, 64, (batch, p["prompt"]), generator=torch.Generator().manual_seed(batch)).to(device)
                d_bar = measure_decode(model, ids, p["new"])["mean_depth"]  # the dense reference's size
                dense = dense_reference(model.config, d_bar).to(device=device, dtype=dtype)
                rounds = [(measure_decode(model, ids, p["new"]), measure_decode(model, ids, p["new"], depth_rule="full"),
                           measure_decode(dense, ids, p["new"])) for _ in range(args.repeats)]
                ada = rounds[-1][0]
                bound = layer_bound(model.config, ada["mean_depth"])
                step_bound = layer_bound(model.config, ada["mean_step_depth"])
                speedups = [a["tokens_per_s"] / f["tokens_per_s"] for a, f, _ in rounds]
                of_dense = [a["tokens_per_s"] / d["tokens_per_s"] for a, _, d in rounds]
                tok_a, tok_f, tok_d = (statistics.median(r[i]["tokens_per_s"] for r in rounds) for i in range(3))
                m = ada["memory"]
                print(f"{name:8} {R:>2} {batch:>5} {ada['mean_depth']:5.2f} {tok_a:15.1f} {tok_f:11.1f} "
                      f"{spread(speedups):>17} {bound:6.2f} {spread([s / bound for s in speedups]):>17} "
                      f"{ada['mean_step_depth']:6.2f} {step_bound:10.2f} {spread([s / step_bound for s in speedups]):>17} "
                      f"{dense.config.num_hidden_layers:>7} {tok_d:11.1f} {spread(of_dense):>17} "
                      f"{m['held_over_fixed']:14.3f} {m['predicted_over_fixed']:11.3f}", flush=True)
                if args.profile:
                    for who, net in (("adaptive", model), ("dense", dense)):
                        shares = decode_profile(net, ids, p["new"])
                        profiles.append(f"{name:8} {R:>2} {batch:>5} {who:>8} " + " ".join(
                            f"{shares[c]:>11.2f}" for c in CATEGORIES) + f" {1000 * shares['wall_s']:>8.1f}"
                            f" {ops_per_token(net, ids):>13.0f}")
                    by_source = ops_by_source(model, ids)
                    sources.append(f"{name} R={R} batch {batch}, {by_source.ops_per_token.sum():.0f} ops / token: " + "; ".join(
                        f"{r.source} {r.ops_per_token:.0f}" for r in by_source.head(8).itertuples()))
    if profiles:
        print("\nwhere one decode's time goes (shares of the profiled wall time; the profiler's own cost inflates "
              "bookkeeping)")
        print(f"{'variant':8} {'R':>2} {'batch':>5} {'model':>8} " + " ".join(f"{c:>11}" for c in CATEGORIES)
              + f" {'wall ms':>8} {'ops / token':>13}")
        print("\n".join(profiles))
        print("\nwhere the adaptive model's aten ops come from (top-level ops per decoded token by the function that "
              "issued them, largest 8; anira_lib.evaluation.decode_profile.ops_by_source)")
        print("\n".join(sources))

if __name__ == "__main__":
    main()
