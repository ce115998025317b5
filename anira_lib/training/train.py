"""The training loop: usable from a notebook (`train(cfg)`) and as `python -m anira_lib.training.train`.

    python -m anira_lib.training.train --config configs/mano_tiny.yaml steps=2000 decider=online
    torchrun --nproc_per_node 4 -m anira_lib.training.train --config configs/mano_paper.yaml

The loop is short because its parts live in their own modules: one optimizer step
(`training_step.train_step`: AdamW, linear warm-up then constant LR, gradient clipping, bf16 autocast
on GPU, `grad_accum=K` micro-batches), compiled training with `compile=true` (`training_compile`),
the checkpoint (`checkpoint.Checkpointer`) and the metric files (`metrics_log`). DDP, or FSDP2 with
`sharding=fsdp` (`sharding.py`), is picked up from torchrun's environment (WORLD_SIZE > 1): no
launcher of our own; several runs in worker processes: `parallel_training.train_parallel`. Rank 0
writes `out_dir/`: `train_config.yaml`, `metrics.jsonl` + `metrics.csv`, `checkpoint.pt` (every
`checkpoint_every` steps) and the final `model/` (save_pretrained). `--resume` continues from
`checkpoint.pt` exactly: batch k of rank r is a pure function of (seed, r, k).

Run integrity: one training per directory (a lock; `run_dir.py`), a new run never mixes with an old
one (`--resume` or `--overwrite`), the metrics up to a checkpoint's step are on disk before the
checkpoint names that step (so a kill at any point loses nothing: resume truncates the metrics to
the checkpoint and recomputes the rest), and checkpoints load with `weights_only=True`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import yaml

from .checkpoint import Checkpointer, check_resumable, load_checkpoint
from ..cli import one_line_errors, program_name
from ..faults import fault_point
from ..files import atomic_save_pretrained, atomic_write_text, read_jsonl
from .metrics_log import tensorboard_writer
from ..modeling.model import AniraForCausalLM
from ..modeling.saved_model import load_saved_model
from ..progress import QueueBar, progress_bar
from .run_config import DECIDER_LOSS_FIELDS, TrainConfig
from .run_dir import RunDirError, claim_run_dir, existing_run
from .sharding import is_sharded, model_state, shard_model
from ..tasks import get_task
from .training_compile import compile_for_training, compile_on_first_batch, compiled_training
from .training_step import make_optimizer, step_metrics, train_step, warmup_schedule


@dataclass
class TrainResult:
    model: AniraForCausalLM
    task: object
    metrics: list[dict] = field(default_factory=list)
    out_dir: Path | None = None


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} asked for, but no CUDA GPU is visible; use device=cpu.")
    return torch.device(name)


def build_model(cfg: TrainConfig, task) -> AniraForCausalLM:
    """A freshly initialised model for `task` (seeded by cfg.seed, identical on every rank), or the
    model in `cfg.init_from` with the run's loss knobs."""
    torch.manual_seed(cfg.seed)
    if cfg.init_from is not None:
        model = load_saved_model(cfg.init_from, what=f"init_from={cfg.init_from!r}",
                                 fix="the folder is damaged, incomplete or not one that save_pretrained / "
                                     "convert_llama wrote: write it again")
        if model.config.vocab_size < task.vocab_size:
            raise ValueError(f"init_from's vocabulary ({model.config.vocab_size}) is smaller than the task's "
                             f"tokenizer ({task.vocab_size}); train with the model's own tokenizer.")
        if model.config.decider != cfg.decider:
            raise ValueError(f"init_from={cfg.init_from!r} holds a model with decider={model.config.decider!r}, the "
                             f"run config says decider={cfg.decider!r}; set decider={model.config.decider!r} (the "
                             "decider is part of the saved model).")
        for name in DECIDER_LOSS_FIELDS:
            setattr(model.config, name, getattr(cfg, name))
        return model
    model_cfg = cfg.model_config(vocab_size=task.vocab_size, pad_token_id=task.pad_id, bos_token_id=task.bos_id,
                                 eos_token_id=task.eos_id,
                                 max_position_embeddings=max(512, task.max_len or 512))
    return AniraForCausalLM(model_cfg)


def train(cfg: TrainConfig, resume: bool | str = False, overwrite: bool = False,
          progress_queue=None) -> TrainResult:
    """Train one model as `cfg` says; returns the (unwrapped) model, the task and the metrics.

    resume: True continues out_dir's checkpoint; "auto" does if there is one and starts fresh in an
    empty out_dir (notebooks); False starts fresh. overwrite: delete a run already in out_dir first.
    progress_queue: where a worker process sends its progress (`train_parallel`); None draws it here."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    distributed = world > 1
    if distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if distributed else 0
    if cfg.batch_size % world:
        raise ValueError(f"batch_size={cfg.batch_size} must be divisible by the {world} DDP processes.")
    local_batch = cfg.batch_size // world
    if local_batch % cfg.grad_accum:
        raise ValueError(f"grad_accum={cfg.grad_accum} must divide each process's batch ({cfg.batch_size} / {world} "
                         f"processes = {local_batch} rows); pick a grad_accum that divides {local_batch}.")
    device = pick_device(cfg.device)
    if device.type == "cuda" and distributed:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)

    task = get_task(cfg.task, seed=cfg.seed, **cfg.task_args)
    out_dir = Path(cfg.out_dir)
    if resume == "auto":  # resume a checkpoint; else clear a run killed before its first one
        resume = (out_dir / "checkpoint.pt").is_file()
        overwrite = overwrite or (not resume and "model" not in existing_run(out_dir))
    elif resume and not (out_dir / "checkpoint.pt").exists() and existing_run(out_dir) \
            and not {"model", "checkpoints"} & set(existing_run(out_dir)):
        # killed before its first checkpoint: nothing was saved, so --resume starts it again from step 0
        if rank == 0:
            print(f"{out_dir} has no checkpoint yet (the run stopped before its first one): starting from step 0.")
        resume, overwrite = False, True
    lock = claim_run_dir(out_dir, bool(resume), overwrite) if rank == 0 else None
    try:
        return _train(cfg, task, out_dir, bool(resume), device, rank, world, local_batch, progress_queue)
    finally:
        if lock is not None:
            lock.release()


def _progress(cfg, start, queue, rank):
    """The step bar of one run: drawn here, or sent to the parent through `queue` (a worker)."""
    desc = f"train {cfg.task} {cfg.decider}"
    if queue is not None and cfg.progress and rank == 0:
        return QueueBar(queue, str(cfg.out_dir), total=cfg.steps, desc=desc, initial=start)
    return progress_bar(total=cfg.steps, desc=desc, initial=start, disable=not (cfg.progress and rank == 0))


def _train(cfg, task, out_dir, resume, device, rank, world, local_batch, progress_queue=None) -> TrainResult:
    """The training loop of one process (rank `rank` of `world`), out_dir claimed already."""
    ckpt = load_checkpoint(out_dir) if resume else None
    if ckpt is not None:
        check_resumable(ckpt, cfg, out_dir / "checkpoint.pt")

    model = build_model(cfg, task).to(device)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
    ddp_model = shard_model(model, cfg.sharding, world > 1)  # FSDP shards `model` in place
    opt = make_optimizer(model, cfg.lr, cfg.weight_decay, device)  # after sharding: FSDP's parameters are the shards
    sched = warmup_schedule(opt, cfg.warmup_steps)
    checkpointer = Checkpointer(cfg, out_dir, model, opt, sched, task, rank, world)
    start, metrics = checkpointer.restore(ckpt)
    compiling = cfg.compile and start < cfg.steps  # a finished run resumed (a study reusing it) compiles nothing
    step_model = compile_for_training(ddp_model, device) if compiling else ddp_model
    if rank == 0:
        atomic_write_text(out_dir / "train_config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    writer = tensorboard_writer(out_dir) if cfg.tensorboard and rank == 0 else None

    first = task.train_batch(0, local_batch, rank) if compiling else None  # what the graph is compiled on
    seq_len = None if first is None else first["input_ids"].shape[1]
    with compiled_training(model, device, enabled=compiling, seq_len=seq_len):
        model.train()
        bar = _progress(cfg, start, progress_queue, rank)
        if compiling:
            bar.set_postfix(status="compiling the step (about a minute, ~20 s when cached)")
            bar.refresh()
            compile_on_first_batch(step_model, model, first, device, cfg.dtype)
            bar.set_postfix(status="compiled")
        t0, tokens = time.perf_counter(), 0
        beta = model.config.kl_beta
        for step in range(start, cfg.steps):
            batch = task.train_batch(step, local_batch, rank)
            tokens += int(batch["attention_mask"].sum()) * world  # counted on the host: no device sync
            done = step + 1
            logged = train_step(step_model, model, opt, batch, parts=cfg.grad_accum, beta=beta, device=device,
                                dtype=cfg.dtype, grad_clip=cfg.grad_clip, wrapper=ddp_model,
                                keep=done % cfg.log_every == 0 or done == cfg.steps)
            sched.step()
            fault_point(f"step {done}")
            if logged:
                row = {"step": done, **step_metrics(logged, beta), "lr": sched.get_last_lr()[0],
                       "tokens_per_s": tokens / max(time.perf_counter() - t0, 1e-9),
                       "elapsed_s": time.perf_counter() - t0}
                if not math.isfinite(row["loss"]):
                    raise FloatingPointError(f"loss became {row['loss']} at step {done}; lower lr "
                                             f"(now {cfg.lr}) or raise warmup_steps.")
                metrics.append(row)
                bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['answer_acc']:.2f}",
                                depth=f"{row['answer_depth']:.2f}")
                if writer is not None:
                    for k, v in row.items():
                        writer.add_scalar(k, v, done)
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                checkpointer.save(done, metrics)
            bar.update()
        bar.close()
    sharded = is_sharded(model)
    weights = model_state(model) if sharded else None
    if rank == 0:
        if sharded:  # rank 0 saves and returns a whole model, as one process would
            model = build_model(cfg, task)
            model.load_state_dict(weights)
            model.to(device)
        atomic_save_pretrained(model, out_dir / "model", task.save_pretrained)
    if writer is not None:
        writer.close()
    if world > 1:
        dist.barrier()
    model.eval()
    return TrainResult(model=model, task=task, metrics=metrics, out_dir=out_dir)


def load_run(cfg: TrainConfig) -> TrainResult:
    """A finished run's model (eval mode), task and metrics, read back from cfg.out_dir."""
    out_dir = Path(cfg.out_dir)
    if not (out_dir / "model").is_dir():
        raise FileNotFoundError(f"{out_dir}/model does not exist; the run has not finished (train it first).")
    model = load_saved_model(out_dir / "model", what=str(out_dir / "model"), error=RunDirError,
                             fix="if the run's checkpoint.pt is intact, --resume re-saves it from checkpoint.pt, "
                                 "else retrain with --overwrite").eval()
    task = get_task(cfg.task, seed=cfg.seed, **cfg.task_args)
    return TrainResult(model=model, task=task, metrics=read_jsonl(out_dir / "metrics.jsonl"), out_dir=out_dir)


def config_fields_help() -> str:
    """The run config's fields with their defaults, for `--help` (key=value overrides any of them)."""
    rows = []
    for f in dataclasses.fields(TrainConfig):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        rows.append(f"  {f.name}={default!r}")
    return "config fields (YAML keys or key=value overrides) and their defaults:\n" + "\n".join(rows)


def main(argv=None):
    p = argparse.ArgumentParser(prog=program_name("anira_lib.training.train"), description=__doc__.split("\n\n")[0],
                                epilog=config_fields_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML run config (see configs/)")
    p.add_argument("--resume", action="store_true", help="continue from out_dir/checkpoint.pt")
    p.add_argument("--overwrite", action="store_true", help="delete a run already in out_dir, then start")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. steps=500 decider=online")
    args = p.parse_args(argv)
    cfg = None
    try:
        with one_line_errors("anira train", args.debug):
            cfg = TrainConfig.load(args.config, args.overrides)
            result = train(cfg, resume=args.resume, overwrite=args.overwrite)
    except KeyboardInterrupt:  # Ctrl-C: what the last checkpoint saved is safe, and that is all to say
        if args.debug:
            raise
        where = f" in {cfg.out_dir}" if cfg is not None else ""
        raise SystemExit(f"anira train: interrupted; the run{where} keeps its last checkpoint: --resume continues "
                         "it from there.") from None
    if int(os.environ.get("RANK", "0")) == 0 and result.metrics:
        last = result.metrics[-1]
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in last.items()}))
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
