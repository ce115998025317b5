"""Training step time of ANIRA-E, ANIRA-O and the fixed-depth baseline vs transformers' Llama, eager and compiled.

    python benchmarks/train_throughput.py                    # demo size (make demo), CPU, one thread
    python benchmarks/train_throughput.py --preset paper     # Table 5 MANO size (use a GPU)
    python benchmarks/train_throughput.py --no-compile       # eager columns only (seconds, not minutes)

All four models share sizes (H, I, heads; Llama gets P + D + C layers) and see the same batches of
the preset's task (MANO unless the preset names a notebook).
Each model is stepped these ways, through the trainer's own step (`anira_lib.training.training_step.train_step`):
  before    eager forward/backward, AdamW's per-tensor loop (the trainer until 2026-12-02)
  eager     eager, fused AdamW (compile=false today)
  compiled  `compile_for_training` inside `compiled_training`, fused AdamW (compile=true): on a CPU,
            the attention `compiled_attention` picks for the row length
  symbolic  the same compiled with symbolic shapes (`dynamic=True`; the trainer until 2026-12-07), with --symbolic
  compiled:pointwise, compiled:eager, compiled:sdpa
            compiled, attending pointwise, through Llama's eager (matmul + softmax) or through SDPA
            attention whatever the row length, with --compare-attention
Every round times `--steps` steps of every (model, way) in turn, so machine noise hits all of them
alike; `--rounds` rounds (>= 5) give the median and [min-max] printed. Then the ratios: compiled
over before per model (the CPU speed-up), and each way's step time over Llama's (goals: E <= 1.10x,
O <= 1.35x); then what a step spends outside the model: drawing and collating the batch, and the
optimizer (zero_grad, clipping, AdamW), as shares of the compiled step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from anira_lib import AniraConfig, AniraForCausalLM
from anira_lib.modeling.pointwise_attention import POINTWISE_ATTENTION
from anira_lib.tasks import get_task
from anira_lib.training.training_compile import attending, compile_for_training, compiled_training
from anira_lib.training.training_step import train_step

_CLRS = ("minimum", "binary_search", "insertion_sort", "find_maximum_subarray_kadane")  # 05_clrs's default mix
PRESETS = {
    # notebooks/01_mano's defaults, the size `make demo` trains (one thread per process there)
    "demo": dict(task="mano", task_args={"max_ops": 4, "modulus": 2}, hidden_size=64, intermediate_size=256,
                 num_attention_heads=4, max_depth=4, batch=64, threads=1),
    # the demo's size until 2026-12-02 (L = 3, D = 6), where issue 18 measured the eager step
    "demo_before": dict(task="mano", task_args={"max_ops": 3, "modulus": 2}, hidden_size=64, intermediate_size=256,
                        num_attention_heads=4, max_depth=6, batch=64, threads=1),
    # the other notebooks' CPU defaults (each trains E and O side by side, one thread each)
    "02_brevo": dict(task="brevo", task_args={"max_nodes": 8}, hidden_size=64, intermediate_size=256,
                     num_attention_heads=4, max_depth=6, batch=64, threads=1),
    "03_depo": dict(task="depo", task_args={"max_nodes": 5, "max_k": 3, "queries": 4}, hidden_size=64,
                    intermediate_size=256, num_attention_heads=4, max_depth=6, batch=64, threads=1),
    "05_clrs": dict(task="clrs", task_args={"algorithms": _CLRS, "train_sizes": {a: [4, 5, 7] for a in _CLRS},
                                            "eval_sizes": {a: [4, 5, 6, 7, 8, 9] for a in _CLRS}, "train_samples": 2000,
                                            "eval_samples": 125, "data_dir": "data/clrs"},
                    hidden_size=64, intermediate_size=256, num_attention_heads=4, max_depth=4, batch=32, threads=1),
    "04_lano": dict(task="lano", task_args={"window": 512}, hidden_size=64, intermediate_size=256,
                    num_attention_heads=4, max_depth=4, batch=4, threads=1),
    "tiny": dict(task="mano", task_args={"max_ops": 4, "modulus": 5}, hidden_size=64, intermediate_size=256,
                 num_attention_heads=4, max_depth=6, batch=128, threads=None),
    "paper": dict(task="mano", task_args={"max_ops": 16, "modulus": 23}, hidden_size=256, intermediate_size=1664,
                  num_attention_heads=8, max_depth=14, batch=512, threads=None),
}
MODELS = {"E": ("ANIRA-E", "early"), "O": ("ANIRA-O", "online"), "fixed": ("fixed-depth", "none"),
          "llama": ("Llama (P+D+C)", "llama")}
WAYS = ("before", "eager", "symbolic", "compiled:pointwise", "compiled:eager", "compiled:sdpa", "compiled")
COMPILED = ("symbolic", "compiled:pointwise", "compiled:eager", "compiled:sdpa", "compiled")
ATTENTIONS = {"pointwise": POINTWISE_ATTENTION, "eager": "eager", "sdpa": "sdpa"}


def build(kind, p, vocab, device):
    torch.manual_seed(0)
    common = dict(vocab_size=vocab, hidden_size=p["hidden_size"], intermediate_size=p["intermediate_size"],
                  num_attention_heads=p["num_attention_heads"], pad_token_id=0)
    if kind == "llama":
        model = LlamaForCausalLM(LlamaConfig(num_hidden_layers=2 + p["max_depth"], **common))
    else:
        model = AniraForCausalLM(AniraConfig(decider=kind, max_depth=p["max_depth"], prelude_layers=1,
                                             coda_layers=1, **common))
    return model.to(device).train()


class Stepper:
    """One model trained one way: `step(batch)` is the trainer's step (`training_step.train_step`:
    forward, backward, clipping, AdamW; bf16 autocast on a GPU; returns the loss);
    `optimizer_time(n)` times the optimizer part alone on the gradients left by the last step.
    seq_len: the batches' length, which picks the compiled CPU step's attention as the trainer does
    (`compiled_training`; None counts as short), unless the way names one ("compiled:eager")."""

    def __init__(self, kind, way, p, vocab, device, seq_len=None):
        self.model = build(kind, p, vocab, device)
        self.way, self.device, self.seq_len = way, device, seq_len
        self.attention = ATTENTIONS.get(way.partition(":")[2])
        fused = {"fused": True} if way != "before" and device.type in ("cpu", "cuda") else {}
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4, **fused)
        compiled = way in COMPILED
        self.forward = compile_for_training(self.model, device, dynamic=way == "symbolic" or None) if compiled \
            else self.model

    def state(self):
        if self.attention:
            return attending(self.model, self.attention)
        return compiled_training(self.model, self.device, enabled=self.way in COMPILED, seq_len=self.seq_len)

    def step(self, batch):
        (out, *_), = train_step(self.forward, self.model, self.opt, batch, device=self.device, grad_clip=1.0, keep=True)
        return out.loss

    def optimize(self):
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()

    def optimizer_time(self, n):
        t0 = time.perf_counter()
        for _ in range(n):
            self.optimize()
        return (time.perf_counter() - t0) / n


def spread(values):
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per (model, way) and round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (demo preset: 1, as make demo runs)")
    ap.add_argument("--no-compile", action="store_true", help="skip the compiled ways (no compilation minutes)")
    ap.add_argument("--symbolic", action="store_true", help="also the compiled step with symbolic shapes")
    ap.add_argument("--compare-attention", action="store_true",
                    help="also the compiled step attending pointwise, eagerly and through SDPA")
    ap.add_argument("--task-args", type=json.loads, default={}, metavar="JSON",
                    help="overrides of the preset's task arguments, e.g. '{\"max_ops\": 6}' (MANO rows of 16 tokens)")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)}")
    args = ap.parse_args()
    if args.rounds < 5:
        ap.error("--rounds must be at least 5 (the median and range of interleaved repeats)")
    p = dict(PRESETS[args.preset])
    p["task_args"] = {**p["task_args"], **args.task_args}
    threads = args.threads or p["threads"]
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(args.device)
    unknown = [m for m in args.models.split(",") if m not in MODELS]
    if unknown:
        ap.error(f"--models: unknown {unknown}; choose from {','.join(MODELS)}")
    kinds = dict(MODELS[m] for m in args.models.split(","))
    task = get_task(p["task"], seed=0, **p["task_args"])
    batches = [{k: v.to(device) for k, v in task.train_batch(i, p["batch"]).items()} for i in range(args.steps)]
    ways = [w for w in WAYS if not ((args.no_compile and w in COMPILED) or (w == "symbolic" and not args.symbolic)
                                    or (w.startswith("compiled:") and not args.compare_attention))]

    steppers = {}
    for name, kind in kinds.items():
        for way in ways:
            s = steppers[name, way] = Stepper(kind, way, p, task.vocab_size, device, batches[0]["input_ids"].shape[1])
            t0 = time.perf_counter()
            with s.state():
                for b in batches[:2]:  # warm-up (and compilation)
                    s.step(b)
            if way in COMPILED:
                print(f"{way} {name} in {time.perf_counter() - t0:.0f} s", flush=True)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    times = {key: [] for key in steppers}
    opt_times = {key: [] for key in steppers}
    data_times = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        for i in range(args.steps):
            task.train_batch(1000 + i, p["batch"])
        data_times.append((time.perf_counter() - t0) / args.steps)
        for key, s in steppers.items():
            with s.state():
                sync()
                t0 = time.perf_counter()
                for b in batches:
                    s.step(b)
                sync()
                times[key].append((time.perf_counter() - t0) / len(batches))
                opt_times[key].append(s.optimizer_time(args.steps))

    n_params = {name: sum(q.numel() for q in steppers[name, ways[0]].model.parameters()) for name in kinds}
    lengths = sorted({b["input_ids"].shape[1] for b in batches})
    print(f"preset={args.preset} task={p['task']} device={device} batch={p['batch']} T={lengths[0]}-{lengths[-1]} "
          f"D={p['max_depth']} H={p['hidden_size']} I={p['intermediate_size']} threads={torch.get_num_threads()} "
          f"rounds={args.rounds} x {args.steps} steps; median [min-max] of the rounds")
    head = "".join(f"{w + ' ms/step':>28}" for w in ways)
    print(f"{'model':<15}{'params':>10}{head}")
    for name in kinds:
        cells = "".join(f"{spread([1000 * t for t in times[name, w]]):>28}" for w in ways)
        print(f"{name:<15}{n_params[name]:>10,}{cells}")

    ref = "Llama (P+D+C)" if "Llama (P+D+C)" in kinds else None
    print("\nratios, per round (interleaved), median [min-max]")
    if "compiled" in ways:
        for name in kinds:
            speedup = [b / c for b, c in zip(times[name, "before"], times[name, "compiled"])]
            print(f"  {name:<15} compiled speed-up over before: {spread(speedup)}x")
            if "symbolic" in ways:
                static = [s / c for s, c in zip(times[name, "symbolic"], times[name, "compiled"])]
                print(f"  {name:<15} static shapes' speed-up over symbolic: {spread(static)}x")
            for other in (w for w in ways if w.startswith("compiled:")):
                vs = [o / c for o, c in zip(times[name, other], times[name, "compiled"])]
                print(f"  {name:<15} compiled (trainer's attention) speed-up over {other}: {spread(vs)}x")
    for way in ways if ref else ():
        vs = {name: [t / r for t, r in zip(times[name, way], times[ref, way])] for name in kinds if name != ref}
        print(f"  {way:<9} vs Llama: " + ", ".join(f"{n} {spread(v)}x" for n, v in vs.items())
              + "  (goals: E <= 1.10x, O <= 1.35x)")

    last = ways[-1]
    print(f"\noutside the model, as shares of the {last} step (median over rounds)")
    print(f"  batch (sample + collate): {1000 * statistics.median(data_times):.2f} ms")
    for name in kinds:
        step_ms = 1000 * statistics.median(times[name, last])
        opt_ms = 1000 * statistics.median(opt_times[name, last])
        data_ms = 1000 * statistics.median(data_times)
        print(f"  {name:<15} optimizer {opt_ms:.2f} ms ({opt_ms / step_ms:.0%}), batch {data_ms / step_ms:.0%} "
              f"of {step_ms:.1f} ms")


if __name__ == "__main__":
    main()
