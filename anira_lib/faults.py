"""Fault injection for the kill tests: every durable write and every training step passes a fault point.

    ANIRA_FAULT_LOG=path   append "<n> <label>" for each point passed (to count and name them)
    ANIRA_FAULT_AT=n       SIGKILL this process at the n-th point

Unset (always, outside tests), a fault point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_passed = 0


def fault_point(label: str) -> None:
    global _passed
    at, log = os.environ.get("ANIRA_FAULT_AT"), os.environ.get("ANIRA_FAULT_LOG")
    if not (at or log):
        return
    _passed += 1
    if log:
        with open(log, "a") as f:
            f.write(f"{_passed} {label}\n")
    if at and int(at) == _passed:
        os.kill(os.getpid(), signal.SIGKILL)


def reset_fault_points() -> None:
    """Count from 1 again (a forked test process starts its own count)."""
    global _passed
    _passed = 0
