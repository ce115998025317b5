"""CLRS-Text without traces, from the benchmark's own generator (dm-clrs 2.0.3; docs/tasks.md, CLRS-Text).

dm-clrs imports tensorflow, jax, haiku and chex at import time, but text generation needs only numpy
and a handful of helpers. `load_clrs()` imports the generator's modules without running the package
`__init__`, giving them small stand-ins for `jax.tree_util`, `jax.numpy`, `tensorflow.Tensor` and
`chex.assert_rank` *only while they are imported* (then the stand-ins leave `sys.modules`, so no
other library ever sees them). Install: `pip install --no-deps dm-clrs==2.0.3 attrs absl-py`
(`make env` does it). A full dm-clrs install works too: real modules are used when importable.

Tasks: the 30 algorithms give 24 trace-free tasks, because four groups produce identical text but
for the name line (TASK_GROUPS). The complexity knob is the input size n. The training and evaluation
sizes are read from dm-clrs's own generator script (`generate_clrs_text.py`).
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np

CLRS_VERSION = "2.0.3"
HEAVY_MODULES = ("tensorflow", "jax", "haiku", "chex", "optax", "tensorflow_datasets")
TASK_GROUPS = {
    "sort": ("bubble_sort", "heapsort", "insertion_sort", "quicksort"),
    "shortest_paths": ("bellman_ford", "dijkstra"),
    "convex_hull": ("graham_scan", "jarvis_march"),
    "string_matcher": ("kmp_matcher", "naive_string_matcher"),
}
TRAIN_SEED, TRAIN_SAMPLES = 0, 10_000
EVAL_SEEDS, EVAL_SAMPLES = (3, 14, 35, 81, 94), 125
INSTALL_HINT = f"pip install --no-deps dm-clrs=={CLRS_VERSION} attrs absl-py   (or: make env)"


# ----------------------------------------------------------------------------- stand-ins

def _tree_map(fn, tree, *rest):
    """jax.tree_util.tree_map for what dm-clrs batches: lists, tuples, dicts, registered classes."""
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # namedtuple
        return type(tree)(*(_tree_map(fn, *xs) for xs in zip(tree, *rest)))
    if isinstance(tree, (list, tuple)):
        return type(tree)(_tree_map(fn, *xs) for xs in zip(tree, *rest))
    if isinstance(tree, dict):
        return {k: _tree_map(fn, tree[k], *(r[k] for r in rest)) for k in tree}
    if type(tree) in _PYTREES:
        children, meta = tree.tree_flatten()
        others = [r.tree_flatten()[0] for r in rest]
        return type(tree).tree_unflatten(meta, [_tree_map(fn, c, *(o[i] for o in others))
                                                for i, c in enumerate(children)])
    return fn(tree, *rest)


_PYTREES: set[type] = set()


def _register(cls):
    _PYTREES.add(cls)
    return cls


def _one_hot(x, n):
    return (np.asarray(x)[..., None] == np.arange(n)).astype(np.float32)


def _standins() -> dict[str, types.ModuleType]:
    jax = types.ModuleType("jax")
    jax.Array = np.ndarray
    jax.tree_util = types.SimpleNamespace(tree_map=_tree_map, register_pytree_node_class=_register)
    jax.nn = types.SimpleNamespace(one_hot=_one_hot)
    jnp = types.ModuleType("jax.numpy")
    for name in ("zeros", "minimum", "ndarray", "array", "argmax", "sum", "where", "arange"):
        setattr(jnp, name, getattr(np, name))
    jnp.vectorize = np.vectorize
    jax.numpy = jnp
    tf = types.ModuleType("tensorflow")
    tf.Tensor = type("Tensor", (), {})  # nothing dm-clrs produces for text is one
    chex = types.ModuleType("chex")

    def assert_rank(xs, rank):
        for x in xs if isinstance(xs, (list, tuple)) else [xs]:
            if np.ndim(x) != rank:
                raise AssertionError(f"expected rank {rank}, got shape {np.shape(x)}")

    chex.assert_rank = assert_rank
    return {"jax": jax, "jax.numpy": jnp, "jax.tree_util": jax.tree_util, "jax.nn": jax.nn,
            "tensorflow": tf, "chex": chex}


@contextlib.contextmanager
def _temporary_standins():
    """Put stand-ins for missing heavy modules into sys.modules, and take them out again."""
    missing = {}
    for name, module in _standins().items():
        root = name.split(".")[0]
        if name not in sys.modules and importlib.util.find_spec(root) is None:
            missing[name] = module
    sys.modules.update(missing)
    try:
        yield
    finally:
        for name, module in missing.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


@functools.lru_cache(maxsize=None)
def clrs_root() -> Path:
    """Folder of the installed dm-clrs package (checked against the pinned version)."""
    spec = importlib.util.find_spec("clrs")
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError(f"dm-clrs is not installed; CLRS-Text needs it: {INSTALL_HINT}")
    from importlib.metadata import version

    if version("dm-clrs") != CLRS_VERSION:
        raise ImportError(f"dm-clrs {version('dm-clrs')} is installed but the golden strings pin {CLRS_VERSION}: "
                          f"{INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0])


@functools.lru_cache(maxsize=None)
def load_clrs():
    """The dm-clrs text generator modules: (samplers, clrs_utils, huggingface_generators, specs)."""
    root = clrs_root()
    for name, folder in (("clrs", root), ("clrs._src.clrs_text", root / "_src" / "clrs_text")):
        if name not in sys.modules:  # bare packages: their __init__ would import tensorflow and haiku
            pkg = types.ModuleType(name)
            pkg.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
            pkg.__spec__.submodule_search_locations = [str(folder)]
            pkg.__path__ = [str(folder)]
            sys.modules[name] = pkg
    with _temporary_standins():
        modules = tuple(importlib.import_module(f"clrs._src.{m}") for m in
                        ("samplers", "clrs_text.clrs_utils", "clrs_text.huggingface_generators", "specs"))
    return modules


def _script_constant(name: str) -> dict[str, list[int]]:
    """A dict literal of dm-clrs's generate_clrs_text.py ({algo: [sizes]} or {algo: list(range(a, b))})."""
    path = clrs_root() / "_src" / "clrs_text" / "generate_clrs_text.py"
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
            out = {}
            for k, v in zip(node.value.keys, node.value.values):
                if isinstance(v, ast.Call):  # list(range(a, b))
                    a, b = (ast.literal_eval(x) for x in v.args[0].args)
                    out[ast.literal_eval(k)] = list(range(a, b))
                else:
                    out[ast.literal_eval(k)] = ast.literal_eval(v)
            return out
    raise RuntimeError(f"{name} not found in {path}; is dm-clrs {CLRS_VERSION} installed?")


@functools.lru_cache(maxsize=None)
def train_sizes() -> dict[str, list[int]]:
    """Training sizes per algorithm (dm-clrs's defaults; 215 (algorithm, size) pairs)."""
    return _script_constant("_DEFAULT_TRAIN_ALGOS_AND_LENGTHS")


@functools.lru_cache(maxsize=None)
def eval_sizes() -> dict[str, list[int]]:
    """Evaluation sizes per algorithm: every size from 4 to a per-algorithm maximum."""
    return _script_constant("_DEFAULT_VAL_ALGOS_AND_LENGTHS")


def algorithms() -> list[str]:
    return sorted(train_sizes())


def task_of(algorithm: str) -> str:
    """The trace-free task an algorithm belongs to ('sort' for quicksort, ...)."""
    for task, members in TASK_GROUPS.items():
        if algorithm in members:
            return task
    if algorithm not in train_sizes():
        raise KeyError(f"unknown CLRS algorithm {algorithm!r}; known: {', '.join(algorithms())}.")
    return algorithm


def tasks() -> dict[str, list[str]]:
    """{task: [algorithms]} — 24 tasks."""
    out: dict[str, list[str]] = {}
    for a in algorithms():
        out.setdefault(task_of(a), []).append(a)
    return out


def check_size(algorithm: str, size: int):
    task_of(algorithm)
    largest = max(eval_sizes()[algorithm])
    if not 4 <= size <= max(largest, max(train_sizes()[algorithm])):
        raise ValueError(f"size {size} is outside {algorithm}'s range 4..{largest} (dm-clrs's evaluation sizes).")


def generate(algorithm: str, size: int, count: int, seed: int, use_hints: bool = False,
             num_decimals: int = 3) -> list[dict]:
    """The first `count` samples of dm-clrs's sampler for (algorithm, size, seed): dicts with question,
    answer, algo_name, length — the same stream `clrs_generator` draws from for that pair."""
    check_size(algorithm, size)
    samplers, clrs_utils, _, _ = load_clrs()
    with _quiet_absl():
        sampler, _ = samplers.build_sampler(algorithm, seed=seed, num_samples=-1, length=size,
                                            track_max_steps=False, truncate_decimals=num_decimals)
    out = []
    for _ in range(count):
        q, a = clrs_utils.format_clrs_example(algorithm, sampler.next(batch_size=1), use_hints=use_hints)
        out.append({"question": q, "answer": a, "algo_name": algorithm, "length": size})
    return out


def golden_text(algorithm: str, size: int = 5, use_hints: bool = False, seed: int = 0) -> str:
    """The first `text` of dm-clrs's own `clrs_generator` for one (algorithm, size) — the golden-string recipe."""
    _, _, hf, _ = load_clrs()
    with _quiet_absl():  # dm-clrs warns that its own generator passes an unused kwarg
        return next(iter(hf.clrs_generator({algorithm: [size]}, num_samples=1, use_hints=use_hints, seed=seed)))["text"]


@contextlib.contextmanager
def _quiet_absl():
    """dm-clrs logs a warning per sampler it builds; keep them out of progress bars."""
    import logging

    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        yield
    finally:
        absl.setLevel(level)
