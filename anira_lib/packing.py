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

from collections.abc import Iterable, Iterator
from pathlib import Path

from .model import IGNORE_INDEX

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


def load_packed(paths, tokenizer, max_length: int, text_field: str = "text", num_proc: int | None = None,
                cache_dir: str | Path | None = None):
    """A `datasets.Dataset` of packed rows (input_ids, position_ids, labels; `max_length` each) from
    local files, tokenised with `tokenizer` (its EOS after every document)."""
    import datasets

    files = data_files(paths)
    raw = datasets.load_dataset(_format(files), data_files=files, split="train",
                                cache_dir=None if cache_dir is None else str(cache_dir))
    if text_field not in raw.column_names:
        raise ValueError(f"{files[0]} has no field {text_field!r} (fields: {raw.column_names}); pass "
                         "text_field= the column that holds the documents.")
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no eos_token; packing needs one to end each document.")

    def tokenize(batch):
        return {"ids": tokenizer(batch[text_field], add_special_tokens=False)["input_ids"]}

    tokens = raw.map(tokenize, batched=True, num_proc=num_proc, remove_columns=raw.column_names, desc="tokenize")

    def pack(batch):  # each 1,000 documents drop their last partial row: < max_length tokens
        rows = list(pack_documents(batch["ids"], max_length, eos))
        return {k: [r[k] for r in rows] for k in ("input_ids", "position_ids", "labels")}

    packed = tokens.map(pack, batched=True, batch_size=1000, num_proc=num_proc, remove_columns=["ids"],
                        desc=f"pack {max_length}")
    if not len(packed):
        raise ValueError(f"{files} hold fewer than max_length={max_length} tokens: no full row to train on.")
    return packed.with_format("torch")


__all__ = ["pack_documents", "load_packed", "data_files", "FORMATS"]
