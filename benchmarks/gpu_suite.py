"""One prepared suite for a lent GPU: training speed and memory, decode savings, exactness, a short run.

    python benchmarks/gpu_suite.py --out "$OUT"     # on a GPU: about 8 minutes
    python benchmarks/gpu_suite.py --smoke          # tiny sizes on the CPU, eager, ~20 s (in the tests)
    python benchmarks/gpu_suite.py --smoke --compile-models ANIRA-E   # plus one CPU compile (~2 min)

Four sections, each written to `suite.json` and `suite.md` in --out as soon as it ends (atomically),
so a run cut short still leaves what it measured:

  train      ms/step, steps/s and peak memory of ANIRA-E, ANIRA-O, fixed depth and LlamaForCausalLM
             with P + D + C layers at the MANO and BREVO Table 5 sizes, bf16 autocast, eager (both)
             and compiled (MANO, to stay within the minutes); each as a ratio to the Llama of the same
             way (interleaved rounds, median [range]), and the hours a 250k-step run would take
  decode     `savings.measure_decode` at the decode benchmark's paper preset in bf16, batch 1 / 16 / 64:
             adaptive over full-depth speed-up, its share of the layer-count bound, KV bytes held
  exactness  cached greedy decoding against the full forward of the same sequence, for E and O, in
             float32 (goal ≤ 1e-4) and bf16 (tolerance stated, error observed), exit depths compared
  mano_run   the MANO paper config trained for --train-seconds: loss at the start and the end, step rate

and the goals (met or not, with the number): decode ≥ 0.85 of the bound at batch 1 and ≥ 0.7 at
batch 16; training step E ≤ 1.10×, O ≤ 1.35× the Llama's; MANO paper config ≥ 23 steps/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import MODELS, PRESETS as TRAIN_PRESETS, Stepper  # noqa: E402

from anira_lib.files import atomic_write_json, atomic_write_text  # noqa: E402
from anira_lib.evaluation.savings import cached_decoding_error, layer_bound, measure_decode, random_adaptive_model  # noqa: E402
from anira_lib.tasks import get_task  # noqa: E402

BREVO_PAPER = dict(task="brevo", task_args={"max_nodes": 70}, hidden_size=512, intermediate_size=2048,
                   num_attention_heads=8, max_depth=6, batch=64)  # configs/notebooks/02_brevo_paper.yaml
DECODE_PAPER = dict(hidden_size=512, intermediate_size=2048, num_attention_heads=8, max_depth=6, prompt=256, new=256)
FULL = {"train": {"mano": TRAIN_PRESETS["paper"], "brevo": BREVO_PAPER}, "decode": DECODE_PAPER,
        "batches": [1, 16, 64], "steps": 10, "rounds": 5, "repeats": 5, "train_seconds": 120.0,
        "compile_presets": ["mano"]}  # four compiles of ~30 s each fit the 8 minutes; BREVO's four would not
SMOKE = {"train": {"mano": dict(task="mano", task_args={"max_ops": 4, "modulus": 5}, hidden_size=32,
                                intermediate_size=64, num_attention_heads=2, max_depth=3, batch=8),
                   "brevo": dict(task="brevo", task_args={"max_nodes": 5}, hidden_size=32, intermediate_size=64,
                                 num_attention_heads=2, max_depth=3, batch=4)},
         "decode": dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, max_depth=4, prompt=8, new=6),
         "batches": [1, 4], "steps": 2, "rounds": 5, "repeats": 5, "train_seconds": 3.0,
         "compile_presets": ["mano"]}
GOALS = {"decode_b1": 0.85, "decode_b16": 0.7, "train_E": 1.10, "train_O": 1.35, "mano_steps_per_s": 23.0}
STEPS_PAPER = 250_000


def spread(values) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def fmt(s: dict, digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}–{s['max']:.{digits}f}]"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def autocast(device, dtype):
    return torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else nullcontext()


# ----------------------------------------------------------------------------- sections

def train_section(cfg, device, dtype, compile_models, log) -> list[dict]:
    """One row per (preset, model, way): ms/step, steps/s, peak memory, ratio to the Llama."""
    rows = []
    for preset, p in cfg["train"].items():
        task = get_task(p["task"], seed=0, **p["task_args"])
        batches = [{k: v.to(device) for k, v in task.train_batch(i, p["batch"]).items()} for i in range(cfg["steps"])]
        steppers = {}
        for name, kind in MODELS.values():
            for way in ("eager", "compiled"):
                if way == "compiled" and (name not in compile_models or preset not in cfg["compile_presets"]):
                    continue
                s = Stepper(kind, way, p, task.vocab_size, device, autocast(device, dtype))
                t0 = time.perf_counter()
                with s.state():
                    for b in batches[:2]:
                        s.step(b)
                sync(device)
                log(f"train {preset}: {name} {way} warmed up in {time.perf_counter() - t0:.0f} s")
                steppers[name, way] = s
        times = {key: [] for key in steppers}
        peaks = {}
        for _ in range(cfg["rounds"]):  # every (model, way) in turn, each round
            for key, s in steppers.items():
                with s.state():
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(device)
                    sync(device)
                    t0 = time.perf_counter()
                    for b in batches:
                        s.step(b)
                    sync(device)
                    times[key].append((time.perf_counter() - t0) / len(batches))
                    if device.type == "cuda":
                        peaks[key] = torch.cuda.max_memory_allocated(device)
        llama = "Llama (P+D+C)"
        for (name, way), t in times.items():
            ref = times.get((llama, way))  # the Llama stepped the same way, or no ratio
            ms = spread([1000 * x for x in t])
            rows.append({"preset": preset, "model": name, "way": way, "ms_per_step": ms,
                         "steps_per_s": 1000 / ms["median"],
                         "ratio_to_llama": spread([a / b for a, b in zip(t, ref)]) if ref else None,
                         "peak_memory_gib": peaks.get((name, way), 0) / 2**30 if peaks else None,
                         "hours_for_250k_steps": STEPS_PAPER * ms["median"] / 1000 / 3600,
                         "batch": p["batch"], "max_depth": p["max_depth"], "hidden_size": p["hidden_size"]})
        del steppers
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def decode_section(cfg, device, dtype, log) -> list[dict]:
    p = cfg["decode"]
    rows = []
    for name, decider in (("ANIRA-E", "early"), ("ANIRA-O", "online")):
        model = random_adaptive_model(decider, p["hidden_size"], p["intermediate_size"], p["num_attention_heads"],
                                      p["max_depth"]).to(device=device, dtype=dtype)
        for batch in cfg["batches"]:
            ids = torch.randint(1, 64, (batch, p["prompt"]), generator=torch.Generator().manual_seed(batch)).to(device)
            pairs = [(measure_decode(model, ids, p["new"]), measure_decode(model, ids, p["new"], depth_rule="full"))
                     for _ in range(cfg["repeats"])]
            ada = pairs[-1][0]
            bound = layer_bound(model.config, ada["mean_depth"])
            speedups = [a["tokens_per_s"] / f["tokens_per_s"] for a, f in pairs]
            rows.append({"model": name, "batch": batch, "mean_depth": ada["mean_depth"], "bound": bound,
                         "speedup": spread(speedups), "of_bound": spread([s / bound for s in speedups]),
                         "adaptive_tokens_per_s": statistics.median(a["tokens_per_s"] for a, _ in pairs),
                         "full_tokens_per_s": statistics.median(f["tokens_per_s"] for _, f in pairs),
                         "kv_held_over_fixed": ada["memory"]["held_over_fixed"],
                         "kv_accounting": ada["memory"]["predicted_over_fixed"]})
            log(f"decode {name} batch {batch}: speed-up {fmt(rows[-1]['speedup'])} of bound {fmt(rows[-1]['of_bound'])}")
    return rows


def exactness_section(cfg, device, log) -> list[dict]:
    p = cfg["decode"]
    rows = []
    for dtype, tol in ((torch.float32, 1e-4), (torch.bfloat16, 5e-2)):
        for name, decider in (("ANIRA-E", "early"), ("ANIRA-O", "online")):
            model = random_adaptive_model(decider, p["hidden_size"], p["intermediate_size"], p["num_attention_heads"],
                                          p["max_depth"]).to(device=device, dtype=dtype)
            ids = torch.randint(1, 64, (4, min(p["prompt"], 64)), generator=torch.Generator().manual_seed(7)).to(device)
            r = cached_decoding_error(model, ids, min(p["new"], 32))
            r.update(model=name, dtype=str(dtype).removeprefix("torch."), tolerance=tol,
                     within=r["max_abs_logit_diff"] <= tol)
            rows.append(r)
            log(f"exactness {name} {r['dtype']}: max |Δlogit| {r['max_abs_logit_diff']:.2e} (tol {tol:g}), "
                f"depths identical {r['depths_identical']}")
    return rows


def mano_run_section(cfg, device, dtype, log) -> dict:
    """The MANO paper config's ANIRA-E, trained (eager, bf16 autocast, lr 1e-4 as Table 5) for
    train_seconds on fresh batches: loss of the first and last tenth of the steps, and the step rate."""
    p = cfg["train"]["mano"]
    task = get_task(p["task"], seed=0, **p["task_args"])
    s = Stepper("early", "eager", p, task.vocab_size, device, autocast(device, dtype))
    for group in s.opt.param_groups:
        group["lr"] = 1e-4
    losses, step, t0 = [], 0, time.perf_counter()
    while time.perf_counter() - t0 < cfg["train_seconds"] or step < 10:
        batch = {k: v.to(device, non_blocking=True) for k, v in task.train_batch(step, p["batch"]).items()}
        losses.append(s.step(batch).detach())  # fresh batches: a learning curve, not a timing loop
        step += 1
    sync(device)
    elapsed = time.perf_counter() - t0
    losses = [x.item() for x in losses]
    tenth = max(1, len(losses) // 10)
    row = {"steps": step, "seconds": elapsed, "steps_per_s": step / elapsed, "loss_first": statistics.mean(losses[:tenth]),
           "loss_last": statistics.mean(losses[-tenth:]), "batch": p["batch"], "max_depth": p["max_depth"]}
    row["loss_went_down"] = row["loss_last"] < row["loss_first"]
    log(f"mano_run: {step} steps in {elapsed:.0f} s ({row['steps_per_s']:.1f}/s), loss {row['loss_first']:.3f} → "
        f"{row['loss_last']:.3f}")
    return row


# ----------------------------------------------------------------------------- report

def goals(result: dict) -> list[dict]:
    """Each goal met or not, with its number (goals whose section did not run are left out)."""
    out = []
    dec = {(r["model"], r["batch"]): r for r in result.get("decode", [])}
    for batch, key in ((1, "decode_b1"), (16, "decode_b16")):
        for model in ("ANIRA-E", "ANIRA-O"):
            if (model, batch) in dec:
                v = dec[model, batch]["of_bound"]["median"]
                out.append({"goal": f"decode {model} batch {batch}: speed-up / bound ≥ {GOALS[key]}", "value": v,
                            "met": v >= GOALS[key]})
    for r in result.get("train", []):
        for model, key in (("ANIRA-E", "train_E"), ("ANIRA-O", "train_O")):
            if r["model"] == model and r["ratio_to_llama"] is not None:
                v = r["ratio_to_llama"]["median"]
                out.append({"goal": f"train {r['preset']} {r['way']} {model}: step ≤ {GOALS[key]}× Llama",
                            "value": v, "met": v <= GOALS[key]})
    if "mano_run" in result:
        v = result["mano_run"]["steps_per_s"]
        out.append({"goal": f"MANO paper config ≥ {GOALS['mano_steps_per_s']} steps/s (eager)", "value": v,
                    "met": v >= GOALS["mano_steps_per_s"]})
    return out


def _table(heading: str, columns: list[str], rows: list[list]) -> list[str]:
    return [f"## {heading}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows), ""]


def markdown(result: dict) -> str:
    lines = [f"# GPU suite: {result['device_name']}", "",
             f"{result['started']} · torch {result['torch']} · {result['dtype']} · "
             f"{'SMOKE (tiny sizes, not a measurement)' if result['smoke'] else 'full sizes'}", ""]
    if result.get("train"):
        lines += _table("Training step (median [range] of interleaved rounds)",
                        ["preset", "model", "way", "ms/step", "steps/s", "× Llama", "peak GiB", "h for 250k steps"],
                        [[r["preset"], r["model"], r["way"], fmt(r["ms_per_step"], 1), f"{r['steps_per_s']:.1f}",
                          fmt(r["ratio_to_llama"]) if r["ratio_to_llama"] else "–",
                          f"{r['peak_memory_gib']:.2f}" if r["peak_memory_gib"] is not None else "–",
                          f"{r['hours_for_250k_steps']:.1f}"] for r in result["train"]])
    if result.get("decode"):
        lines += _table("Decode, adaptive vs the same model at full depth",
                        ["model", "batch", "d̄", "speed-up", "bound", "of bound", "KV held / fixed", "accounting"],
                        [[r["model"], r["batch"], f"{r['mean_depth']:.2f}", fmt(r["speedup"]), f"{r['bound']:.2f}",
                          fmt(r["of_bound"]), f"{r['kv_held_over_fixed']:.3f}", f"{r['kv_accounting']:.3f}"]
                         for r in result["decode"]])
    if result.get("exactness"):
        lines += _table("Cached decoding vs the full forward",
                        ["model", "dtype", "max abs Δlogit", "tolerance", "within", "depths identical (share differing)"],
                        [[r["model"], r["dtype"], f"{r['max_abs_logit_diff']:.2e}", f"{r['tolerance']:g}", r["within"],
                          f"{r['depths_identical']} ({r['share_of_depths_differing']:.3f})"] for r in result["exactness"]])
    if result.get("mano_run"):
        r = result["mano_run"]
        lines += ["## MANO paper config, short run (ANIRA-E, eager)", "",
                  f"{r['steps']} steps in {r['seconds']:.0f} s = {r['steps_per_s']:.1f} steps/s; loss "
                  f"{r['loss_first']:.3f} (first tenth) → {r['loss_last']:.3f} (last tenth)", ""]
    if result.get("goals"):
        lines += _table("Goals", ["goal", "value", "met"],
                        [[g["goal"], f"{g['value']:.2f}", "yes" if g["met"] else "no"] for g in result["goals"]])
    if result.get("errors"):
        lines += ["## Sections that failed", ""] + [f"- {k}: {v}" for k, v in result["errors"].items()] + [""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT") or "runs/gpu_suite", help="folder for suite.json / suite.md")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (on the CPU in the test suite)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--train-seconds", type=float, default=None, help="length of the mano_run section (120 s)")
    ap.add_argument("--sections", default="exactness,decode,train,mano_run",
                    help="comma-separated, in the order to run (cheapest and most important first)")
    ap.add_argument("--compile-models", default=None,
                    help="comma-separated models whose compiled way is measured ('' for none); default every "
                         "model, with --smoke none")
    args = ap.parse_args(argv)
    cfg = dict(SMOKE if args.smoke else FULL)
    if args.train_seconds is not None:
        cfg["train_seconds"] = args.train_seconds
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but no CUDA device is visible; use --smoke on a CPU")
    sections = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(sections) - {"exactness", "decode", "train", "mano_run"})
    if unknown:
        ap.error(f"--sections: unknown {unknown}; choose from exactness,decode,train,mano_run")
    names = [name for name, _ in MODELS.values()]
    if args.compile_models is None:  # smoke: none (a CPU compile costs minutes; tests/test_train covers it)
        compile_models = [] if args.smoke else names
    else:
        compile_models = [m for m in args.compile_models.split(",") if m]
        if set(compile_models) - set(names):
            ap.error(f"--compile-models: unknown {sorted(set(compile_models) - set(names))}; choose from {names}")
    dtype = torch.bfloat16
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()})",
              "device": str(device), "torch": torch.__version__, "dtype": "bfloat16 autocast (train), bfloat16 weights (decode)",
              "smoke": args.smoke, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "errors": {}}
    t_start = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t_start:6.0f} s] {msg}", flush=True)

    def save():
        result["goals"] = goals(result)
        result["elapsed_s"] = time.perf_counter() - t_start
        atomic_write_json(out / "suite.json", result)
        atomic_write_text(out / "suite.md", markdown(result))

    runners = {"exactness": lambda: exactness_section(cfg, device, log),
               "decode": lambda: decode_section(cfg, device, dtype, log),
               "train": lambda: train_section(cfg, device, dtype, compile_models, log),
               "mano_run": lambda: mano_run_section(cfg, device, dtype, log)}
    for name in sections:
        try:
            result[name] = runners[name]()
        except Exception as err:  # noqa: BLE001 - keep the other sections' numbers
            result["errors"][name] = f"{type(err).__name__}: {err}"
            log(f"{name} failed: {result['errors'][name]}")
        save()
    log(f"wrote {out / 'suite.json'} and {out / 'suite.md'}")
    print(markdown(result))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
