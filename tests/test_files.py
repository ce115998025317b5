"""Failed writes say which file, why and what to do, in one line: a full disk (also torch's bare
'unexpected pos'), a read-only file system, no permission; nothing half-written is left."""

import errno

import pytest
import torch

from anira_lib import files
from anira_lib.cli import one_line_errors


def fails_with(exc):
    def raise_(*args, **kwargs):
        raise exc
    return raise_


@pytest.mark.parametrize("exc, words", [
    (RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 9536 vs 9424"), "no space left to write"),
    (OSError(errno.ENOSPC, "No space left on device"), "no space left to write"),
    (OSError(errno.EROFS, "Read-only file system"), "read-only file system: choose an out_dir"),
    (OSError(errno.EACCES, "Permission denied"), "no permission to write"),
])
def test_a_failed_checkpoint_write_is_one_line_naming_the_file_and_the_fix(tmp_path, monkeypatch, exc, words):
    monkeypatch.setattr(torch, "save", fails_with(exc))
    target = tmp_path / "checkpoint.pt"
    with pytest.raises(SystemExit) as done:
        with one_line_errors("anira train"):
            files.atomic_torch_save({"step": 1}, target)
    message = str(done.value)
    assert "\n" not in message and words in message and str(target) in message
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_a_full_disk_while_writing_text_is_named_too(tmp_path, monkeypatch):
    monkeypatch.setattr(type(tmp_path), "write_text", fails_with(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(OSError, match="no space left to write .*metrics.csv.*MiB free there"):
        files.atomic_write_text(tmp_path / "metrics.csv", "step\n")


def test_other_errors_pass_through_unchanged(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", fails_with(RuntimeError("something else")))
    with pytest.raises(RuntimeError, match="^something else$"):
        files.atomic_torch_save({}, tmp_path / "x.pt")
    monkeypatch.setattr(torch, "save", fails_with(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError, match="I/O error"):
        files.atomic_torch_save({}, tmp_path / "x.pt")


def test_a_read_only_folder_is_named_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(files.tempfile, "mkstemp", fails_with(OSError(errno.EROFS, "Read-only file system")))
    with pytest.raises(OSError, match="read-only file system: choose an out_dir"):
        files.atomic_write_text(tmp_path / "train_config.yaml", "steps: 1\n")
