"""One optimizer step of training, as a function: the trainer's loop and the throughput benchmark both
call `train_step`.

A step is forward and backward over a batch cut into `grad_accum` micro-batches whose gradients add up
to one pass over the whole batch (the loss of Eq. 3 weighted by each part's share of the targets and KL
positions), gradient clipping and AdamW. Batches are host dicts of (B, T) tensors: `input_ids`,
`attention_mask`, `labels` (and `position_ids` for packed rows).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from ..modeling.model import IGNORE_INDEX
from .sharding import gradient_sync


def autocast_for(device: torch.device, dtype: str):
    """bf16 autocast where `dtype` asks for it ("auto": on a GPU), else nothing."""
    use_bf16 = dtype == "bfloat16" or (dtype == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()


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


def train_step(step_model, model, opt, batch: dict, *, parts: int = 1, beta: float = 0.0,
               device: torch.device = torch.device("cpu"), dtype: str = "auto", grad_clip: float = 1.0,
               wrapper=None, keep: bool = False) -> list[tuple]:
    """One optimizer step on `batch`: gradients (`accumulate_gradients` through `step_model`, the
    plain, DDP/FSDP-wrapped or compiled model), their norm clipped to `grad_clip` (0: no clipping)
    over `model`'s parameters, then `opt.step()`. Returns what `accumulate_gradients` kept."""
    opt.zero_grad(set_to_none=True)
    kept = accumulate_gradients(step_model, batch, parts, beta, device, dtype, wrapper=wrapper, keep=keep)
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return kept


def forward_backward(step_model, batch: dict, device: torch.device, dtype: str) -> None:
    """Forward and backward of one whole host batch, nothing else (what a compile is traced on)."""
    with autocast_for(device, dtype):
        out = step_model(**{k: v.to(device) for k, v in model_inputs(batch).items()})
    out.loss.backward()


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


def step_metrics(parts: list[tuple], beta: float) -> dict:
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


def make_optimizer(model, lr: float, weight_decay: float, device: torch.device) -> torch.optim.AdamW:
    """AdamW with the fused kernel where PyTorch has one (CPU and CUDA): one kernel for every
    parameter instead of about ten ops per parameter tensor."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=fused)


def warmup_schedule(opt, warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning rate rises linearly over the first `warmup_steps` steps, then stays constant."""
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0)
