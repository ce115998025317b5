"""CLRS-Text as a task: cached splits from dm-clrs, a character tokenizer, multitask sampling.

Splits (docs/tasks.md, CLRS-Text): train = seed 0, `train_samples` per (algorithm, size) at dm-clrs's
training sizes; eval = seeds (3, 14, 35, 81, 94), `eval_samples` each, every size 4..max. Each
(split, algorithm, size, seed) is generated once into `data/clrs/` as JSONL with a sha256 sidecar;
a file whose hash does not match is regenerated, never read. `prepare_splits` fills the cache in
parallel with a progress bar (`python -m anira_lib.tasks.clrs --split eval`). Published CLRS-Text
files a user already has are read with `read_published` and set beside ours by `compare_with_published`.

Sequence: BOS, the question's characters, the answer's characters, EOS; supervision on the answer
and EOS (answer-only loss). The knob is the input size; `meta` holds the algorithm and its task.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import clrs_text
from ..cli import program_name
from ..files import atomic_write_text
from ..progress import progress_bar
from .base import Example, TaskSampler

PAD, BOS, EOS = 0, 1, 2
SPECIAL = ("<pad>", "<bos>", "<eos>")
DEFAULT_DIR = Path("data/clrs")


# ----------------------------------------------------------------------------- the on-disk cache

def cache_file(root: Path, split: str, algorithm: str, size: int, seed: int, count: int) -> Path:
    return Path(root) / split / f"{algorithm}_n{size}_seed{seed}_{count}.jsonl"


def _write(path: Path, rows: list[dict]):
    text = "".join(json.dumps(r) + "\n" for r in rows)
    atomic_write_text(path, text)
    atomic_write_text(path.with_suffix(".sha256"), hashlib.sha256(text.encode()).hexdigest() + "\n")


def _read(path: Path) -> list[dict] | None:
    """The rows of a cache file, or None if it is missing or does not match its hash."""
    sidecar = path.with_suffix(".sha256")
    if not path.exists() or not sidecar.exists():
        return None
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sidecar.read_text().strip():
        warnings.warn(f"CLRS cache {path} does not match its sha256; regenerating it.")
        return None
    return [json.loads(line) for line in data.decode().splitlines()]


def _generate_job(job):
    root, split, algorithm, size, seed, count = job
    path = cache_file(root, split, algorithm, size, seed, count)
    if _read(path) is None:
        _write(path, clrs_text.generate(algorithm, size, count, seed))
    return str(path)


def split_jobs(split: str, algorithms=None, sizes=None, train_samples=clrs_text.TRAIN_SAMPLES,
               eval_samples=clrs_text.EVAL_SAMPLES):
    """(algorithm, size, seed, count) for a split. sizes: {algorithm: [sizes]} to override the defaults."""
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}.")
    table = clrs_text.train_sizes() if split == "train" else clrs_text.eval_sizes()
    algorithms = list(algorithms or table)
    jobs = []
    for a in algorithms:
        clrs_text.task_of(a)
        for n in (sizes or {}).get(a, table[a]):
            clrs_text.check_size(a, n)
            if split == "train":
                jobs.append((a, n, clrs_text.TRAIN_SEED, train_samples))
            else:
                jobs.extend((a, n, s, eval_samples) for s in clrs_text.EVAL_SEEDS)
    return jobs


def prepare_splits(split: str, root: str | Path = DEFAULT_DIR, processes: int | None = None, progress: bool = True,
                   **kw) -> list[Path]:
    """Generate (or verify) every cache file of a split, in parallel; returns their paths."""
    jobs = [(str(root), split, *j) for j in split_jobs(split, **kw)]
    jobs.sort(key=lambda j: -j[3])  # large sizes first: they are the slow ones (graham_scan)
    processes = processes or os.cpu_count() or 1
    bar = dict(total=len(jobs), desc=f"CLRS-Text {split}", disable=not progress)
    if processes > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(processes) as pool:
            return [Path(p) for p in progress_bar(pool.map(_generate_job, jobs), **bar)]
    return [Path(_generate_job(j)) for j in progress_bar(jobs, **bar)]


def load_pair(root, split, algorithm, size, seed, count) -> list[dict]:
    path = cache_file(root, split, algorithm, size, seed, count)
    rows = _read(path)
    if rows is None:
        _generate_job((str(root), split, algorithm, size, seed, count))
        rows = _read(path)
    return rows


# ----------------------------------------------------------------------------- tokenizer

@dataclass
class CharTokenizer:
    """Character-level tokenizer: ids 0..2 are <pad>, <bos>, <eos>, then one id per character."""

    chars: list[str]

    @classmethod
    def fit(cls, texts) -> "CharTokenizer":
        return cls(sorted({c for t in texts for c in t}))

    def __post_init__(self):
        self.ids = {c: i + len(SPECIAL) for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(SPECIAL) + len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.ids[c] for c in text]
        except KeyError as err:
            raise ValueError(f"character {err.args[0]!r} is not in the tokenizer's alphabet; refit it on data "
                             "that includes it.") from None

    def decode(self, ids) -> str:
        return "".join(SPECIAL[i] if i < len(SPECIAL) else self.chars[i - len(SPECIAL)] for i in ids)

    def save(self, folder: str | Path):
        atomic_write_text(Path(folder) / "clrs_tokenizer.json", json.dumps({"chars": self.chars}, indent=0))

    @classmethod
    def load(cls, folder: str | Path) -> "CharTokenizer":
        return cls(json.loads((Path(folder) / "clrs_tokenizer.json").read_text())["chars"])


# ----------------------------------------------------------------------------- the task

@dataclass(frozen=True)
class ClrsTask(TaskSampler):
    """Multitask CLRS-Text. algorithms: names (default all 30); train_sizes / eval_sizes: optional
    {algorithm: [sizes]} overrides; train_samples / eval_samples per (algorithm, size[, seed])."""

    algorithms: tuple = ()
    train_sizes: dict = field(default_factory=dict)
    eval_sizes: dict = field(default_factory=dict)
    train_samples: int = clrs_text.TRAIN_SAMPLES
    eval_samples: int = clrs_text.EVAL_SAMPLES
    data_dir: str = str(DEFAULT_DIR)
    seed: int = 0

    name = "clrs"
    knob_label = "(algorithm, input size n)"

    def __post_init__(self):
        algos = tuple(self.algorithms) or tuple(clrs_text.algorithms())
        for a in algos:
            clrs_text.task_of(a)  # unknown names raise here
        object.__setattr__(self, "algorithms", algos)
        train = split_jobs("train", algos, self.train_sizes or None, self.train_samples, self.eval_samples)
        data = {(a, n): load_pair(self.data_dir, "train", a, n, s, c) for a, n, s, c in train}
        object.__setattr__(self, "_train", data)
        object.__setattr__(self, "_eval", {})
        object.__setattr__(self, "train_pairs", sorted(data))
        texts = [r["question"] + r["answer"] for rows in data.values() for r in rows]
        probes = [r["question"] + r["answer"] for a in algos  # characters that only larger sizes show
                  for r in clrs_text.generate(a, max(clrs_text.eval_sizes()[a]), 1, seed=clrs_text.EVAL_SEEDS[0])]
        object.__setattr__(self, "tokenizer", CharTokenizer.fit(texts + probes))
        object.__setattr__(self, "_max_len", 2 + max(len(t) for t in texts))

    bos_id, eos_id = SPECIAL.index("<bos>"), SPECIAL.index("<eos>")  # not dataclass fields

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    @property
    def pad_id(self) -> int:
        return PAD

    @property
    def max_len(self) -> int:
        return self._max_len

    def decode(self, tokens):
        return [self.tokenizer.decode([t]) for t in tokens]

    def example(self, row: dict) -> Example:
        q, a = self.tokenizer.encode(row["question"]), self.tokenizer.encode(row["answer"])
        tokens = [BOS] + q + a + [EOS]
        targets = [False] * (1 + len(q)) + [True] * (len(a) + 1)
        return Example(tokens, targets, row["length"], {"algorithm": row["algo_name"],
                                                         "task": clrs_text.task_of(row["algo_name"])})

    def sample(self, rng: random.Random, knob=None) -> Example:
        """Training: a uniformly chosen (algorithm, size) pair (as dm-clrs's generator does), then a
        uniformly chosen cached sample of it."""
        pair = self.train_pairs[int(rng.random() * len(self.train_pairs))] if knob is None else tuple(knob)
        rows = self._train[pair]
        return self.example(rows[int(rng.random() * len(rows))])

    @property
    def train_knobs(self) -> list[tuple[str, int]]:
        """The (algorithm, size) pairs training draws (what an evaluation covers by default)."""
        return list(self.train_pairs)

    def eval_pairs(self) -> list[tuple[str, int]]:
        table = self.eval_sizes or {}
        return [(a, n) for a in self.algorithms for n in table.get(a, clrs_text.eval_sizes()[a])]

    def eval_rows(self, knob) -> list[dict]:
        """Cached evaluation samples of knob = (algorithm, size), every eval seed in turn (read once)."""
        algorithm, size = knob
        key = (algorithm, int(size))
        if key not in self._eval:
            self._eval[key] = [r for s in clrs_text.EVAL_SEEDS
                               for r in load_pair(self.data_dir, "eval", algorithm, size, s, self.eval_samples)]
        return self._eval[key]

    def eval_examples(self, knob, count: int, seed: int = 0) -> list[Example]:
        """The first `count` evaluation samples of knob = (algorithm, size), across the eval seeds."""
        return [self.example(r) for r in self.eval_rows(knob)[:count]]

    def overlap(self, knob) -> float:
        """Share of the evaluation questions of knob = (algorithm, size) that also occur in training."""
        train = {r["question"] for r in self._train.get(tuple(knob), [])}
        evals = self.eval_rows(knob)
        return sum(r["question"] in train for r in evals) / max(len(evals), 1)

    def check(self, ex: Example, predicted: list[int] | None = None) -> bool:
        """Exact match of the answer characters (and EOS)."""
        answer = [t for t, s in zip(ex.tokens, ex.targets) if s]
        return predicted is None or list(predicted) == answer

    def save_pretrained(self, folder):
        self.tokenizer.save(folder)


# ----------------------------------------------------------------------------- published files

PUBLISHED_COLUMNS = ("question", "answer", "algo_name", "length")


def read_published(path: str | Path) -> list[dict]:
    """Rows of published CLRS-Text files (a parquet/JSON/JSONL file or a folder of them), read with the
    `datasets` library's file readers; each row keeps question, answer, algo_name and length."""
    path = Path(path)
    files = sorted(p for p in ([path] if path.is_file() else path.rglob("*"))
                   if p.suffix in (".parquet", ".json", ".jsonl"))
    if not files:
        raise FileNotFoundError(f"no .parquet/.json/.jsonl files at {path}; point at the folder holding the "
                                "published CLRS-Text files.")
    try:
        import datasets
    except ImportError as err:
        raise ImportError("reading published CLRS-Text files needs the `datasets` library: "
                          "pip install 'anira[dev]' (or pip install datasets).") from err
    kinds = {p.suffix for p in files}
    if len(kinds) > 1:
        raise ValueError(f"mixed file kinds {sorted(kinds)} at {path}; keep one format per folder.")
    builder = "parquet" if ".parquet" in kinds else "json"
    data = datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train")
    missing = [c for c in PUBLISHED_COLUMNS if c not in data.column_names]
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing}; CLRS-Text files have {list(PUBLISHED_COLUMNS)}.")
    return [{c: row[c] for c in PUBLISHED_COLUMNS} for row in data]


def compare_with_published(published: list[dict], generated: list[dict]) -> list[dict]:
    """Per (algorithm, length): how many published and generated samples, and the share of generated
    questions that also occur verbatim in the published ones (float formatting differs: the published
    files round with .3g, dm-clrs 2.0.3 truncates to 3 decimals; see docs/tasks.md, CLRS-Text)."""
    by_pair: dict[tuple, dict] = {}
    for r in published:
        by_pair.setdefault((r["algo_name"], int(r["length"])), {"published": set(), "generated": []})["published"].add(
            r["question"])
    for r in generated:
        by_pair.setdefault((r["algo_name"], int(r["length"])), {"published": set(), "generated": []})["generated"].append(
            r["question"])
    rows = []
    for (algorithm, length), d in sorted(by_pair.items()):
        shared = sum(q in d["published"] for q in d["generated"])
        rows.append({"algorithm": algorithm, "length": length, "published": len(d["published"]),
                     "generated": len(d["generated"]), "generated_in_published": shared / max(len(d["generated"]), 1)})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(prog=program_name("anira_lib.tasks.clrs"), description="Generate and cache a CLRS-Text split (dm-clrs 2.0.3).")
    ap.add_argument("--split", choices=["train", "eval"], default="eval")
    ap.add_argument("--algorithms", nargs="*", default=None)
    ap.add_argument("--data-dir", default=str(DEFAULT_DIR))
    ap.add_argument("--processes", type=int, default=None)
    args = ap.parse_args(argv)
    t = time.perf_counter()
    paths = prepare_splits(args.split, args.data_dir, args.processes, algorithms=args.algorithms)
    print(f"{len(paths)} files of the {args.split} split in {args.data_dir} ({time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
