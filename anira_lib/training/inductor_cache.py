"""Recovering from a damaged entry in inductor's on-disk cache.

A process killed while inductor writes a compiled kernel library can leave a truncated file (a 0-byte
`<hash>.main.so`) in the cache (by default `/tmp/torchinductor_$USER`, or `TORCHINDUCTOR_CACHE_DIR`).
Inductor finds the file, skips compiling, and fails to load it, so every later compile of that graph
on the machine fails with `ImportError: ... file too short` (pytorch issue 102539). `damaged_entries`
reads such an error, `remove_entries` deletes each damaged library, and inductor compiles it again
from its source on the next call; `run_recovering` does all three around a first compiled call.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

# What a loader says about a truncated or corrupt shared library.
DAMAGE = re.compile(r"file too short|invalid ELF header|not an ELF file|truncated|unexpected end of file|"
                    r"ELF load command|cannot read file data", re.I)
LIBRARY = re.compile(r"(/[^\s:'\"]+\.(?:so|pyd|dylib))")


def cache_dir() -> Path:
    """Inductor's on-disk cache folder, as inductor itself computes it."""
    try:
        from torch._inductor.runtime.cache_dir_utils import cache_dir as inductor_cache_dir
    except ImportError:  # another torch layout: inductor's documented default
        import getpass

        explicit = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
        user = re.sub(r'[\\/:*?"<>|]', "_", getpass.getuser())
        return Path(explicit) if explicit else Path(tempfile.gettempdir()) / f"torchinductor_{user}"
    return Path(inductor_cache_dir())


def _messages(err: BaseException):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield str(err)
        err = err.__cause__ or err.__context__


def damaged_entries(err: BaseException, root: str | Path | None = None) -> list[Path]:
    """The libraries inside inductor's cache that `err` (or an exception it was raised from) failed to
    load because they are damaged: the message names the file and says so, or the file is empty."""
    root = Path(root or cache_dir()).resolve()
    found = []
    for message in _messages(err):
        for name in LIBRARY.findall(message):
            path = Path(name)
            try:
                inside = path.resolve().is_relative_to(root)
            except OSError:
                continue
            empty = path.is_file() and path.stat().st_size == 0
            if inside and (empty or DAMAGE.search(message)) and path not in found:
                found.append(path)
    return found


def empty_libraries(root: str | Path | None = None) -> list[Path]:
    """Every 0-byte compiled library in the cache: a kill during one write leaves one, a kill of a
    compile that wrote several in parallel leaves several."""
    root = Path(root or cache_dir())
    return sorted(p for pattern in ("*.so", "*.pyd", "*.dylib") for p in root.rglob(pattern)
                  if p.is_file() and p.stat().st_size == 0)


def remove_entries(libraries: list[Path]) -> list[Path]:
    """Delete each damaged library (and a lock file beside it named after it); inductor compiles it again
    from its source on the next call. Nothing else is touched: other files of the cache (headers shared by
    many kernels among them) stay. Returns what was removed."""
    removed = []
    for library in libraries:
        for path in (library, library.with_name(library.name.rsplit(".", 1)[0] + ".lock")):
            if path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def run_recovering(call, reset=None, attempts: int = 5, say=print):
    """`call()`, and when it fails on damaged libraries of inductor's cache: remove them (and any other
    empty library), `reset()` (e.g. `torch._dynamo.reset`), say so in one line, and call again, at
    most `attempts` times in all. Any other error goes up unchanged. Returns what `call` returns."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as err:
            damaged = damaged_entries(err)
            if not damaged or attempt == attempts - 1:
                raise
            removed = remove_entries(sorted(set(damaged + empty_libraries())))
            say(f"anira: inductor's cache held damaged compiled libraries ({damaged[0]} and {len(removed) - 1} more "
                "files, likely left by a killed compile); removed them, compiling again")
            if reset is not None:
                reset()
