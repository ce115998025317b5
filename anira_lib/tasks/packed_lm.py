"""Packed language modelling on local text (paper §6.6): the task a converted Llama fine-tunes on.

Rows come from `packing.load_packed` (fixed length, per-document position ids, loss on every token
but each document's first). Batch `step` of rank `rank` draws its rows uniformly from the packed set
with the (seed, rank, step) stream, so a resumed run sees the batches an uninterrupted one would have.
Every row is full: batches carry `position_ids` and an all-ones attention mask, and the trainer passes
the model the position ids without the mask, which is what makes transformers build the
block-diagonal (per-document) mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Example, TaskSampler, rng_for


@dataclass(frozen=True)
class PackedLMTask(TaskSampler):
    """data: local parquet / JSON(L) / Arrow file(s) or a folder; tokenizer: a local tokenizer folder
    (the model's); eval_data: held-out files (default: the last `eval_rows` rows of data)."""

    data: str | list = ""
    tokenizer: str = ""
    max_length: int = 4096
    text_field: str = "text"
    eval_data: str | list | None = None
    eval_rows: int = 64
    num_proc: int | None = None
    cache_dir: str | None = None
    seed: int = 0

    name = "packed_lm"

    def __post_init__(self):
        from transformers import AutoTokenizer

        from ..packing import load_packed

        if not self.data or not self.tokenizer:
            raise ValueError("task 'packed_lm' needs data= (local text files or a folder) and tokenizer= "
                             "(the local folder of the model's tokenizer).")
        tok = AutoTokenizer.from_pretrained(self.tokenizer, local_files_only=True)
        kw = dict(text_field=self.text_field, num_proc=self.num_proc, cache_dir=self.cache_dir)
        rows = load_packed(self.data, tok, self.max_length, **kw)
        if self.eval_data is not None:
            held_out = load_packed(self.eval_data, tok, self.max_length, **kw)
        else:
            if len(rows) <= self.eval_rows:
                raise ValueError(f"{self.data} packs into {len(rows)} rows of {self.max_length}, not more than "
                                 f"eval_rows={self.eval_rows}; lower eval_rows or pass eval_data.")
            held_out = rows.select(range(len(rows) - self.eval_rows, len(rows)))
            rows = rows.select(range(len(rows) - self.eval_rows))
        for name, value in (("_tokenizer", tok), ("_rows", rows), ("_held_out", held_out)):
            object.__setattr__(self, name, value)

    @property
    def pad_id(self) -> int:
        return self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else self._tokenizer.eos_token_id

    @property
    def bos_id(self):
        return self._tokenizer.bos_token_id

    @property
    def eos_id(self):
        return self._tokenizer.eos_token_id

    @property
    def vocab_size(self) -> int:
        return len(self._tokenizer)

    @property
    def max_len(self) -> int:
        return self.max_length

    @property
    def train_rows(self) -> int:
        return len(self._rows)

    def _batch(self, rows, indices) -> dict[str, torch.Tensor]:
        picked = rows[list(indices)]
        ids = picked["input_ids"]
        return {"input_ids": ids, "position_ids": picked["position_ids"], "labels": picked["labels"],
                "attention_mask": torch.ones_like(ids), "knob": torch.zeros(len(ids), dtype=torch.long)}

    def train_batch(self, step: int, batch_size: int, rank: int = 0) -> dict[str, torch.Tensor]:
        rng = rng_for(self.seed, "train", rank, step)
        return self._batch(self._rows, [rng.randrange(len(self._rows)) for _ in range(batch_size)])

    def eval_batches(self, batch_size: int = 8):
        """The held-out rows in order, as batches like train_batch's."""
        for i in range(0, len(self._held_out), batch_size):
            yield self._batch(self._held_out, range(i, min(i + batch_size, len(self._held_out))))

    def sample(self, rng, knob=None) -> Example:
        row = self._rows[rng.randrange(len(self._rows))]
        tokens = row["input_ids"].tolist()
        return Example(tokens, [lab != -100 for lab in row["labels"].tolist()], 0,
                       {"position_ids": row["position_ids"].tolist()})

    def decode(self, tokens) -> str:
        return self._tokenizer.decode(list(tokens))

    def save_pretrained(self, path) -> None:
        """The tokenizer beside the model, so the run directory is self-contained."""
        self._tokenizer.save_pretrained(path)
