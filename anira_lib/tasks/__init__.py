"""Complexity-controlled tasks. `get_task(name, **knobs)` builds one by name."""

from __future__ import annotations

import dataclasses

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
    return cls(**knobs)


__all__ = ["Example", "collate", "rng_for", "get_task", "TASKS", "ManoTask", "BrevoTask", "DepoTask", "LanoTask", "ClrsTask", "PackedLMTask"]
