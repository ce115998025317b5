"""How compiled training is set up: `torch.compile` of the step, the attention a compiled CPU step uses
by row length, and the first compile on batch 0 (recovering from a damaged inductor cache)."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch

from . import inductor_cache
from .checkpoint import rng_state, set_rng_state
from ..modeling.pointwise_attention import POINTWISE_ATTENTION
from .training_step import forward_backward


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
    batch 0 first (`compile_on_first_batch`), whatever step it starts at.
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


def compile_on_first_batch(step_model, model, batch: dict, device: torch.device, dtype: str) -> None:
    """Compile the training graph on batch 0, whatever step the run starts from, and leave no trace
    (gradients dropped, RNG states put back): a run resumed at step k compiles on the same sizes
    as the run that started at step 0. A damaged inductor cache is repaired on the way
    (`inductor_cache.run_recovering`, one line said)."""
    rng = rng_state()

    def attempt():  # each try starts from the same state: no gradients, the same random draws
        model.zero_grad(set_to_none=True)
        set_rng_state(rng)
        forward_backward(step_model, batch, device, dtype)

    inductor_cache.run_recovering(attempt, reset=torch._dynamo.reset, attempts=COMPILE_ATTEMPTS,
                                  say=lambda line: print(line, flush=True))
    model.zero_grad(set_to_none=True)
    set_rng_state(rng)
