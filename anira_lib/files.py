"""Atomic file writes: a reader never sees a half-written checkpoint, config or result.

Each write goes to a temporary sibling `.<name>.<random>.tmp` (folders too), which is renamed into
place; what a kill leaves behind matches `.*.tmp` and is removed by `run_dir.remove_stale_temps`.
Files and folders get the permissions the user's umask gives (not the temp-file default 0600).
Every write passes two fault points (`faults.py`): before and after its rename.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

from .faults import fault_point


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def tmp_beside(path: Path, suffix: str = ".tmp") -> Path:
    """An empty temporary file next to `path`, named `.<name>.<random><suffix>`, mode 0666 & ~umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    return Path(tmp)


# What torch's zip writer says when a write comes up short (a full disk): nothing in it says "space".
_SHORT_WRITE = ("unexpected pos", "PytorchStreamWriter failed writing", "file write failed",
                "No space left on device")  # the last: safetensors' I/O error, not an OSError


@contextmanager
def writing(path: Path):
    """Turn a failed write of `path` into one OSError naming the file, the cause and the fix: a full disk
    (also torch's bare 'unexpected pos' from its zip writer), a read-only file system, no permission."""
    try:
        yield
    except OSError as err:
        raise _named(err.errno, path, err) from None
    except Exception as err:  # torch's RuntimeError, safetensors' SafetensorError
        if any(s in str(err) for s in _SHORT_WRITE):
            raise _named(errno.ENOSPC, path, err) from None
        raise


def _named(code, path: Path, err) -> OSError:
    folder = path.parent if path.parent.exists() else Path.cwd()
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        free = shutil.disk_usage(folder).free / 2**20
        why = (f"no space left to write {path} ({free:.0f} MiB free there): free some space or point out_dir at "
               "another disk (what was written before stays intact; a training run continues from its last "
               "checkpoint with --resume)")
    elif code == errno.EROFS:
        why = f"{path} is on a read-only file system: choose an out_dir you can write to"
    elif code in (errno.EACCES, errno.EPERM):
        why = f"no permission to write {path}: choose an out_dir you own, or fix the folder's permissions"
    else:
        return err if isinstance(err, OSError) else OSError(code, f"writing {path} failed: {err}")
    return OSError(code, why)


def _commit(tmp: Path, path: Path) -> None:
    fault_point(f"written {path.name}")
    os.replace(tmp, path)
    fault_point(f"renamed {path.name}")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    with writing(path):
        tmp = tmp_beside(path)
        try:
            tmp.write_text(text)
            _commit(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    path = Path(path)
    with writing(path):
        tmp = tmp_beside(path)
        try:
            torch.save(obj, tmp)
            _commit(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def atomic_write_npz(path: str | os.PathLike, arrays: dict) -> None:
    """`numpy.savez_compressed` to a temporary sibling, then rename into place."""
    import numpy as np

    path = Path(path)
    with writing(path):
        tmp = tmp_beside(path)
        try:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)
            _commit(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


@contextmanager
def quiet_transformers_bars():
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def atomic_save_pretrained(model, folder: str | os.PathLike, extra=None, state_dict=None) -> None:
    """`save_pretrained` (and `extra(folder)`, e.g. a tokenizer) into a temporary sibling folder, then
    swap it into place. state_dict: the weights to write, when not the model's own (a sharded model's
    gathered full state)."""
    folder = Path(folder)
    with writing(folder):
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
        os.chmod(tmp, 0o777 & ~_umask())
    try:
        with writing(folder):
            with quiet_transformers_bars():  # a one-shard bar per checkpoint is noise in a training log
                model.save_pretrained(tmp, state_dict=None if state_dict is None else dict(state_dict))  # edits it
            if extra is not None:
                extra(tmp)
            old = folder.with_name(f".{folder.name}.old.tmp")
            if folder.exists():
                shutil.rmtree(old, ignore_errors=True)
                os.replace(folder, old)
            _commit(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The JSON objects of a JSON-lines file; a damaged line is an error naming the file and the line."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run the step that writes it first.")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{n} is not valid JSON ({err.msg}, column {err.colno}); the file is damaged: "
                             "delete that line, or the file (a resumed run rewrites its metrics from the "
                             "checkpoint onward).") from None
    return rows
