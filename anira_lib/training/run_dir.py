"""A run directory has one writer, and a kill leaves nothing behind that a restart trips over.

`claim_run_dir(out_dir, resume, overwrite)` is called by the trainer (rank 0) before it writes:

- it takes an exclusive lock, `fcntl.flock` on `out_dir/.lock` (the operating system drops it when
  the process ends, SIGKILL included, so a lock is never stale); a second training into the same
  directory is refused with the holder's pid, host and start time;
- it removes the temporary files and folders of writes that a kill interrupted (`.*.tmp`, see
  `files.py`): with the lock held, nobody else is writing them;
- it refuses to start a new run over an existing one unless asked to `resume` it or to `overwrite`
  it (which deletes the old run's files first), so two runs never mix in one directory.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from pathlib import Path

LOCK_NAME = ".lock"
RUN_FILES = ("train_config.yaml", "checkpoint.pt", "metrics.jsonl", "metrics.csv", "model", "checkpoints",
             "tensorboard", "checkpoint_eval.csv")  # the last: checkpoint_eval's results, the run's own too


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
    """Lock `out_dir` (created if missing) for this process, or raise RunDirError naming the holder.
    name: the lock file (another name: a lock for another writer, e.g. a checkpoint evaluation)."""
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
        try:
            info = json.loads(holder)
            holder = f"pid {info['pid']} on {info['host']}, since {info['since']}"
        except (ValueError, KeyError, TypeError):
            pass
        raise RunDirError(f"{out_dir} is being written by another {writer} ({holder}); wait for it to finish, "
                          "or choose another out_dir.") from None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
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


def existing_run(out_dir: str | os.PathLike) -> list[str]:
    """The run files already in out_dir (empty: nothing to resume or to overwrite)."""
    return [name for name in RUN_FILES if (Path(out_dir) / name).exists()]


def clear_run(out_dir: str | os.PathLike) -> None:
    """Delete a run's files (not the lock, not files that are no run's)."""
    for name in existing_run(out_dir):
        path = Path(out_dir) / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def claim_run_dir(out_dir: str | os.PathLike, resume: bool, overwrite: bool = False) -> RunLock:
    """Lock out_dir, clean up after killed writes, and check it may hold this run (see the module doc)."""
    if resume and overwrite:
        raise RunDirError("--resume continues the run in out_dir and --overwrite deletes it: pass one of them.")
    lock = lock_run_dir(out_dir)
    try:
        remove_stale_temps(out_dir)
        found = existing_run(out_dir)
        if found and not resume:
            if not overwrite:
                state = "a finished run (model/ is there)" if "model" in found else "an unfinished run"
                raise RunDirError(f"{out_dir} already holds {state}: {', '.join(found)}. Pass --resume to "
                                  "continue it, --overwrite to delete it and start over, or choose another out_dir.")
            clear_run(out_dir)
    except BaseException:
        lock.release()
        raise
    return lock


__all__ = ["RunDirError", "RunLock", "lock_run_dir", "remove_stale_temps", "existing_run", "clear_run",
           "claim_run_dir"]
