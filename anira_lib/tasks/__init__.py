"""Complexity-controlled tasks. `get_task(name, **knobs)` builds one by name."""

from __future__ import annotations

import dataclasses
import typing

from .base import Example, collate, rng_for
from .brevo import BrevoTask
from .clrs import ClrsTask
from .depo import DepoTask
from .lano import LanoTask
from .mano import ManoTask
from .packed_lm import PackedLMTask

TASKS = {"mano": ManoTask, "brevo": BrevoTask, "depo": DepoTask, "lano": LanoTask, "clrs": ClrsTask,
         "packed_lm": PackedLMTask}


def get_task(name: str, **knobs):
    """Build task `name` with its knobs; unknown names or knobs get an error listing the valid ones."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; available tasks: {sorted(TASKS)}.")
    cls = TASKS[name]
    valid = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(knobs) - valid)
    if bad:
        raise ValueError(f"task {name!r} has no knob(s) {bad}; valid knobs: {sorted(valid)}.")
    hints = typing.get_type_hints(cls)
    for key, value in knobs.items():  # scalar knobs by type (a YAML '3' is a string, and would fail deep inside)
        want = hints.get(key)
        ok = {int: isinstance(value, int) and not isinstance(value, bool), bool: isinstance(value, bool),
              float: isinstance(value, (int, float)) and not isinstance(value, bool), str: isinstance(value, str)}
        if want in ok and not ok[want]:
            raise ValueError(f"task {name!r} knob {key} must be {want.__name__}, got {value!r} "
                             f"({type(value).__name__}); write it without quotes.")
    return cls(**knobs)


__all__ = ["Example", "collate", "rng_for", "get_task", "TASKS", "ManoTask", "BrevoTask", "DepoTask", "LanoTask", "ClrsTask", "PackedLMTask"]
