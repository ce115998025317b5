"""Speed of the LANO difficulty proxies (incremental prefix parser, all four features + prefix and
next-token probabilities).

    python benchmarks/prefix_parser.py               # 1 window on one core, then 1,000 windows on all cores

Goals (issue): a 512-token cfg3b window in <= 0.5 s on one core; 1,000 windows in <= 5 min on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from anira_lib.analysis.proxies import compute_proxies, window_proxies
from anira_lib.tasks import get_task


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--windows", type=int, default=1000)
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--processes", type=int, default=os.cpu_count())
    args = ap.parse_args()
    task = get_task("lano", window=args.window)
    windows = [ex.tokens for ex in task.eval_examples(None, args.windows, seed=99)]
    window_proxies(windows[0])  # grammar conversion, imports
    single = []
    for w in windows[:10]:
        t = time.perf_counter()
        window_proxies(w)
        single.append(time.perf_counter() - t)
    print(f"one {args.window}-token window, one core: median {statistics.median(single):.3f} s "
          f"(max {max(single):.3f} s over 10; goal <= 0.5 s)")
    t = time.perf_counter()
    compute_proxies(windows, processes=args.processes, cache_dir=None)
    total = time.perf_counter() - t
    print(f"{args.windows} windows on {args.processes} processes: {total:.1f} s "
          f"({args.windows / total:.1f} windows/s; goal: 1,000 in <= 300 s)")


if __name__ == "__main__":
    main()
