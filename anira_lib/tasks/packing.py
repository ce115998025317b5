"""Packed causal-LM data from local text (paper §6.6: sequence length 4096 with packing).

Documents are tokenised (each followed by EOS), concatenated and cut into rows of exactly
`max_length` tokens; the tail that does not fill a row is dropped. Each row carries `position_ids`
that restart at 0 where a document starts (and at the row's start), so transformers'
`create_causal_mask` sees a packed row (position ids restarting, no padding mask, no cache) and
builds a block-diagonal mask: a document never attends to another. `labels` are the tokens, with
IGNORE_INDEX at each document's first token, which would otherwise be predicted from the previous
document's last one.

`load_packed` reads parquet / JSON(L) / Arrow files through `datasets`, tokenises them once with the
model's tokenizer (batched, `num_proc` processes, a progress bar) and packs them; `datasets` caches
both steps on disk, keyed by the files, the tokenizer and `max_length`, and memory-maps the result,
so a corpus larger than memory is read from disk, never loaded whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..modeling.model import IGNORE_INDEX

FORMATS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".arrow": "arrow"}


def pack_documents(documents: Iterable[list[int]], max_length: int, eos_id: int | None = None) -> Iterator[dict]:
    """Rows {input_ids, position_ids, labels} of `max_length` tokens from token-id documents (each
    followed by `eos_id` when given). A document longer than the room left continues in the next row,
    its positions starting again at 0 there."""
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2, got {max_length}.")
    ids, pos, labels = [], [], []
    for doc in documents:
        doc = list(doc) + ([eos_id] if eos_id is not None else [])
        at = 0
        while at < len(doc):
            take = doc[at:at + max_length - len(ids)]
            ids += take
            pos += range(len(take))
            labels += [IGNORE_INDEX] + take[1:] if at == 0 else take  # a document's first token: no prediction
            at += len(take)
            if len(ids) == max_length:
                yield {"input_ids": ids, "position_ids": pos, "labels": labels}
                ids, pos, labels = [], [], []


def _format(files: list[str]) -> str:
    kinds = {FORMATS.get(Path(f).suffix) for f in files}
    if None in kinds or len(kinds) != 1:
        raise ValueError(f"data files {files} must all be one of {sorted(FORMATS)} (parquet, JSON lines or Arrow).")
    return kinds.pop()


def data_files(paths) -> list[str]:
    """The files a `data` argument names: a file, a folder (its parquet / JSON(L) / Arrow files) or a list."""
    out = []
    for p in [paths] if isinstance(paths, (str, Path)) else list(paths):
        p = Path(p)
        if p.is_dir():
            out += sorted(str(f) for f in p.iterdir() if f.suffix in FORMATS)
        elif p.is_file():
            out.append(str(p))
        else:
            raise FileNotFoundError(f"{p} does not exist; pass local text files or a folder of them "
                                    "(nothing is downloaded).")
    if not out:
        raise FileNotFoundError(f"{paths} holds no {sorted(FORMATS)} files.")
    return out


CHECKED_LINES = 1000  # lines of each JSON-lines file parsed up front


def check_files(files: list[str]) -> None:
    """Refuse, before any tokenising, a data file that is empty or (JSON lines) whose first CHECKED_LINES
    lines are not JSON objects, naming the file and line: `datasets` would raise a bare StopIteration or a
    long trace. (A bad line further into a large corpus is left to `datasets`, whose error is wrapped.)"""
    for name in files:
        path = Path(name)
        if path.stat().st_size == 0:
            raise ValueError(f"{path} is empty: no documents to pack; remove it or fill it.")
        if path.suffix != ".jsonl":
            continue
        rows = 0
        with open(path, "rb") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                rows += 1
                if rows > CHECKED_LINES:
                    break
                try:
                    row = json.loads(line)
                except (UnicodeDecodeError, json.JSONDecodeError) as err:
                    raise ValueError(f"{path}:{number}: not a JSON line ({err}); each line must be one JSON object "
                                     "such as {\"text\": \"...\"}.") from None
                if not isinstance(row, dict):
                    kind = {type(None): "null", list: "array", str: "string", bool: "boolean"}.get(type(row), "number")
                    raise ValueError(f"{path}:{number}: a JSON {kind}, not an object; each line must "
                                     "be one JSON object such as {\"text\": \"...\"}.")
        if rows == 0:
            raise ValueError(f"{path} holds only blank lines: no documents to pack; remove it or fill it.")


def _documents(files: list[str], text_field: str, streaming: bool, cache_dir=None):
    """The raw documents of local files through `datasets` (a Dataset, or an IterableDataset read lazily)."""
    import datasets

    check_files(files)
    try:
        raw = datasets.load_dataset(_format(files), data_files=files, split="train", streaming=streaming,
                                    cache_dir=None if cache_dir is None else str(cache_dir))
    except ValueError:
        raise
    except Exception as err:  # datasets' own reader errors: long, and about its internals
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ValueError(f"datasets could not read {files} ({reason}); check that each file is valid "
                         f"{_format(files)}.") from err
    columns = raw.column_names if raw.column_names is not None else list(next(iter(raw), {}))  # JSON streams: from the first record
    if text_field not in columns:
        raise ValueError(f"{files[0]} has no field {text_field!r} (fields: {columns}); pass "
                         "text_field= the column that holds the documents.")
    return raw, columns


def _tokenized_and_packed(raw, columns, tokenizer, max_length: int, text_field: str, **map_kw):
    """`raw` tokenised (each document followed by EOS) and packed: the same two `map` steps whether
    `raw` is read ahead (Dataset) or lazily (IterableDataset), so both give the same rows in order."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no eos_token; packing needs one to end each document.")

    def tokenize(batch):
        return {"ids": tokenizer(batch[text_field], add_special_tokens=False)["input_ids"]}

    def pack(batch):  # each 1,000 documents drop their last partial row: < max_length tokens
        rows = list(pack_documents(batch["ids"], max_length, eos))
        return {k: [r[k] for r in rows] for k in ("input_ids", "position_ids", "labels")}

    tokens = raw.map(tokenize, batched=True, remove_columns=columns, **map_kw.get("tokenize", {}))
    return tokens.map(pack, batched=True, batch_size=1000, remove_columns=["ids"], **map_kw.get("pack", {}))


def load_packed(paths, tokenizer, max_length: int, text_field: str = "text", num_proc: int | None = None,
                cache_dir: str | Path | None = None):
    """A `datasets.Dataset` of packed rows (input_ids, position_ids, labels; `max_length` each) from
    local files, tokenised with `tokenizer` (its EOS after every document)."""
    files = data_files(paths)
    raw, columns = _documents(files, text_field, streaming=False, cache_dir=cache_dir)
    packed = _tokenized_and_packed(raw, columns, tokenizer, max_length, text_field,
                                   tokenize={"num_proc": num_proc, "desc": "tokenize"},
                                   pack={"num_proc": num_proc, "desc": f"pack {max_length}"})
    if not len(packed):
        raise ValueError(f"{files} hold fewer than max_length={max_length} tokens: no full row to train on.")
    return packed.with_format("torch")


def stream_packed(paths, tokenizer, max_length: int, text_field: str = "text", rank: int = 0, world: int = 1):
    """A `datasets.IterableDataset` of the rows `load_packed` gives, in the same order, read, tokenised
    and packed only as they are consumed: nothing is tokenised ahead and nothing is held but the
    batch at hand, so a corpus of any size streams from disk. With `world` > 1, rank `rank` gets its
    own share (`split_dataset_by_node`): whole files when their count divides `world`, else every
    world-th packed row, each rank then reading and tokenising every document (so give a large
    corpus a file count that the process count divides)."""
    from datasets.distributed import split_dataset_by_node

    files = data_files(paths)
    raw, columns = _documents(files, text_field, streaming=True)
    if world > 1:
        raw = split_dataset_by_node(raw, rank=rank, world_size=world)
    return _tokenized_and_packed(raw, columns, tokenizer, max_length, text_field)


class PackedStream:
    """Training batches read in order from a stream of packed rows (`make()` builds the stream):
    batch `step` is rows [step·B, (step+1)·B) of it, the stream starting over (the next epoch) when
    it runs out. `state_dict()` is the position after the last batch read; a checkpoint keeps it, so
    a resumed run reads on from there instead of re-reading everything before. A batch asked for
    out of order is read from a second pass over the stream and leaves the position alone (the
    trainer compiles on batch 0, whatever step it resumes at)."""

    def __init__(self, make):
        self._make = make
        self._stream, self._rows, self._epoch, self._next, self._last = make(), None, 0, 0, None
        self._read_this_epoch = 0

    def _take(self, count: int) -> list[dict]:
        rows = []
        while len(rows) < count:
            if self._rows is None:
                self._stream.set_epoch(self._epoch)
                self._rows = iter(self._stream)
            row = next(self._rows, None)
            if row is None:  # the end of the stream: start the next epoch
                if not self._read_this_epoch:
                    raise ValueError("the data holds fewer tokens than one row of max_length: nothing to train on.")
                self._rows, self._epoch, self._read_this_epoch = None, self._epoch + 1, 0
                continue
            rows.append(row)
            self._read_this_epoch += 1
        return rows

    def batch(self, step: int, batch_size: int) -> list[dict]:
        """The rows of batch `step` (a list of {input_ids, position_ids, labels})."""
        if self._last is not None and self._last[0] == (step, batch_size):
            return self._last[1]
        if step < self._next:  # out of order: a second pass, from the start
            side = PackedStream(self._make)
            side._take(step * batch_size)
            return side._take(batch_size)
        self._take((step - self._next) * batch_size)  # a gap: read past it (only when no state was loaded)
        rows = self._take(batch_size)
        self._next, self._last = step + 1, ((step, batch_size), rows)
        return rows

    def state_dict(self) -> dict:
        """Where the next batch starts: plain ints and strings (a checkpoint loads it with weights_only)."""
        return {"next_step": self._next, "epoch": self._epoch, "stream": self._stream.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self._stream, self._rows, self._last = self._make(), None, None
        self._next, self._epoch = state["next_step"], state["epoch"]
        self._read_this_epoch = int(self._next > 0)  # rows were read before the checkpoint
        self._stream.set_epoch(self._epoch)
        self._stream.load_state_dict(state["stream"])


__all__ = ["pack_documents", "load_packed", "stream_packed", "PackedStream", "data_files", "FORMATS"]
