"""GSM-Symbolic evaluation (paper §6.6, Table 3): Main, P1 and P2, accuracy and answer-token depth.

The dataset (apple/ml-gsm-symbolic, CC BY-NC-ND 4.0) is not shipped: `read_split` reads it from a
local folder in its public layout, `generated_data/GSM_symbolic.jsonl`, `GSM_p1.jsonl`, `GSM_p2.jsonl`
(fields `id`, `instance`, `question`, `answer` ending "#### N"). Scoring follows its README: an 8-shot
chain-of-thought prompt ("Q: … A: Let's think step by step. … The final answer is N."), greedy
decoding stopped at "Q:" or EOS, commas removed, the last number matching `-?\\d+\\.?\\d*` compared as
a float with the "####" value. The shots are the caller's (a JSONL of question / answer rows in the
same format, e.g. eight GSM8K training problems): none ship here.

Depth: the exit depth of each position whose logits chose a generated answer token (the last prompt
token, then each answer token but the last), read from the allocation-aware cache `generate()` fills;
pooled over every answer token of a split. `synthetic_split` writes rows in the same layout, with one
or two extra clauses for P1 / P2, for smoke runs and tests.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pandas as pd
import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from ..progress import progress_bar

SPLITS = {"main": "GSM_symbolic.jsonl", "p1": "GSM_p1.jsonl", "p2": "GSM_p2.jsonl"}
STOP = "Q:"
NUMBER = re.compile(r"-?\d+\.?\d*")
# Table 3: accuracy (%) and mean depth on GSM-Symbolic (the fixed-depth baseline's depth is its D)
TABLE3 = pd.DataFrame([
    {"variant": "fixed-depth", "split": "main", "accuracy": 46.26, "depth": None},
    {"variant": "fixed-depth", "split": "p1", "accuracy": 23.54, "depth": None},
    {"variant": "fixed-depth", "split": "p2", "accuracy": 5.80, "depth": None},
    {"variant": "ANIRA-E", "split": "main", "accuracy": 45.70, "depth": 6.060},
    {"variant": "ANIRA-E", "split": "p1", "accuracy": 24.06, "depth": 6.004},
    {"variant": "ANIRA-E", "split": "p2", "accuracy": 5.80, "depth": 5.982},
    {"variant": "ANIRA-O", "split": "main", "accuracy": 43.68, "depth": 4.108},
    {"variant": "ANIRA-O", "split": "p1", "accuracy": 23.02, "depth": 4.105},
    {"variant": "ANIRA-O", "split": "p2", "accuracy": 5.08, "depth": 4.001},
])


class GsmDataError(ValueError):
    """A GSM-Symbolic folder or row that cannot be read; the message names the file and line."""


def split_path(folder: str | Path, split: str) -> Path:
    """The file of `split` ('main', 'p1', 'p2') under `folder` (the repository root or its generated_data/)."""
    if split not in SPLITS:
        raise GsmDataError(f"split {split!r} is unknown; use one of {list(SPLITS)}.")
    folder = Path(folder)
    for base in (folder / "generated_data", folder):
        if (base / SPLITS[split]).is_file():
            return base / SPLITS[split]
    raise GsmDataError(f"{folder} has no {SPLITS[split]} (looked in {folder / 'generated_data'} and {folder}); "
                       "pass the local copy of apple/ml-gsm-symbolic in its public layout.")


def answer_value(answer: str, where: str = "answer") -> float:
    """The number after '####' in a reference answer (commas removed)."""
    if "####" not in answer:
        raise GsmDataError(f"{where} has no '####' before its final answer.")
    tail = answer.rsplit("####", 1)[1].replace(",", "").strip()
    try:
        return float(tail)
    except ValueError:
        raise GsmDataError(f"{where}: '#### {tail}' is not a number.") from None


def read_rows(path: str | Path) -> list[dict]:
    """Question / answer rows of a JSONL file, each checked: valid JSON, both fields, a '####' number."""
    path = Path(path)
    if not path.is_file():
        raise GsmDataError(f"{path} does not exist.")
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[:err.start].count(b"\n") + 1
        raise GsmDataError(f"{path} line {line} is not UTF-8 (byte {err.object[err.start]:#04x}); re-save the file "
                           "as UTF-8.") from None
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path} line {i}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise GsmDataError(f"{where} is not JSON ({err.msg}).") from None
        if not isinstance(row, dict):
            raise GsmDataError(f"{where} is {type(row).__name__} JSON, not an object with question and answer.")
        missing = [k for k in ("question", "answer") if k not in row]
        if missing:
            raise GsmDataError(f"{where} has no field(s) {missing}.")
        row["target"] = answer_value(row["answer"], where)
        rows.append(row)
    if not rows:
        raise GsmDataError(f"{path} holds no rows.")
    return rows


def read_split(folder: str | Path, split: str, limit: int | None = None) -> list[dict]:
    """The rows of one split (the first `limit` if given)."""
    rows = read_rows(split_path(folder, split))
    return rows[:limit] if limit is not None else rows


def chain_of_thought(answer: str) -> str:
    """A GSM8K-style reference answer as a chain of thought: the reasoning (calculator notes
    `<<…>>` dropped, lines joined), then "The final answer is N."."""
    reasoning, _, final = answer.rpartition("####")
    steps = " ".join(line.strip() for line in re.sub(r"<<[^>]*>>", "", reasoning).splitlines() if line.strip())
    return f"{steps} The final answer is {final.strip().replace(',', '')}."


def build_prompt(shots: list[dict], question: str) -> str:
    """The few-shot prompt: each shot as "Q: … / A: Let's think step by step. …", then the question."""
    parts = [f"Q: {s['question'].strip()}\nA: Let's think step by step. {chain_of_thought(s['answer'])}\n\n" for s in shots]
    return "".join(parts) + f"Q: {question.strip()}\nA: Let's think step by step."


def extract_answer(text: str) -> float | None:
    """The model's answer: text up to the first "Q:" (the next question), commas removed, the last number."""
    text = text.split(STOP, 1)[0].replace(",", "")
    numbers = NUMBER.findall(text)
    return float(numbers[-1]) if numbers else None


def is_correct(text: str, target: float) -> bool:
    predicted = extract_answer(text)
    return predicted is not None and predicted == float(target)


def answer_length(tokenizer, generated: list[int], eos_id: int | None, pad_id: int | None) -> int:
    """How many generated tokens belong to the answer: those before EOS / padding, and before the
    stop marker (a token that starts the marker, like "Q" of "Q:", is not the answer's)."""
    decode = lambda k: tokenizer.decode(generated[:k], skip_special_tokens=True)  # noqa: E731
    for k, token in enumerate(generated, 1):
        if token is not None and token in (eos_id, pad_id):
            return k - 1
        text = decode(k)
        if STOP in text:
            before = text.split(STOP, 1)[0].rstrip()
            m = k - 1
            while m > 0 and len(decode(m).rstrip()) > len(before):
                m -= 1
            return m
    return len(generated)


class StopAtMarker(StoppingCriteria):
    """A `generate()` stopping criterion: a row is done once its answer shows the stop marker. Decodes
    only the last few tokens per step (the marker is two characters), so it works with any tokenizer."""

    def __init__(self, tokenizer, prompt_length: int, window: int = 8):
        self.tokenizer, self.start, self.window = tokenizer, prompt_length, window

    def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
        tails = input_ids[:, max(self.start, input_ids.shape[1] - self.window):].tolist()
        return torch.tensor([STOP in self.tokenizer.decode(t, skip_special_tokens=True) for t in tails],
                            device=input_ids.device)


@torch.no_grad()
def generate_answers(model, tokenizer, prompts: list[str], max_new_tokens: int = 256, batch_size: int = 8,
                     progress: bool = True) -> list[dict]:
    """Greedy answers to `prompts`, batched with left padding, through the allocation-aware cache.
    Per prompt: text (stop marker and what follows cut), tokens (answer length) and depths (the exit
    depth of each position that chose an answer token)."""
    device = next(model.parameters()).device
    tokenizer.padding_side = "left"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos_id = tokenizer.eos_token_id
    out = []
    for i in progress_bar(range(0, len(prompts), batch_size), desc="generate", disable=not progress):
        enc = tokenizer(prompts[i:i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
        gen = model.generate(ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=pad_id, eos_token_id=eos_id, return_dict_in_generate=True,
                             stopping_criteria=StoppingCriteriaList([StopAtMarker(tokenizer, ids.shape[1])]))
        P = ids.shape[1]
        depths = gen.past_key_values.exit_depths  # (B, S): prompt positions, then the fed-back answer tokens
        for b in range(ids.shape[0]):
            new = gen.sequences[b, P:].tolist()
            n = answer_length(tokenizer, new, eos_id, pad_id)
            text = tokenizer.decode(new[:n], skip_special_tokens=True)
            out.append({"text": text.split(STOP, 1)[0], "tokens": n,
                        "depths": depths[b, P - 1:P - 1 + n].tolist()})
    return out


def evaluate_gsm(models: dict, tokenizer, folder: str | Path, shots: str | Path | list[dict],
                 splits=("main", "p1", "p2"), limit: int | None = None, max_new_tokens: int = 256,
                 batch_size: int = 8, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every model ({name: model}) on every split: (per-question frame, summary frame with Table 3's
    values beside ours). Summary: accuracy (%) and depth (mean over all answer tokens of the split;
    NaN where no question got an answer token, e.g. a model that answers with EOS at once)."""
    shots = read_rows(shots) if not isinstance(shots, list) else shots
    data = {split: read_split(folder, split, limit) for split in splits}  # every split read and checked first:
    per_row = []                                                          # a bad p2 fails before any generation
    for split, rows in data.items():
        prompts = [build_prompt(shots, r["question"]) for r in rows]
        for name, model in models.items():
            model.eval()
            answers = generate_answers(model, tokenizer, prompts, max_new_tokens, batch_size, progress)
            for row, ans in zip(rows, answers):
                per_row.append({"variant": name, "split": split, "id": row.get("id"), "instance": row.get("instance"),
                                "target": row["target"], "predicted": extract_answer(ans["text"]),
                                "correct": is_correct(ans["text"], row["target"]), "answer_tokens": ans["tokens"],
                                "depth_sum": float(sum(ans["depths"])), "text": ans["text"]})
    frame = pd.DataFrame(per_row)
    g = frame.groupby(["variant", "split"], sort=False)
    summary = pd.DataFrame({"n": g.size(), "accuracy": 100 * g["correct"].mean(),
                            "depth": g["depth_sum"].sum() / g["answer_tokens"].sum().where(lambda n: n > 0)}).reset_index()
    paper = TABLE3.rename(columns={"accuracy": "paper_accuracy", "depth": "paper_depth"})
    return frame, summary.merge(paper, on=["variant", "split"], how="left")


# ----------------------------------------------------------------------------- synthetic rows (smoke runs)

NAMES = ("Ava", "Ben", "Chloe", "Dev", "Emma", "Finn", "Gita", "Hugo")
THINGS = ("apples", "stamps", "marbles", "books", "shells", "coins")


def synthetic_rows(n: int, extra_clauses: int = 0, seed: int = 0) -> list[dict]:
    """Word problems in GSM-Symbolic's row format: a start amount, one change, then `extra_clauses`
    more (P1: 1, P2: 2); answers as worked steps ending "#### N"."""
    rng = random.Random(f"gsm-{seed}-{extra_clauses}")
    rows = []
    for i in range(n):
        name, thing = rng.choice(NAMES), rng.choice(THINGS)
        total = rng.randint(2, 20)
        clauses, steps = [f"{name} has {total} {thing}."], []
        for _ in range(1 + extra_clauses):
            k = rng.randint(1, 9)
            if rng.random() < 0.5 or total <= k:
                clauses.append(f"Then {name} gets {k} more {thing}.")
                steps.append(f"{total} + {k} = <<{total}+{k}={total + k}>>{total + k}")
                total += k
            else:
                clauses.append(f"Then {name} gives away {k} {thing}.")
                steps.append(f"{total} - {k} = <<{total}-{k}={total - k}>>{total - k}")
                total -= k
        question = " ".join(clauses) + f" How many {thing} does {name} have now?"
        answer = "\n".join(f"{name} has {s} {thing}." for s in steps) + f"\n#### {total}"
        rows.append({"id": i, "instance": 0, "question": question, "answer": answer})
    return rows


def write_synthetic(folder: str | Path, n: int = 50, shots: int = 8, seed: int = 0) -> Path:
    """A GSM-Symbolic-layout folder of synthetic rows (generated_data/ with the three splits) and
    `shots.jsonl` beside it. Returns the folder."""
    from ..files import atomic_write_text

    folder = Path(folder)
    for extra, (split, name) in enumerate(SPLITS.items()):
        text = "".join(json.dumps(r) + "\n" for r in synthetic_rows(n, extra, seed))
        atomic_write_text(folder / "generated_data" / name, text)
    atomic_write_text(folder / "shots.jsonl", "".join(json.dumps(r) + "\n" for r in synthetic_rows(shots, 0, seed + 1)))
    return folder


__all__ = ["read_split", "read_rows", "build_prompt", "extract_answer", "is_correct", "evaluate_gsm",
           "generate_answers", "answer_value", "chain_of_thought", "synthetic_rows", "write_synthetic",
           "TABLE3", "SPLITS", "GsmDataError"]
