"""A damaged inductor cache (a truncated compiled library left by a killed compile) is found, removed,
and compiled again: compiled training survives it with the same numbers and says so in one line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from anira_lib import inductor_cache


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


TRAIN = """
import json, sys
from anira_lib.run_config import TrainConfig
from anira_lib.train import train
run = train(TrainConfig(task="mano", hidden_size=32, intermediate_size=64, max_depth=2, steps=2, batch_size=8,
                        compile=True, progress=False, checkpoint_every=2, out_dir=sys.argv[1]))
print(json.dumps(run.metrics[-1]))
"""


@pytest.mark.slow
def test_compiled_training_recovers_from_truncated_libraries(tmp_path):
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}

    def run(name):
        done = subprocess.run([sys.executable, "-c", TRAIN, str(tmp_path / name)], env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout, json.loads(done.stdout.strip().splitlines()[-1])

    _, first = run("a")
    libraries = list((tmp_path / "cache").rglob("*.main.so"))  # the compiled graphs' wrapper libraries
    assert libraries
    for library in libraries:  # what a kill during their write leaves (the failure seen in the field)
        library.write_bytes(b"")
    out, again = run("b")
    assert "inductor's cache held damaged compiled libraries" in out
    assert {k: v for k, v in again.items() if k not in ("tokens_per_s", "elapsed_s")} == \
           {k: v for k, v in first.items() if k not in ("tokens_per_s", "elapsed_s")}
    assert not inductor_cache.empty_libraries(tmp_path / "cache")
