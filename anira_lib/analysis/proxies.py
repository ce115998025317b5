"""LANO difficulty proxies per window position, computed over many windows in parallel and cached.

A LANO window is sentences separated by EOS (docs/tasks.md); each sentence is parsed from its first
token with `PrefixParser`, so the proxies of position t describe the work of reading token t given its
sentence so far — the same position whose expected depth the model spends to predict token t+1.

    proxies = compute_proxies(windows)           # cached under data/lano_proxies/<key>.npz
    proxies["ops_mul"]                           # (W, L) float, NaN at EOS and padding
    proxies["next_token"]                        # (W, L, T+1) exact P(next | prefix) over terminals, EOS
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..files import atomic_write_npz
from ..tasks.pcfg import grammar_path, load_pcfg
from .prefix_parser import FEATURES, PrefixParser, to_cnf
from ..progress import progress_bar
from ..tasks.lano import EOS, PAD

CACHE_VERSION = 1
DEFAULT_CACHE = Path("data/lano_proxies")
_PARSERS: dict[str, PrefixParser] = {}


def _parser(grammar: str) -> PrefixParser:
    if grammar not in _PARSERS:
        _PARSERS[grammar] = PrefixParser(to_cnf(load_pcfg(grammar)))
    return _PARSERS[grammar]


def terminal_order(grammar: str = "cfg3b") -> list[str]:
    """The terminals in the order of the `next_token` columns (then EOS)."""
    return _parser(grammar).cnf.terminals


def window_proxies(tokens, grammar: str = "cfg3b") -> dict[str, np.ndarray]:
    """Proxies of one window (length L): the four features and prefix_logprob (L,), NaN at EOS/PAD
    and after a token that leaves the grammar; next_token (L, T+1), the exact next-token
    distribution after each position (after EOS: the first-token distribution); off_grammar (L,) bool."""
    parser = _parser(grammar)
    n = len(tokens)
    terms = parser.cnf.terminals
    out = {f: np.full(n, np.nan) for f in (*FEATURES, "prefix_logprob")}
    out["next_token"] = np.full((n, len(terms) + 1), np.nan)
    out["off_grammar"] = np.zeros(n, dtype=bool)
    first_token = parser.parse([]).next_token[0]  # what follows an EOS: a new sentence
    start = 0
    while start < n:
        stop = start
        while stop < n and tokens[stop] not in (EOS, PAD):
            stop += 1
        if stop > start:
            tr = parser.parse(list(tokens[start:stop]))
            for f in FEATURES:
                out[f][start:stop] = np.where(tr.features[f] >= 0, tr.features[f], np.nan)
            out["prefix_logprob"][start:stop] = tr.prefix_logprob
            out["next_token"][start:stop] = tr.next_token[1:]
            if tr.off_grammar_at is not None:
                out["off_grammar"][start + tr.off_grammar_at:stop] = True
        if stop < n and tokens[stop] == EOS:
            out["next_token"][stop] = first_token
        start = stop + 1
    return out


def _window_worker(args):
    tokens, grammar = args
    return window_proxies(tokens, grammar)


def cache_key(windows, grammar: str) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"version": CACHE_VERSION, "binarization": "right"}).encode())
    h.update(grammar_path(grammar).read_bytes())
    for w in windows:
        h.update(np.asarray(w, dtype=np.int32).tobytes() + b"|")
    return h.hexdigest()[:16]


def compute_proxies(windows, grammar: str = "cfg3b", processes: int | None = None,
                    cache_dir: str | Path | None = DEFAULT_CACHE, progress: bool = True) -> dict[str, np.ndarray]:
    """Stack `window_proxies` over equal-length windows: arrays (W, L) and next_token (W, L, T+1).

    Runs over `processes` (default: all cores) and caches the result as `cache_dir/<key>.npz`, the key
    hashing the grammar file, the windows and the feature definition; a corrupt cache is recomputed."""
    windows = [list(map(int, w)) for w in windows]
    if len({len(w) for w in windows}) > 1:
        raise ValueError("windows must all have the same length (LANO windows are fixed-size); "
                         f"got lengths {sorted({len(w) for w in windows})}.")
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{cache_key(windows, grammar)}.npz"
        if path.exists():
            try:
                with np.load(path) as f:
                    return {k: f[k] for k in f.files}
            except Exception as err:  # noqa: BLE001 - any unreadable cache is rebuilt
                warnings.warn(f"proxy cache {path} is unreadable ({err}); recomputing it.")
    processes = processes or os.cpu_count() or 1
    jobs = [(w, grammar) for w in windows]
    bar = dict(total=len(jobs), desc="prefix parser", disable=not progress)
    if processes > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(processes) as pool:
            rows = list(progress_bar(pool.map(_window_worker, jobs, chunksize=max(1, len(jobs) // (8 * processes))), **bar))
    else:
        rows = [window_proxies(*job) for job in progress_bar(jobs, **bar)]
    out = {k: np.stack([r[k] for r in rows]) for k in rows[0]} if rows else {}
    if path is not None and rows:
        atomic_write_npz(path, out)
    return out
