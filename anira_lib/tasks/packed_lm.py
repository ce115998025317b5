"""Packed language modelling on local text (paper §6.6): the task a converted Llama fine-tunes on.

Rows come from `packing.load_packed` (fixed length, per-document position ids, loss on every token
but each document's first). Batch `step` of rank `rank` draws its rows uniformly from the packed set
with the (seed, rank, step) stream, so a resumed run sees the batches an uninterrupted one would have.
With `streaming=True` (a corpus too large to tokenise ahead) the rows are read in file order as
training consumes them (`packing.stream_packed`), each rank its own share; the
trainer keeps each rank's position in its checkpoint (`data_state`), so a resumed run reads on
from there and sees the rows the uninterrupted run would have.
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
    streaming: bool = False  # read, tokenise and pack as training consumes rows (needs eval_data)
    seed: int = 0

    name = "packed_lm"

    def __post_init__(self):
        from transformers import AutoTokenizer

        from .packing import data_files, load_packed

        if not self.data or not self.tokenizer:
            raise ValueError("task 'packed_lm' needs data= (local text files or a folder) and tokenizer= "
                             "(the local folder of the model's tokenizer).")
        tok = AutoTokenizer.from_pretrained(self.tokenizer, local_files_only=True)
        kw = dict(text_field=self.text_field, num_proc=self.num_proc, cache_dir=self.cache_dir)
        if self.streaming:
            if self.eval_data is None:
                raise ValueError("streaming=true reads the training data once, in order, so the held-out rows "
                                 "cannot be cut from it; pass eval_data= (local held-out files).")
            data_files(self.data)  # a missing file is an error now, not at the first batch
            rows, held_out = {}, load_packed(self.eval_data, tok, self.max_length, **kw)  # rows: rank -> stream
        elif self.eval_data is not None:
            rows = load_packed(self.data, tok, self.max_length, **kw)
            held_out = load_packed(self.eval_data, tok, self.max_length, **kw)
        else:
            rows = load_packed(self.data, tok, self.max_length, **kw)
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
    def train_rows(self) -> int | None:
        """Packed training rows (None when streaming: not known until read)."""
        return None if self.streaming else len(self._rows)

    @staticmethod
    def _tensors(picked: dict) -> dict[str, torch.Tensor]:
        ids = torch.as_tensor(picked["input_ids"])
        return {"input_ids": ids, "position_ids": torch.as_tensor(picked["position_ids"]),
                "labels": torch.as_tensor(picked["labels"]), "attention_mask": torch.ones_like(ids),
                "knob": torch.zeros(len(ids), dtype=torch.long)}

    def _batch(self, rows, indices) -> dict[str, torch.Tensor]:
        return self._tensors(rows[list(indices)])

    def _stream(self, rank: int):
        """Rank `rank`'s stream of rows (one share of the documents per torchrun process)."""
        if rank not in self._rows:
            import torch.distributed as dist

            from .packing import PackedStream, stream_packed

            world = dist.get_world_size() if dist.is_initialized() else 1
            self._rows[rank] = PackedStream(lambda: stream_packed(self.data, self._tokenizer, self.max_length,
                                                                  self.text_field, rank=rank, world=world))
        return self._rows[rank]

    def train_batch(self, step: int, batch_size: int, rank: int = 0) -> dict[str, torch.Tensor]:
        if self.streaming:
            rows = self._stream(rank).batch(step, batch_size)
            return self._tensors({k: [r[k] for r in rows] for k in ("input_ids", "position_ids", "labels")})
        rng = rng_for(self.seed, "train", rank, step)
        return self._batch(self._rows, [rng.randrange(len(self._rows)) for _ in range(batch_size)])

    def data_state(self, rank: int = 0) -> dict | None:
        """Where rank `rank`'s next batch starts, for a checkpoint (streaming only; else None: batches
        are a pure function of the step)."""
        return self._stream(rank).state_dict() if self.streaming else None

    def load_data_state(self, state: dict | None, rank: int = 0) -> None:
        """Continue rank `rank`'s stream from a `data_state`."""
        if self.streaming and state is not None:
            self._stream(rank).load_state_dict(state)

    def eval_batches(self, batch_size: int = 8):
        """The held-out rows in order, as batches like train_batch's."""
        for i in range(0, len(self._held_out), batch_size):
            yield self._batch(self._held_out, range(i, min(i + batch_size, len(self._held_out))))

    def sample(self, rng, knob=None) -> Example:
        rows = self._held_out if self.streaming else self._rows  # a stream has no random access
        row = rows[rng.randrange(len(rows))]
        tokens = row["input_ids"].tolist()
        return Example(tokens, [lab != -100 for lab in row["labels"].tolist()], 0,
                       {"position_ids": row["position_ids"].tolist()})

    def decode(self, tokens) -> str:
        return self._tokenizer.decode(list(tokens))

    def save_pretrained(self, path) -> None:
        """The tokenizer beside the model, so the run directory is self-contained."""
        self._tokenizer.save_pretrained(path)
