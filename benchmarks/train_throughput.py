"""Training throughput of ANIRA-E, ANIRA-O and the fixed-depth baseline vs transformers' Llama.

    python benchmarks/train_throughput.py                  # tiny CPU preset
    python benchmarks/train_throughput.py --preset paper   # Table 5 MANO size (use a GPU)

All four models share sizes (H, I, heads; Llama gets P + D + C layers) and see the same MANO
batches; each is timed over the same number of AdamW steps, interleaved round by round so machine
noise hits all of them alike. Prints steps/s and step time as a ratio to Llama's (goals: E <= 1.10x,
O <= 1.35x), then the MANO sampler's samples/s next to the rate training consumes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from anira_lib import AniraConfig, AniraForCausalLM
from anira_lib.tasks import get_task, rng_for

PRESETS = {
    "tiny": dict(hidden_size=64, intermediate_size=256, num_attention_heads=4, max_depth=6, batch=128,
                 task_args={"max_ops": 4, "modulus": 5}),
    "paper": dict(hidden_size=256, intermediate_size=1664, num_attention_heads=8, max_depth=14, batch=512,
                  task_args={"max_ops": 16, "modulus": 23}),
}


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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per model and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    p = PRESETS[args.preset]
    device = torch.device(args.device)
    task = get_task("mano", **p["task_args"])
    batches = [{k: v.to(device) for k, v in task.train_batch(i, p["batch"]).items()} for i in range(args.steps)]
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)

    kinds = {"ANIRA-E": "early", "ANIRA-O": "online", "fixed-depth": "none", "Llama (P+D+C)": "llama"}
    models = {name: build(kind, p, task.vocab_size, device) for name, kind in kinds.items()}
    steppers = {}
    for name, model in models.items():
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        fwd = torch.compile(model) if args.compile else model

        def step(batch, model=model, opt=opt, fwd=fwd):
            with amp:
                loss = fwd(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           labels=batch["labels"]).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        steppers[name] = step
        for b in batches[:2]:  # warm-up (and compilation)
            step(b)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    times = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, step in steppers.items():
            sync()
            t0 = time.perf_counter()
            for b in batches:
                step(b)
            sync()
            times[name].append((time.perf_counter() - t0) / len(batches))
    step_time = {name: statistics.median(t) for name, t in times.items()}
    ref = step_time["Llama (P+D+C)"]
    n_params = {name: sum(q.numel() for q in m.parameters()) for name, m in models.items()}
    print(f"preset={args.preset} device={device} batch={p['batch']} D={p['max_depth']} H={p['hidden_size']} "
          f"I={p['intermediate_size']} threads={torch.get_num_threads()}")
    print(f"{'model':<16}{'params':>10}{'ms/step':>10}{'steps/s':>10}{'vs Llama':>10}")
    for name, t in step_time.items():
        print(f"{name:<16}{n_params[name]:>10,}{1000 * t:>10.1f}{1 / t:>10.2f}{t / ref:>9.2f}x")
    print(f"goals: ANIRA-E <= 1.10x (now {step_time['ANIRA-E'] / ref:.2f}x), "
          f"ANIRA-O <= 1.35x (now {step_time['ANIRA-O'] / ref:.2f}x)")

    rng = rng_for(0, "bench")
    n = 20000
    t0 = time.perf_counter()
    for _ in range(n):
        task.sample(rng)
    rate = n / (time.perf_counter() - t0)
    consumed = p["batch"] / step_time["ANIRA-E"]
    print(f"MANO sampler: {rate:,.0f} samples/s on one core; ANIRA-E training consumes {consumed:,.0f} "
          f"samples/s -> sampler headroom {rate / consumed:.1f}x (reference generator: 55,000/s)")


if __name__ == "__main__":
    main()
