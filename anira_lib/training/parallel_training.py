"""Several training runs at once, one spawned process each (`train_parallel`): on a CPU, small models
gain little from a second thread per step but a lot from a second process.

Workers send their progress bars and their outcome through one queue; a worker whose parent is gone
stops (`exit_with_parent`), so a killed notebook leaves no run locked by an orphan.
"""

from __future__ import annotations

import os
import time

import torch

from ..progress import relay
from .run_config import TrainConfig
from .train import TrainResult, load_run, pick_device, train

PARENT_POLL_S = 1.0


def exit_with_parent(parent: int, poll_s: float = PARENT_POLL_S) -> None:
    """Stop this worker when the process that spawned it (pid `parent`, passed by that process: a
    parent killed while this worker was still importing is gone before it could be read here) is
    gone. A parent killed outright (SIGKILL, or a SIGTERM with no handler) runs no cleanup, and its
    orphaned workers would train on holding their run directories' locks, so a resumed run would
    find them taken. The run keeps what its last checkpoint saved, as after any kill."""
    import threading

    if os.getppid() != parent:
        os._exit(3)

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(3)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _train_worker(key: str, cfg_dict: dict, threads: int, resume, queue, parent: int) -> None:
    """One run of `train_parallel` in a spawned process: its bar and its outcome go through `queue`."""
    exit_with_parent(parent)
    torch.set_num_threads(threads)
    try:
        out = train(TrainConfig.from_dict(cfg_dict), resume=resume, progress_queue=queue).out_dir
    except BaseException as err:  # the parent re-raises it with the worker's traceback
        import traceback

        queue.put((key, "error", (f"{type(err).__name__}: {err}", traceback.format_exc())))
        raise SystemExit(1) from None
    queue.put((key, "result", str(out)))


WORKER_EXIT_GRACE_S = 120.0  # a worker that has reported its result but not exited by then is ended


def train_parallel(configs: list[TrainConfig], processes: int | None = None,
                   resume: bool | str = False) -> list[TrainResult]:
    """Train several runs at once, one process each (spawned, CPU threads split between them).

    Small models gain little from a second thread per step but a lot from a second process, so
    on a CPU this trains e.g. ANIRA-E and ANIRA-O together in about the time of one. On a GPU, or
    with processes=1, runs go one after another in this process. Workers send their bars and their
    outcome through one queue; a worker that dies without one (killed, out of memory) is an error
    naming its run, and an interrupt here ends the workers."""
    import multiprocessing

    cpus = os.cpu_count() or 1
    processes = processes or min(len(configs), cpus)
    if processes <= 1 or len(configs) == 1 or any(pick_device(c.device).type == "cuda" for c in configs):
        return [train(c, resume=resume) for c in configs]
    threads = max(1, cpus // processes)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    keys = [f"run{i}" for i in range(len(configs))]
    waiting = list(zip(keys, configs))
    running, bars, events, reported_at = {}, {}, {}, {}

    def someone_ended() -> bool:  # a worker exited, or reported and outstayed its grace period
        now = time.monotonic()
        for key in running:
            if key in events:
                reported_at.setdefault(key, now)
        return any(not p.is_alive() or now - reported_at.get(k, now) > WORKER_EXIT_GRACE_S
                   for k, p in running.items())

    try:
        while waiting or running:
            while waiting and len(running) < processes:
                key, cfg = waiting.pop(0)
                proc = ctx.Process(target=_train_worker, args=(key, cfg.to_dict(), threads, resume, queue, os.getpid()),
                                   name=f"anira-train-{cfg.decider}")
                proc.start()
                running[key] = proc
            relay(queue, done=someone_ended, bars=bars, events=events, poll_s=0.5)
            now = time.monotonic()
            for key, proc in list(running.items()):
                stuck = proc.is_alive() and now - reported_at.get(key, now) > WORKER_EXIT_GRACE_S
                if stuck:
                    proc.kill()  # reported, then stuck on its way out: what it trained is saved already
                if stuck or not proc.is_alive():
                    proc.join()
                    del running[key]
    finally:
        for proc in running.values():  # an error or an interrupt here: no orphan keeps training
            proc.terminate()
            proc.join()
    for key, cfg in zip(keys, configs):
        event, payload = events.get(key, ("error", None))
        if event != "result":
            message, trace = payload or ("the worker process ended without a result (killed? out of memory?)", "")
            raise RuntimeError(f"training {cfg.out_dir} failed in its worker process: {message}\n{trace}")
    return [load_run(c) for c in configs]
