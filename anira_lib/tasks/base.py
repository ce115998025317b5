"""What every task shares: an `Example`, collation to padded tensors, deterministic RNG streams.

A task is a sampler with a difficulty knob plus an independent checker. Training draws batch
`step` of rank `rank` from its own RNG stream, so a run resumed at step k sees exactly the data an
uninterrupted run would have seen (the data position is just the step number).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from ..modeling.model import IGNORE_INDEX


@dataclass
class Example:
    """One sequence. `targets[i]` is True where token i is supervised (predicted from i-1)."""

    tokens: list[int]
    targets: list[bool]
    knob: int
    meta: dict = field(default_factory=dict)


def rng_for(seed: int, *stream: int | str) -> random.Random:
    """A `random.Random` for one stream (e.g. seed, rank, step): string seeding is stable across runs."""
    return random.Random("-".join(str(s) for s in (seed, *stream)))


class TaskSampler:
    """The task protocol, with the shared parts implemented. A task defines:

    - `name` (str), `seed` (int), `pad_id`, `vocab_size` (int);
    - `sample(rng, knob=None) -> Example`: one example; knob None draws from the training distribution;
    - `check(example, predicted=None) -> bool`: the task's own, independent verdict. `predicted` is the
      list of tokens a model predicted at the example's supervised positions, in order (the positions
      collation marks in `labels`); None checks the example's own tokens.

    and may override the defaults below: `bos_id` / `eos_id` (they become the model config's, so
    `generate()` stops at the end of an example), `max_len` (longest sequence, None: unbounded),
    `max_knob` (largest knob value the sampler accepts, None: no limit), `knob_label`, `train_knobs`,
    `data_state(rank)` (position in a data stream to checkpoint, None for generated data) and
    `save_pretrained(folder)` (files the model folder needs beside the weights, e.g. a tokenizer).
    Callers use these members directly: nothing probes with getattr/hasattr."""

    bos_id: int | None = None
    eos_id: int | None = None
    knob_label: str = "knob"  # what the knob is called on axes and in tables
    max_len: int | None = None
    max_knob: int | None = None

    def check(self, ex: Example, predicted: list[int] | None = None) -> bool:
        raise NotImplementedError(f"{type(self).__name__} has no checker")

    def data_state(self, rank: int = 0) -> dict | None:
        """Where this rank's data stream stands, for the checkpoint; None: the data are generated from the step."""
        return None

    def save_pretrained(self, folder) -> None:
        """Write what a saved model folder needs beside the weights (nothing, for generated token tasks)."""

    @property
    def train_knobs(self) -> list:
        """The knob values training draws (what an evaluation covers by default); here one, None: the
        training distribution itself (LANO). Tasks with a difficulty knob list its values."""
        return [None]

    def train_batch(self, step: int, batch_size: int, rank: int = 0) -> dict[str, torch.Tensor]:
        """Batch `step` of the training stream of `rank`: a pure function of (seed, rank, step)."""
        rng = rng_for(self.seed, "train", rank, step)
        return collate([self.sample(rng) for _ in range(batch_size)], self.pad_id)

    def eval_examples(self, knob, count: int, seed: int = 1234) -> list[Example]:
        """A fixed evaluation set of `count` examples at one knob value."""
        rng = rng_for(seed, "eval", knob)
        return [self.sample(rng, knob) for _ in range(count)]


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example. Returns input_ids, attention_mask, labels (B, T) and knob (B,).

    Padded as Python lists and turned into each tensor by one call (per-example tensor ops cost
    four times the sampling itself at the CPU defaults)."""
    T = max(len(e.tokens) for e in examples)
    ids, labs, mask = [], [], []
    for e in examples:
        pad = T - len(e.tokens)
        ids.append(list(e.tokens) + [pad_id] * pad)
        labs.append([t if s else IGNORE_INDEX for t, s in zip(e.tokens, e.targets)] + [IGNORE_INDEX] * pad)
        mask.append([1] * len(e.tokens) + [0] * pad)
    input_ids = torch.tensor(ids, dtype=torch.long)
    labels = torch.tensor(labs, dtype=torch.long)
    attention_mask = torch.tensor(mask, dtype=torch.long)
    knob = torch.tensor([e.knob for e in examples], dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, "knob": knob}
