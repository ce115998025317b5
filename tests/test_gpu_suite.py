"""The GPU suite's --smoke run on the CPU: every section runs, writes its JSON and Markdown, and the
exactness it reports holds (so device minutes are never spent on a crash)."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_gpu_suite_smoke_runs_every_section_on_the_cpu(tmp_path):
    proc = subprocess.run([sys.executable, "benchmarks/gpu_suite.py", "--smoke", "--device", "cpu", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "suite.json").read_text())
    assert result["smoke"] and not result["errors"] and sorted(p.name for p in tmp_path.iterdir()) == ["suite.json", "suite.md"]

    train = {(r["preset"], r["model"], r["way"]) for r in result["train"]}
    models = ("ANIRA-E", "ANIRA-O", "fixed-depth", "Llama (P+D+C)")
    assert train == {(p, m, "eager") for p in ("mano", "brevo") for m in models}  # smoke compiles nothing
    for r in result["train"]:
        ms = r["ms_per_step"]
        assert 0 < ms["min"] <= ms["median"] <= ms["max"] and r["steps_per_s"] == pytest.approx(1000 / ms["median"])
        assert r["hours_for_250k_steps"] == pytest.approx(250_000 * ms["median"] / 1000 / 3600)
        if r["model"] == "Llama (P+D+C)":
            assert r["ratio_to_llama"]["median"] == pytest.approx(1.0)

    assert {(r["model"], r["batch"]) for r in result["decode"]} == {(m, b) for m in ("ANIRA-E", "ANIRA-O") for b in (1, 4)}
    for r in result["decode"]:
        assert 1 <= r["mean_depth"] <= 4 and r["bound"] >= 1 and r["kv_held_over_fixed"] > 0
        assert r["of_bound"]["median"] == pytest.approx(r["speedup"]["median"] / r["bound"], rel=1e-9)

    exact = {(r["model"], r["dtype"]): r for r in result["exactness"]}
    assert set(exact) == {(m, d) for m in ("ANIRA-E", "ANIRA-O") for d in ("float32", "bfloat16")}
    for m in ("ANIRA-E", "ANIRA-O"):  # the cache contract, float32, on this CPU
        assert exact[m, "float32"]["within"] and exact[m, "float32"]["depths_identical"]

    run = result["mano_run"]
    assert run["steps"] >= 10 and run["steps_per_s"] > 0 and run["loss_first"] > 0

    goal_names = [g["goal"] for g in result["goals"]]
    assert any("decode ANIRA-E batch 1" in g for g in goal_names) and any("MANO paper config" in g for g in goal_names)
    md = (tmp_path / "suite.md").read_text()
    assert "SMOKE" in md and md.count("| mano |") == 4 and "## Goals" in md


def test_gpu_suite_rejects_unknown_sections_and_models(tmp_path):
    for args, message in [(["--sections", "train,speed"], "unknown ['speed']"),
                          (["--compile-models", "ANIRA-X"], "unknown ['ANIRA-X']")]:
        proc = subprocess.run([sys.executable, "benchmarks/gpu_suite.py", "--smoke", "--device", "cpu",
                               "--out", str(tmp_path), *args], capture_output=True, text=True)
        assert proc.returncode == 2 and message in proc.stderr
