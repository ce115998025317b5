"""The training benchmark runs as documented and prints its side-by-side columns (eager ways only: seconds)."""

import re
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_train_throughput_prints_interleaved_ratios():
    out = subprocess.run([sys.executable, "benchmarks/train_throughput.py", "--no-compile", "--steps", "1",
                          "--rounds", "5", "--models", "E,llama", "--task-args", '{"max_ops": 6}'],
                         capture_output=True, text=True, check=True).stdout
    assert "preset=demo task=mano" in out and "threads=1" in out
    assert " T=16-16 " in out  # --task-args: six operations make MANO rows of 16 tokens (the demo's are 12)
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(("ANIRA-E", "Llama"))}
    cells = re.findall(r"(\d+\.\d+) \[(\d+\.\d+)-(\d+\.\d+)\]", rows["ANIRA-E"])
    assert len(cells) == 2  # before, eager: median [min-max] each
    assert all(float(lo) <= float(med) <= float(hi) for med, lo, hi in cells)
    assert re.search(r"eager\s+vs Llama: ANIRA-E \d+\.\d+ \[", out)
    assert "optimizer" in out and "batch (sample + collate)" in out


def test_train_throughput_rejects_an_unknown_model_and_too_few_rounds():
    for args, message in [(["--models", "E,gpt"], "unknown ['gpt']"), (["--rounds", "3"], "at least 5")]:
        proc = subprocess.run([sys.executable, "benchmarks/train_throughput.py", "--no-compile", *args],
                              capture_output=True, text=True)
        assert proc.returncode == 2 and message in proc.stderr
