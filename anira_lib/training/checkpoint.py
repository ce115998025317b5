"""A training run's checkpoint: `out_dir/checkpoint.pt` holds the model, the optimizer's moments, the
scheduler, every rank's RNG states (and a streaming task's data positions), the step and the config.

Resume is exact: a run stopped at step k and resumed reproduces the uninterrupted run bit for bit
(tests/test_train.py), because batch k of rank r is a pure function of (seed, r, k) and every random
state is saved. Checkpoints load with `weights_only=True`, so a planted file cannot run code.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
import torch.distributed as dist

from ..files import atomic_save_pretrained, atomic_torch_save, read_jsonl
from .metrics_log import write_metrics
from .run_config import DECIDER_LOSS_FIELDS, TrainConfig
from .run_dir import RunDirError
from .sharding import is_sharded, load_optimizer_state, model_state, optimizer_state

# Fields that may differ between a checkpoint's config and the config resuming it.
RESUMABLE_CHANGES = {"steps", "progress", "log_every", "checkpoint_every", "tensorboard", "out_dir"}


def rng_state() -> dict:
    """This process's random states: torch's, Python's and (with a GPU) CUDA's."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Put back what `rng_state` returned."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint(out_dir: str | Path) -> dict:
    """out_dir/checkpoint.pt, unpickled with weights_only=True (tensors and plain containers only: a
    planted file cannot run code). Errors name the file and what to do."""
    path = Path(out_dir) / "checkpoint.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: nothing to resume. Start without --resume "
                                f"(or point out_dir at the run that wrote it).")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, corrupt, or holding objects weights_only refuses
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunDirError(f"{path} cannot be read as a checkpoint ({reason[:200]}); it is truncated, corrupt or "
                          "not written by anira. Delete it, or start over with --overwrite.") from err
    missing = {"model", "optimizer", "scheduler", "rng", "step", "config"} - set(ckpt if isinstance(ckpt, dict) else ())
    if missing:
        raise RunDirError(f"{path} lacks {sorted(missing)}: not an anira training checkpoint. Start over with "
                          "--overwrite, or point out_dir at the run that wrote it.")
    return ckpt


def check_resumable(ckpt: dict, cfg: TrainConfig, path: Path) -> None:
    """Refuse to resume a checkpoint with another config, or one already past cfg.steps. Besides
    RESUMABLE_CHANGES, a run without a decider may change the decider's loss knobs, which it never
    uses (so a study with other β / λ for ANIRA-E and -O finds its finished baselines reusable)."""
    now = cfg.to_dict()
    then = {**TrainConfig.defaults(), **ckpt["config"]}  # a key added since the run started: its default
    free = RESUMABLE_CHANGES | (set(DECIDER_LOSS_FIELDS) if now["decider"] == then.get("decider") == "none" else set())
    changed = sorted(k for k in now if k not in free and then.get(k) != now[k])
    if changed:
        diffs = ", ".join(f"{k}={then.get(k)!r} (now {now[k]!r})" for k in changed)
        raise RunDirError(f"{path} was written with another config: {diffs}. Only "
                          f"{sorted(RESUMABLE_CHANGES)} may change when resuming; use a new out_dir, or start over "
                          f"with --overwrite (from a notebook: delete {path.parent}).")
    if ckpt["step"] > cfg.steps:
        raise RunDirError(f"{path} is at step {ckpt['step']}, past steps={cfg.steps}; pass steps={ckpt['step']} "
                          "or more to resume it, or start over with --overwrite (from a notebook: delete "
                          f"{path.parent}).")


class Checkpointer:
    """Saves and restores one run's training state in `out_dir` (rank `rank` of `world` processes).

    `save(step, metrics)` writes, on rank 0, the step's snapshot (with keep_checkpoints), the metrics
    and then `checkpoint.pt`, whose atomic rename commits the step: a kill at any point loses nothing
    before the last committed step. `restore(ckpt)` returns (start step, metrics so far)."""

    def __init__(self, cfg: TrainConfig, out_dir: Path, model, opt, sched, task, rank: int = 0, world: int = 1):
        self.cfg, self.out_dir, self.model, self.opt, self.sched, self.task = cfg, out_dir, model, opt, sched, task
        self.rank, self.world = rank, world

    def save(self, step: int, metrics: list[dict]) -> None:
        local = (rng_state(), self.task.data_state(self.rank))
        states = [None] * self.world
        if self.world > 1:
            dist.all_gather_object(states, local)
        else:
            states = [local]
        rng, data = [r for r, _ in states], [d for _, d in states]
        weights, moments = model_state(self.model), optimizer_state(self.model, self.opt)  # every rank: FSDP gathers
        full = weights if is_sharded(self.model) else None  # save_pretrained of a sharded model needs them
        if self.rank == 0:  # snapshot and metrics first: the checkpoint's rename commits the step
            if self.cfg.keep_checkpoints:
                atomic_save_pretrained(self.model, self.out_dir / "checkpoints" / f"step_{step:07d}", state_dict=full)
            write_metrics(self.out_dir, metrics)
            atomic_torch_save({"model": weights, "optimizer": moments,
                               "scheduler": self.sched.state_dict(), "rng": rng, "step": step,
                               "config": self.cfg.to_dict(), **({"data": data} if any(data) else {})},
                              self.out_dir / "checkpoint.pt")

    def restore(self, ckpt: dict | None) -> tuple[int, list[dict]]:
        """(start step, metrics so far): from the checkpoint (metrics truncated at its step, on disk too:
        rows past it, left by a kill between the two writes, are recomputed), or fresh seeds. The model's
        weights are loaded already (before sharding); this loads the optimizer, a streaming task's
        positions, the scheduler and the RNG states."""
        cfg, rank, out_dir = self.cfg, self.rank, self.out_dir
        if ckpt is None:
            torch.manual_seed(cfg.seed * 1000 + rank)
            random.seed(cfg.seed * 1000 + rank)
            return 0, []
        if "data" in ckpt:
            if len(ckpt["data"]) != self.world:
                raise RunDirError(f"{out_dir / 'checkpoint.pt'} was written by {len(ckpt['data'])} processes, each "
                                  f"streaming its own share of the data; resume it with {len(ckpt['data'])} (now "
                                  f"{self.world}).")
            self.task.load_data_state(ckpt["data"][rank], rank)
        load_optimizer_state(self.model, self.opt, ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        start = ckpt["step"]
        metrics = [r for r in read_jsonl(out_dir / "metrics.jsonl") if r["step"] <= start] \
            if (out_dir / "metrics.jsonl").exists() else []
        if rank == 0:
            if start > 0 and not metrics:  # deleted or emptied by hand: the curve restarts at the checkpoint
                print(f"{out_dir / 'metrics.jsonl'} holds no rows up to the checkpoint's step {start} (missing or "
                      f"emptied): they cannot be recomputed, so the run's metrics start at step {start + 1}; "
                      "--overwrite retrains from step 0 for the whole curve.")
            write_metrics(out_dir, metrics)
        set_rng_state(ckpt["rng"][rank] if rank < len(ckpt["rng"]) else ckpt["rng"][0])
        return start, metrics
