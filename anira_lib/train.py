"""Training loop: usable from a notebook (`train(cfg)`) and as `python -m anira_lib.train`.

    python -m anira_lib.train --config configs/mano_tiny.yaml steps=2000 decider=online
    torchrun --nproc_per_node 4 -m anira_lib.train --config configs/mano_paper.yaml

AdamW (fused), linear warm-up then constant LR, gradient clipping, bf16 autocast on GPU, and
`torch.compile` of the step with `compile=true` (GPU or CPU: `compile_for_training`), gradient
accumulation with `grad_accum=K`. DDP, or FSDP2 with `sharding=fsdp` (`sharding.py`), is picked up
from torchrun's environment (WORLD_SIZE > 1): no launcher of our own. Rank 0 writes
`out_dir/`: `train_config.yaml`, `metrics.jsonl` + `metrics.csv`, `checkpoint.pt` (model,
optimizer, scheduler, RNG states, step; written atomically every `checkpoint_every` steps) and the
final `model/` (save_pretrained). `--resume` continues from `checkpoint.pt` exactly: batch k of
rank r is a pure function of (seed, r, k).

Run integrity: one training per directory (a lock; `run_dir.py`), a new run never mixes with an old
one (`--resume` or `--overwrite`), the metrics up to a checkpoint's step are on disk before the
checkpoint names that step (so a kill at any point loses nothing: resume truncates the metrics to
the checkpoint and recomputes the rest), and checkpoints load with `weights_only=True`.
"""

from __future__ import annotations

import argparse
import dataclasses
import csv
import io
import json
import math
import os
import random
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import yaml

from .cli import one_line_errors, program_name
from . import inductor_cache
from .faults import fault_point
from .files import atomic_save_pretrained, atomic_torch_save, atomic_write_text, quiet_transformers_bars, read_jsonl
from .model import IGNORE_INDEX, AniraForCausalLM
from .pointwise_attention import POINTWISE_ATTENTION
from .progress import QueueBar, progress_bar, relay
from .run_config import TrainConfig
from .run_dir import RunDirError, claim_run_dir, existing_run
from .sharding import gradient_sync, is_sharded, load_optimizer_state, model_state, optimizer_state, shard_model
from .tasks import get_task

METRIC_KEYS = ("step", "loss", "ce", "kl", "answer_acc", "answer_depth", "mean_depth", "lr",
               "tokens_per_s", "elapsed_s")


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


def autocast_for(device: torch.device, dtype: str):
    use_bf16 = dtype == "bfloat16" or (dtype == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()


LOSS_FIELDS = ("kl_beta", "prior_lambda", "gumbel_temperature")  # what a run sets on an init_from model


def build_model(cfg: TrainConfig, task) -> AniraForCausalLM:
    """A freshly initialised model for `task` (seeded by cfg.seed, identical on every rank), or the
    model in `cfg.init_from` with the run's loss knobs."""
    torch.manual_seed(cfg.seed)
    if cfg.init_from is not None:
        path = Path(cfg.init_from)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"init_from={cfg.init_from!r} is not a saved model (no config.json); pass the "
                                    "folder save_pretrained / convert_llama wrote.")
        try:
            with quiet_transformers_bars():
                model = AniraForCausalLM.from_pretrained(path)
        except Exception as err:  # truncated safetensors ("invalid header length"), a broken config.json
            reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
            raise ValueError(f"init_from={cfg.init_from!r} cannot be loaded as a model ({reason}); the folder is "
                             "damaged or incomplete: write it again (convert_llama or save_pretrained).") from err
        if model.config.vocab_size < task.vocab_size:
            raise ValueError(f"init_from's vocabulary ({model.config.vocab_size}) is smaller than the task's "
                             f"tokenizer ({task.vocab_size}); train with the model's own tokenizer.")
        if model.config.decider != cfg.decider:
            raise ValueError(f"init_from={cfg.init_from!r} holds a model with decider={model.config.decider!r}, the "
                             f"run config says decider={cfg.decider!r}; set decider={model.config.decider!r} (the "
                             "decider is part of the saved model).")
        for name in LOSS_FIELDS:
            setattr(model.config, name, getattr(cfg, name))
        return model
    model_cfg = cfg.model_config(vocab_size=task.vocab_size, pad_token_id=task.pad_id, bos_token_id=task.bos_id,
                                 eos_token_id=task.eos_id,
                                 max_position_embeddings=max(512, task.max_len or 512))
    return AniraForCausalLM(model_cfg)


def model_inputs(batch: dict) -> dict:
    """The model's arguments from a batch. Packed rows (a batch with position_ids, every row full) go
    without the attention mask: transformers then builds the per-document block-diagonal mask."""
    if "position_ids" in batch:
        return {k: batch[k] for k in ("input_ids", "position_ids", "labels")}
    return {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}


def micro_batches(batch: dict, parts: int) -> list[dict]:
    """`batch` cut along its rows into `parts` equal micro-batches (gradient accumulation)."""
    if parts == 1:
        return [batch]
    return [dict(zip(batch, values)) for values in zip(*(v.chunk(parts) for v in batch.values()))]


def loss_counts(batch: dict) -> tuple[int, int]:
    """(supervised targets, KL positions) of a host batch: what the model's CE and KL means average
    over (labels shifted by one; the attention mask's tokens, or every token of a packed batch)."""
    targets = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    positions = batch["input_ids"].numel() if "position_ids" in batch else int(batch["attention_mask"].sum())
    return targets, positions


def share_of_loss(out, ce_share: float, kl_share: float, beta: float) -> torch.Tensor:
    """A micro-batch's part of its step's loss (Eq. 3): its CE and KL means weighted by its share of
    the step's targets and KL positions, so the parts' gradients sum to the whole batch's. With
    shares 1.0 this is `out.loss` itself."""
    if ce_share == 1.0 and kl_share == 1.0:
        return out.loss
    if out.kl_loss is None:
        return out.ce_loss * ce_share
    return out.ce_loss * ce_share + beta * (out.kl_loss * kl_share)


def accumulate_gradients(step_model, batch: dict, parts: int, beta: float, device: torch.device, dtype: str = "auto",
                         wrapper=None, keep: bool = False) -> list[tuple]:
    """Forward and backward over a host `batch` in `parts` micro-batches whose gradients add up to one
    pass over the whole batch (`share_of_loss`); gradients are reduced across processes on the last
    one only (`wrapper`: the DDP / FSDP module, when `step_model` is its compiled form). Returns
    each micro-batch's (out, batch on device, ce_share, kl_share) when `keep` (a logged step's
    metrics), else []."""
    pieces = micro_batches(batch, parts)
    counts = [loss_counts(p) for p in pieces] if parts > 1 else [(1, 1)]  # one pass: shares 1, no counting
    targets, positions = (max(sum(c), 1) for c in zip(*counts))
    kept = []
    for i, (piece, (n, m)) in enumerate(zip(pieces, counts)):
        piece = {k: v.to(device, non_blocking=True) for k, v in piece.items()}
        with gradient_sync(wrapper if wrapper is not None else step_model, sync=i == len(pieces) - 1):
            with autocast_for(device, dtype):
                out = step_model(**model_inputs(piece))
            share_of_loss(out, n / targets, m / positions, beta).backward()
        if keep:
            kept.append((out, piece, n / targets, m / positions))
    return kept


def batch_metrics(out, batch) -> dict:
    """Answer accuracy (argmax at supervised positions) and mean exit depths of one batch."""
    labels = batch["labels"][:, 1:]
    sup = labels != IGNORE_INDEX
    pred = out.logits[:, :-1].argmax(-1)
    depth = out.exit_depths.float()
    return {
        "answer_acc": (pred[sup] == labels[sup]).float().mean().item(),
        "answer_depth": depth[:, :-1][sup].mean().item(),
        "mean_depth": depth[batch["attention_mask"].bool()].mean().item(),
    }


def _step_metrics(parts: list[tuple], beta: float) -> dict:
    """loss, ce, kl and `batch_metrics` of a step from its micro-batches' (out, batch, ce_share,
    kl_share): each a weighted mean, as one pass over the whole batch would give."""
    row = {"loss": 0.0, "ce": 0.0, "kl": 0.0, "answer_acc": 0.0, "answer_depth": 0.0, "mean_depth": 0.0}
    tokens = sum(int(b["attention_mask"].sum()) for _, b, _, _ in parts)
    for out, batch, ce_share, kl_share in parts:
        kl = out.kl_loss.item() if out.kl_loss is not None else 0.0
        row["loss"] += share_of_loss(out, ce_share, kl_share, beta).item()
        row["ce"] += out.ce_loss.item() * ce_share
        row["kl"] += kl * kl_share
        m = batch_metrics(out, batch)
        if ce_share:  # a micro-batch without targets has no accuracy (NaN) and weighs nothing
            row["answer_acc"] += m["answer_acc"] * ce_share
            row["answer_depth"] += m["answer_depth"] * ce_share
        row["mean_depth"] += m["mean_depth"] * int(batch["attention_mask"].sum()) / max(tokens, 1)
    return row


def make_optimizer(model, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with the fused kernel where PyTorch has one (CPU and CUDA): one kernel for every
    parameter instead of about ten ops per parameter tensor."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)


def compile_for_training(step_model, device: torch.device, dynamic: bool | None = None):
    """`torch.compile` of the training forward (backward through AOTAutograd), as `compile=true` asks;
    run it inside `compiled_training`. On a CPU inductor's C++ wrapper calls the graph's ~150
    kernels from C++ rather than Python (about a sixth of the compiled demo step).

    Shapes: PyTorch's automatic dynamic (`dynamic=None`, the default). Batches of one length (MANO's
    and DEPO's at the CPU defaults) get one static graph, whose kernels know every size, which steps
    faster than symbolic shapes (`dynamic=True`; benchmarks/train_throughput.py --symbolic measures
    both). Tasks whose batch lengths vary (BREVO) get a static graph for the first length and one
    symbolic graph for all others. Which graph a step runs is then a function of its batch length
    alone, the same in a resumed run as in the uninterrupted one, because every run compiles on
    batch 0 first (`_compile_on`), whatever step it starts at.
    """
    options = {"cpp_wrapper": True} if device.type == "cpu" else None
    return torch.compile(step_model, dynamic=dynamic, options=options)


# Compiled CPU training's attention by row length (the run's first batch): compiled step time, one
# thread, MANO rows at the old demo size, median of 5 interleaved rounds (2026-12-07), pointwise /
# eager / SDPA: T = 10 29.8 / 32.2 / 35.9 ms, T = 14 47.1 / 46.5 / 53.0, T = 16 53.5 / 49.8 / 49.1,
# T = 24 75.8 / 69.0 / 67.2; DEPO's T = 32 124.6 / 105.5 / 100.1 (benchmarks/train_throughput.py).
POINTWISE_MAX_LEN = 12  # pointwise attention up to this length
EAGER_MAX_LEN = 15      # then matmul + softmax (eager) up to this one, the model's own (SDPA) past it


def compiled_attention(seq_len: int | None) -> str | None:
    """The attention a compiled CPU training step uses on rows of seq_len tokens (None: short): the
    name of an implementation, or None to keep the model's own."""
    if (seq_len or 0) <= POINTWISE_MAX_LEN:
        return POINTWISE_ATTENTION
    return "eager" if seq_len <= EAGER_MAX_LEN else None


@contextmanager
def compiled_training(model, device: torch.device, enabled: bool = True, seq_len: int | None = None):
    """What a compiled training loop changes in the model, put back on exit: on a CPU, the attention
    `compiled_attention(seq_len)` picks for the run's first batch's length. Rows of ~10 keys attend
    as broadcast products and sums (`pointwise_attention`), which inductor fuses with the mask and
    the softmax; a little longer, as matmul + softmax, which it fuses in part; past 15 tokens
    through SDPA's CPU flash kernel, which is slow on short rows only. The model saved and returned
    attends through its own implementation again.

    Exactness: compiled random ops draw their seeds from the torch generator, so a compiled run
    resumes exactly (tests/test_train.py), but its random stream differs from an eager run with the
    same seed. The model keeps its embedding out of the graph (`AniraModel.embed`), whose compiled
    backward would be an atomic scatter-add."""
    attention = compiled_attention(seq_len) if enabled and device.type == "cpu" else None
    with attending(model, attention) if attention else nullcontext():
        yield


@contextmanager
def attending(model, attention: str):
    """The model attends through the implementation named `attention` inside, through its own after."""
    own = model.config._attn_implementation
    model.set_attn_implementation(attention)
    try:
        yield
    finally:
        model.set_attn_implementation(own)


COMPILE_ATTEMPTS = 5  # compiles of the first step when inductor's cache turns out to be damaged


def _compile_on(step_model, model, batch, device, dtype):
    """Compile the training graph on batch 0, whatever step the run starts from, and leave no trace
    (gradients dropped, RNG states put back): a run resumed at step k compiles on the same sizes
    as the run that started at step 0."""
    rng = _rng_state()

    def attempt():  # each try starts from the same state: no gradients, the same random draws
        model.zero_grad(set_to_none=True)
        _set_rng_state(rng)
        _forward_backward(step_model, batch, device, dtype)

    inductor_cache.run_recovering(attempt, reset=torch._dynamo.reset, attempts=COMPILE_ATTEMPTS,
                                  say=lambda line: print(line, flush=True))
    model.zero_grad(set_to_none=True)
    _set_rng_state(rng)


def _forward_backward(step_model, batch, device, dtype):
    with autocast_for(device, dtype):
        out = step_model(**{k: v.to(device) for k, v in model_inputs(batch).items()})
    out.loss.backward()


def _lr_lambda(warmup: int):
    return lambda step: min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0


def _rng_state():
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state):
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# Fields that may differ between a checkpoint's config and the config resuming it.
RESUMABLE_CHANGES = {"steps", "progress", "log_every", "checkpoint_every", "tensorboard", "out_dir"}


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
    """Refuse to resume a checkpoint with another config, or one already past cfg.steps."""
    now = cfg.to_dict()
    then = {**TrainConfig.defaults(), **ckpt["config"]}  # a key added since the run started: its default
    changed = sorted(k for k in now if k not in RESUMABLE_CHANGES and then.get(k) != now[k])
    if changed:
        diffs = ", ".join(f"{k}={then.get(k)!r} (now {now[k]!r})" for k in changed)
        raise RunDirError(f"{path} was written with another config: {diffs}. Only "
                          f"{sorted(RESUMABLE_CHANGES)} may change when resuming; use a new out_dir, or start over "
                          f"with --overwrite (from a notebook: delete {path.parent}).")
    if ckpt["step"] > cfg.steps:
        raise RunDirError(f"{path} is at step {ckpt['step']}, past steps={cfg.steps}; pass steps={ckpt['step']} "
                          "or more to resume it, or start over with --overwrite (from a notebook: delete "
                          f"{path.parent}).")


def _write_metrics(out_dir: Path, rows: list[dict]):
    atomic_write_text(out_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_KEYS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out_dir / "metrics.csv", buf.getvalue())


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
        return _train(cfg, task, out_dir, bool(resume), device, rank, world, distributed, local_batch,
                      progress_queue)
    finally:
        if lock is not None:
            lock.release()


def _data_state(task, rank: int):
    """Where `rank`'s next batch starts, for a task that reads its data as a stream (else None)."""
    return task.data_state(rank)


def _restore(ckpt, cfg, task, model, opt, sched, out_dir, rank, world) -> tuple[int, list[dict]]:
    """(start step, metrics so far): from the checkpoint (metrics truncated at its step, on disk too:
    rows past it, left by a kill between the two writes, are recomputed), or fresh seeds. The model's
    weights are already loaded (`_train`, before sharding); this loads the optimizer, a streaming
    task's positions and the rest."""
    if ckpt is None:
        torch.manual_seed(cfg.seed * 1000 + rank)
        random.seed(cfg.seed * 1000 + rank)
        return 0, []
    if "data" in ckpt:
        if len(ckpt["data"]) != world:
            raise RunDirError(f"{out_dir / 'checkpoint.pt'} was written by {len(ckpt['data'])} processes, each "
                              f"streaming its own share of the data; resume it with {len(ckpt['data'])} (now {world}).")
        task.load_data_state(ckpt["data"][rank], rank)
    load_optimizer_state(model, opt, ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    start = ckpt["step"]
    metrics = [r for r in read_jsonl(out_dir / "metrics.jsonl") if r["step"] <= start] \
        if (out_dir / "metrics.jsonl").exists() else []
    if rank == 0:
        _write_metrics(out_dir, metrics)
    _set_rng_state(ckpt["rng"][rank] if rank < len(ckpt["rng"]) else ckpt["rng"][0])
    return start, metrics


def _tensorboard(out_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ImportError("tensorboard=true needs the tensorboard package: pip install -e '.[lab]' "
                          "(or set tensorboard=false; metrics.csv/jsonl are always written).") from err
    return SummaryWriter(out_dir / "tensorboard")


def _progress(cfg, start, queue, rank):
    """The step bar of one run: drawn here, or sent to the parent through `queue` (a worker)."""
    desc = f"train {cfg.task} {cfg.decider}"
    if queue is not None and cfg.progress and rank == 0:
        return QueueBar(queue, str(cfg.out_dir), total=cfg.steps, desc=desc, initial=start)
    return progress_bar(total=cfg.steps, desc=desc, initial=start, disable=not (cfg.progress and rank == 0))


def _train(cfg, task, out_dir, resume, device, rank, world, distributed, local_batch,
           progress_queue=None) -> TrainResult:
    ckpt = load_checkpoint(out_dir) if resume else None
    if ckpt is not None:
        check_resumable(ckpt, cfg, out_dir / "checkpoint.pt")

    model = build_model(cfg, task).to(device)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
    ddp_model = shard_model(model, cfg.sharding, distributed)  # FSDP shards `model` in place
    opt = make_optimizer(model, cfg, device)  # after sharding: FSDP's parameters are the shards
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg.warmup_steps))
    start, metrics = _restore(ckpt, cfg, task, model, opt, sched, out_dir, rank, world)
    step_model = compile_for_training(ddp_model, device) if cfg.compile else ddp_model
    if rank == 0:
        atomic_write_text(out_dir / "train_config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    writer = _tensorboard(out_dir) if cfg.tensorboard and rank == 0 else None

    def save_checkpoint(step):
        local = (_rng_state(), _data_state(task, rank))
        states = [None] * world
        if distributed:
            dist.all_gather_object(states, local)
        else:
            states = [local]
        rng, data = [r for r, _ in states], [d for _, d in states]
        weights, moments = model_state(model), optimizer_state(model, opt)  # every rank: FSDP gathers
        full = weights if is_sharded(model) else None  # save_pretrained of a sharded model needs them
        if rank == 0:  # snapshot and metrics first: the checkpoint's rename commits the step
            if cfg.keep_checkpoints:
                atomic_save_pretrained(model, out_dir / "checkpoints" / f"step_{step:07d}", state_dict=full)
            _write_metrics(out_dir, metrics)
            atomic_torch_save({"model": weights, "optimizer": moments,
                               "scheduler": sched.state_dict(), "rng": rng, "step": step,
                               "config": cfg.to_dict(), **({"data": data} if any(data) else {})},
                              out_dir / "checkpoint.pt")

    first = task.train_batch(0, local_batch, rank) if cfg.compile else None  # what the graph is compiled on
    seq_len = None if first is None else first["input_ids"].shape[1]
    with compiled_training(model, device, enabled=cfg.compile, seq_len=seq_len):
        model.train()
        bar = _progress(cfg, start, progress_queue, rank)
        if cfg.compile:
            bar.set_postfix(status="compiling the step (about a minute, ~20 s when cached)")
            bar.refresh()
            _compile_on(step_model, model, first, device, cfg.dtype)
            bar.set_postfix(status="compiled")
        t0, tokens = time.perf_counter(), 0
        beta = model.config.kl_beta
        for step in range(start, cfg.steps):
            batch = task.train_batch(step, local_batch, rank)
            tokens += int(batch["attention_mask"].sum()) * world  # counted on the host: no device sync
            opt.zero_grad(set_to_none=True)
            done = step + 1
            logged = accumulate_gradients(step_model, batch, cfg.grad_accum, beta, device, cfg.dtype,
                                          wrapper=ddp_model, keep=done % cfg.log_every == 0 or done == cfg.steps)
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            fault_point(f"step {done}")
            if logged:
                row = {"step": done, **_step_metrics(logged, beta), "lr": sched.get_last_lr()[0],
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
                save_checkpoint(done)
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
    if distributed:
        dist.barrier()
    model.eval()
    return TrainResult(model=model, task=task, metrics=metrics, out_dir=out_dir)


PARENT_POLL_S = 1.0


def _exit_with_parent(parent: int, poll_s: float = PARENT_POLL_S) -> None:
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
    _exit_with_parent(parent)
    torch.set_num_threads(threads)
    try:
        out = train(TrainConfig.from_dict(cfg_dict), resume=resume, progress_queue=queue).out_dir
    except BaseException as err:  # the parent re-raises it with the worker's traceback
        import traceback

        queue.put((key, "error", (f"{type(err).__name__}: {err}", traceback.format_exc())))
        raise SystemExit(1) from None
    queue.put((key, "result", str(out)))


def load_run(cfg: TrainConfig) -> TrainResult:
    """A finished run's model (eval mode), task and metrics, read back from cfg.out_dir."""
    out_dir = Path(cfg.out_dir)
    if not (out_dir / "model").is_dir():
        raise FileNotFoundError(f"{out_dir}/model does not exist; the run has not finished (train it first).")
    try:
        with quiet_transformers_bars():  # a frozen "Loading weights 0%" bar in every notebook that resumes
            model = AniraForCausalLM.from_pretrained(out_dir / "model").eval()
    except Exception as err:  # truncated or corrupt weights, a broken config.json
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise RunDirError(f"{out_dir / 'model'} cannot be loaded as a model ({reason}); if the run's "
                          "checkpoint.pt is intact, --resume re-saves it from checkpoint.pt, else retrain with "
                          "--overwrite.") from err
    task = get_task(cfg.task, seed=cfg.seed, **cfg.task_args)
    return TrainResult(model=model, task=task, metrics=read_jsonl(out_dir / "metrics.jsonl"), out_dir=out_dir)


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


def config_fields_help() -> str:
    """The run config's fields with their defaults, for `--help` (key=value overrides any of them)."""
    rows = []
    for f in dataclasses.fields(TrainConfig):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        rows.append(f"  {f.name}={default!r}")
    return "config fields (YAML keys or key=value overrides) and their defaults:\n" + "\n".join(rows)


def main(argv=None):
    p = argparse.ArgumentParser(prog=program_name("anira_lib.train"), description=__doc__.split("\n\n")[0],
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
