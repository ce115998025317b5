"""Sampler speed next to the reference generators' rates (docs/tasks.md, one core, pure Python).

    python benchmarks/samplers.py [--seconds 2]

Each sampler runs for about `--seconds` on one core (this process); the table prints samples/s,
the reference rate and their ratio (goal: >= 1.0x for every row).
"""

from __future__ import annotations

import argparse
import time

from anira_lib.tasks import BrevoTask, DepoTask, LanoTask, ManoTask, rng_for

CASES = [
    # name, reference samples/s, sampler, knob value (None = training distribution)
    ("MANO L<=16 (train)", 55_000, ManoTask(max_ops=16), None),
    ("BREVO N=70 (train)", 6_900, BrevoTask(max_nodes=70), None),
    ("BREVO N=70 (test, n=70)", 3_300, BrevoTask(max_nodes=70), 70),
    ("DEPO N=100 K=16 (train)", 6_200, DepoTask(max_nodes=100, max_k=16), None),
    ("LANO cfg3b (sentences)", 4_550, LanoTask().sampler, "AV"),
]


def rate(task, knob, seconds: float) -> float:
    rng = rng_for(0, "bench")
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(100):
            task.sample(rng, knob)
        n += 100
    return n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    print(f"{'sampler':<28}{'samples/s':>12}{'reference':>12}{'ratio':>8}")
    for name, ref, task, knob in CASES:
        r = rate(task, knob, args.seconds)
        print(f"{name:<28}{r:>12,.0f}{ref:>12,}{r / ref:>7.2f}x")


if __name__ == "__main__":
    main()
