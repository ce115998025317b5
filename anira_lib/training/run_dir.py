"""A run directory has one writer, and a kill leaves nothing behind that a restart trips over.

`claim_run_dir(out_dir, resume, overwrite)` is called by the trainer (rank 0) before it writes:

- it takes an exclusive lock, `fcntl.flock` on `out_dir/.lock` (the operating system drops it when
  the process ends, SIGKILL included, so a lock is never stale); a second training into the same
  directory is refused with the holder's pid, host and start time;
- it removes the temporary files and folders of writes that a kill interrupted (`.*.tmp`, see
  `files.py`): with the lock held, nobody else is writing them;
- it refuses to start a new run over an existing one unless asked to `resume` it or to `overwrite`
  it (which deletes the old run's files first), so two runs never mix in one directory;
- it writes the run's manifest, `out_dir/.anira_run.json`: the files this run owns. `--overwrite` deletes
  exactly those (a checkpoint evaluation adds its results file with `own_file`), so a folder's other
  files, and files named like a run's that no run wrote, are never touched: a folder that holds such
  files is refused rather than cleared. A run from before manifests is known by its `train_config.yaml`.

Every writer of a run directory takes the same lock: training, and a checkpoint evaluation reading its
snapshots (so `--overwrite` cannot delete them under it).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from pathlib import Path

from ..files import atomic_write_json

LOCK_NAME = ".lock"
MANIFEST = ".anira_run.json"
TRAINING_FILES = ("train_config.yaml", "checkpoint.pt", "metrics.jsonl", "metrics.csv", "model", "checkpoints",
                  "tensorboard")
# what a run may own: the trainer's files and checkpoint_eval's results (a run from before manifests)
RUN_FILES = TRAINING_FILES + ("checkpoint_eval.csv",)


class RunDirError(RuntimeError):
    """A run directory that cannot be used as asked; the message says why and what to do."""


class RunLock:
    """The exclusive claim on one run directory, held until `release()` or the process ends."""

    def __init__(self, out_dir: Path, fd: int):
        self.out_dir, self.fd = out_dir, fd

    def release(self):
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def lock_run_dir(out_dir: str | os.PathLike, name: str = LOCK_NAME, writer: str = "training") -> RunLock:
    """Lock `out_dir` (created if missing) for this process, or raise RunDirError naming the holder
    (its kind of writer, pid, host and start time). writer: what this process is, said to the next one.
    name: the lock file (another name: a lock for what is not a run directory, e.g. a results file)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RunDirError(f"out_dir {out_dir} is a file, not a folder; choose another out_dir.")
    out_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(out_dir / name, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 4096).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        kind = "process"
        try:
            info = json.loads(holder)
            holder = f"pid {info['pid']} on {info['host']}, since {info['since']}"
            kind = info.get("writer", kind)
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
        raise RunDirError(f"{out_dir} is being written by a {kind} ({holder}); wait for it to finish, "
                          "or choose another out_dir.") from None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "writer": writer,
                             "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
    return RunLock(out_dir, fd)


def remove_stale_temps(out_dir: str | os.PathLike) -> list[Path]:
    """Delete what interrupted atomic writes left under out_dir (names `.<target>.<random>.tmp`)."""
    removed = []
    for path in sorted(Path(out_dir).rglob(".*.tmp"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def manifest(out_dir: str | os.PathLike) -> list[str] | None:
    """The files the run in out_dir owns, from its manifest; a run from before manifests (a
    `train_config.yaml`, no manifest) owns the names in RUN_FILES; None: no run wrote this folder."""
    out_dir = Path(out_dir)
    path = out_dir / MANIFEST
    if not path.is_file():
        return list(RUN_FILES) if (out_dir / "train_config.yaml").is_file() else None
    try:
        files = json.loads(path.read_text())["files"]
        if not (isinstance(files, list) and all(isinstance(f, str) and f and "/" not in f and f not in
                                                ("..", ".", LOCK_NAME, MANIFEST) for f in files)):
            raise ValueError  # a name outside the folder, or the lock or manifest themselves
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise RunDirError(f"{path} is damaged (not a list of the run's files); delete the run's files and it "
                          "by hand, or choose another out_dir.") from None
    return files


def own_file(out_dir: str | os.PathLike, name: str) -> None:
    """Add `name` (a file directly in out_dir) to the run's manifest, so `--overwrite` deletes it too.
    Call with the run's lock held."""
    files = manifest(out_dir)
    if files is None:
        return  # not a run's folder: nothing will clear it
    if name not in files:
        atomic_write_json(Path(out_dir) / MANIFEST, {"files": files + [name]})


def existing_run(out_dir: str | os.PathLike) -> list[str]:
    """The run's files already in out_dir (empty: nothing to resume or to overwrite)."""
    return [name for name in manifest(out_dir) or () if (Path(out_dir) / name).exists()]


def foreign_files(out_dir: str | os.PathLike) -> list[str]:
    """Files named like a run's that no run's manifest claims (a user's own `model/`, say)."""
    if manifest(out_dir) is not None:
        return []
    return [name for name in RUN_FILES if (Path(out_dir) / name).exists()]


def clear_run(out_dir: str | os.PathLike) -> None:
    """Delete the run's files, as its manifest lists them, and the manifest (not the lock, not other files)."""
    for name in existing_run(out_dir):
        path = Path(out_dir) / name
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    (Path(out_dir) / MANIFEST).unlink(missing_ok=True)


def claim_run_dir(out_dir: str | os.PathLike, resume: bool, overwrite: bool = False) -> RunLock:
    """Lock out_dir, clean up after killed writes, and check it may hold this run (see the module doc)."""
    if resume and overwrite:
        raise RunDirError("--resume continues the run in out_dir and --overwrite deletes it: pass one of them.")
    lock = lock_run_dir(out_dir)
    try:
        remove_stale_temps(out_dir)
        foreign = foreign_files(out_dir)
        if foreign:
            raise RunDirError(f"{out_dir} holds {', '.join(foreign)}, which no anira run wrote (there is no "
                              f"{MANIFEST}); a run never writes over or deletes them: choose another out_dir, or "
                              "move them away.")
        found = existing_run(out_dir)
        if found and not resume:
            if not overwrite:
                state = "a finished run (model/ is there)" if "model" in found else "an unfinished run"
                raise RunDirError(f"{out_dir} already holds {state}: {', '.join(found)}. Pass --resume to "
                                  "continue it, --overwrite to delete it and start over, or choose another out_dir.")
            clear_run(out_dir)
        if not (Path(out_dir) / MANIFEST).is_file():  # a new run, or one from before manifests resumed
            files = existing_run(out_dir) if resume else []
            atomic_write_json(Path(out_dir) / MANIFEST,
                              {"files": list(TRAINING_FILES) + [f for f in files if f not in TRAINING_FILES]})
    except BaseException:
        lock.release()
        raise
    return lock


__all__ = ["RunDirError", "RunLock", "lock_run_dir", "remove_stale_temps", "manifest", "own_file", "existing_run",
           "foreign_files", "clear_run", "claim_run_dir"]
