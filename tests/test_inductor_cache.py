"""A damaged inductor cache (a truncated compiled library left by a killed compile) is found, removed,
and compiled again: compiled training survives it with the same numbers and says so in one line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from anira_lib.training import inductor_cache


def entry(root: Path, name: str, size: int) -> Path:
    folder = root / name[1:3]
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".main.cpp", ".main.so", ".main.lock"):
        (folder / f"{name}{suffix}").write_bytes(b"x" * (size if suffix == ".main.so" else 3))
    return folder / f"{name}.main.so"


def test_a_library_the_loader_calls_too_short_or_that_is_empty_is_damaged(tmp_path):
    short, empty, fine = entry(tmp_path, "cabc", 10), entry(tmp_path, "cdef", 0), entry(tmp_path, "cxyz", 10)
    err = RuntimeError("backend='inductor' raised")
    err.__cause__ = ImportError(f"{short}: file too short")
    assert inductor_cache.damaged_entries(err, tmp_path) == [short]
    assert inductor_cache.damaged_entries(ImportError(f"cannot load {empty}"), tmp_path) == [empty]
    assert inductor_cache.damaged_entries(ImportError(f"cannot load {fine}"), tmp_path) == []  # not said damaged
    assert inductor_cache.empty_libraries(tmp_path) == [empty]


def test_only_files_inside_the_cache_count(tmp_path):
    outside = tmp_path / "elsewhere" / "lib.so"
    outside.parent.mkdir()
    outside.write_bytes(b"")
    assert inductor_cache.damaged_entries(ImportError(f"{outside}: file too short"), tmp_path / "cache") == []


def test_removing_an_entry_removes_the_library_and_its_lock_and_nothing_else(tmp_path):
    damaged, other = entry(tmp_path, "cabc", 0), entry(tmp_path, "cxyz", 10)
    removed = inductor_cache.remove_entries([damaged])
    assert sorted(p.name for p in removed) == ["cabc.main.lock", "cabc.main.so"]
    assert not damaged.exists() and (damaged.parent / "cabc.main.cpp").exists()  # its source stays
    assert other.exists() and len(list(other.parent.iterdir())) == 3


def test_run_recovering_removes_the_damage_resets_and_calls_again(tmp_path, monkeypatch):
    monkeypatch.setattr(inductor_cache, "cache_dir", lambda: tmp_path)
    first, other = entry(tmp_path, "cabc", 0), entry(tmp_path, "cdef", 0)
    calls, resets, said = [], [], []

    def call():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("backend='inductor' raised") from ImportError(f"{first}: file too short")
        return "compiled"

    assert inductor_cache.run_recovering(call, reset=lambda: resets.append(1), say=said.append) == "compiled"
    assert len(calls) == 2 and resets == [1] and len(said) == 1 and str(first) in said[0]
    assert not first.exists() and not other.exists()  # the named library and every other empty one


def test_run_recovering_lets_other_errors_through_and_gives_up_after_its_attempts(tmp_path, monkeypatch):
    monkeypatch.setattr(inductor_cache, "cache_dir", lambda: tmp_path)
    with pytest.raises(ValueError, match="not about the cache"):
        inductor_cache.run_recovering(lambda: (_ for _ in ()).throw(ValueError("not about the cache")))
    damaged = entry(tmp_path, "cabc", 0)

    def always():
        damaged.write_bytes(b"")  # damaged again every time
        raise ImportError(f"{damaged}: file too short")

    with pytest.raises(ImportError, match="file too short"):
        inductor_cache.run_recovering(always, attempts=3, say=lambda line: None)


def test_the_training_compile_goes_through_the_recovery(tmp_path, monkeypatch, capsys):
    import torch

    from anira_lib.training.training_compile import compile_on_first_batch

    monkeypatch.setattr(inductor_cache, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(torch._dynamo, "reset", lambda: None)
    damaged = entry(tmp_path, "cabc", 0)
    model = torch.nn.Linear(2, 1)
    calls = []

    def step_model(**inputs):
        calls.append(1)
        if len(calls) == 1:
            raise ImportError(f"{damaged}: file too short")
        return type("Out", (), {"loss": model(torch.ones(1, 2)).sum()})()

    batch = {"input_ids": torch.ones(1, 3, dtype=torch.long), "labels": torch.ones(1, 3, dtype=torch.long),
             "attention_mask": torch.ones(1, 3, dtype=torch.long)}
    compile_on_first_batch(step_model, model, batch, torch.device("cpu"), "float32")
    assert len(calls) == 2 and not damaged.exists() and model.weight.grad is None
    assert "inductor's cache held damaged compiled libraries" in capsys.readouterr().out


COMPILED = """
import torch
from anira_lib.training import inductor_cache
f = torch.compile(lambda x: (x.sin() * 2).sum(), options={"cpp_wrapper": True})
print(inductor_cache.run_recovering(lambda: float(f(torch.ones(8))), reset=torch._dynamo.reset))
"""


@pytest.mark.slow
def test_a_compiled_call_recovers_from_truncated_libraries_for_real(tmp_path):
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}

    def run():
        done = subprocess.run([sys.executable, "-c", COMPILED], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    first = run()
    libraries = list((tmp_path / "cache").rglob("*.main.so"))  # the compiled graph's wrapper library
    assert libraries
    for library in libraries:  # what a kill during its write leaves (the failure seen in the field)
        library.write_bytes(b"")
    again = run()
    assert "inductor's cache held damaged compiled libraries" in again
    assert again.strip().splitlines()[-1] == first.strip().splitlines()[-1]
    assert not inductor_cache.empty_libraries(tmp_path / "cache")
