"""How one model is spread over torchrun's processes (`TrainConfig.sharding`).

- "ddp": every process holds the whole model, its gradients and AdamW's two moments, and gradients
  are all-reduced (`DistributedDataParallel`). Memory per GPU ≈ 16 bytes per parameter plus
  activations.
- "fsdp": FSDP2 (`torch.distributed.fsdp.fully_shard`). Each decoder layer (prelude, every core
  layer, coda) is one shard group, and the root holds the rest: embeddings tied to the LM head, the
  final norm, the adapter and the decider. A process keeps 1/N of every parameter, gradient and
  moment, and gathers a layer just before it runs. Use it when the model does not fit one GPU
  under DDP.

Checkpoints hold full, unsharded state under both ("model" as `state_dict()` keys; under FSDP the
optimizer state is keyed by parameter name, as `get_optimizer_state_dict` gives it). Every process
must call `model_state` / `optimizer_state` (they gather); rank 0 receives the tensors, on the CPU.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

SHARDINGS = ("ddp", "fsdp")


def decoder_layers(model) -> list[torch.nn.Module]:
    """The Llama decoder layers of an `AniraForCausalLM`, in order: FSDP's shard groups."""
    inner = model.model
    return [*inner.prelude, *inner.core, *inner.coda]


def shard_model(model, sharding: str, distributed: bool):
    """The module the training step calls: `model` itself (one process), wrapped in DDP, or `model`
    sharded in place by FSDP2 (then the module returned is `model`)."""
    if sharding not in SHARDINGS:
        raise ValueError(f"sharding={sharding!r} is unknown; use one of {SHARDINGS}.")
    if not distributed:
        return model
    if sharding == "ddp":
        return torch.nn.parallel.DistributedDataParallel(model)
    from torch.distributed.fsdp import fully_shard

    for layer in decoder_layers(model):
        fully_shard(layer)
    fully_shard(model)
    return model


def is_sharded(model) -> bool:
    """Whether `model` was sharded in place by `fully_shard`."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _full(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def model_state(model) -> dict:
    """The full state dict (on rank 0; other ranks of a sharded model get an empty dict)."""
    if not is_sharded(model):
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_full(cpu_offload=True))


def optimizer_state(model, opt) -> dict:
    """The optimizer's full state (on rank 0 of a sharded model; keyed by parameter name there)."""
    if not is_sharded(model):
        return opt.state_dict()
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, opt, options=_full(cpu_offload=True))


def load_optimizer_state(model, opt, state: dict) -> None:
    """Load a state `optimizer_state` wrote (every rank passes the full state; each keeps its shard)."""
    if not is_sharded(model):
        opt.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(model, opt, state, options=_full())


@contextmanager
def gradient_sync(step_model, sync: bool):
    """Inside: backward passes reduce gradients across processes only if `sync` (gradient
    accumulation syncs on the last micro-batch of a step). No-op for one process."""
    if isinstance(step_model, torch.nn.parallel.DistributedDataParallel) and not sync:
        with step_model.no_sync():
            yield
        return
    if is_sharded(step_model):
        step_model.set_requires_gradient_sync(sync)
    yield


__all__ = ["SHARDINGS", "decoder_layers", "shard_model", "is_sharded", "model_state", "optimizer_state",
           "load_optimizer_state", "gradient_sync"]
