"""Evaluation per knob value: accuracy and mean answer-token depth d̄ under the inference rule.

"Answer-token depth" is the exit depth at the positions whose logits predict a supervised token
(for MANO: the ANS tag, whose output is the answer) — the compute spent producing the answer.
`evaluate_knobs(..., dump_path=...)` writes an allocation dump: one JSON line per example (format
`DUMP_FORMAT`, fields in `run_examples`) with every token's exit depth, expected depth and exit
distribution; the explorer and the later analyses (Fig. 6, Table 2) read these files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from ..files import atomic_write_jsonl
from ..variants import model_variant
from ..modeling.model import IGNORE_INDEX
from ..progress import progress_bar
from .sufficient_depth import sufficient_depths
from ..tasks import collate


DUMP_FORMAT = 3  # 3 (2026-12-07): + iteration_top1, iteration_correct, sufficient_depth; + variant (later the
#   same day: readers fall back to the file name where a record has none)
READ_FORMATS = (2, 3)  # 2 (until 2026-12-07): no per-iteration fields; 1 (until 2026-12-02): no dump_format,
#   task, example or symbols fields


def supports_iterations(model) -> bool:
    """Whether `model` can give the per-iteration view (output_iterations): eager or SDPA attention."""
    return getattr(model.config, "_attn_implementation", None) in ("eager", "sdpa")


def run_examples(model, task, examples, batch_size: int = 256, depth_rule=None, halt_threshold=None,
                 iterations: bool = True, variant: str | None = None):
    """Forward `examples` in eval mode; yields one record per example (lists, JSON-ready):

    dump_format, task (name), variant (`variant`, or `model_variant` of the model), knob, example
    (index in `examples`), tokens, symbols (decoded tokens),
    predicted / correct (the task's checker where it has one), answer_positions (positions whose
    logits predict a supervised token), answer_depth (their mean exit depth), exit_depths (T,),
    expected_depth (T,), exit_probs (T, D): q(d) per token. With `iterations` (and eager or SDPA
    attention) also iteration_top1 (T, D), each position's greedy prediction had it exited at
    iteration i (`model.forward(output_iterations=...)`), iteration_correct (answers, D), whether that
    prediction is the supervised token, and sufficient_depth (answers,), the first iteration from which
    it stays correct through D (None: never; `sufficient_depth.sufficient_depths`)."""
    variant = variant or model_variant(model.config)
    model.eval()
    device = next(model.parameters()).device
    iterations = iterations and supports_iterations(model)
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        batch = collate(chunk, task.pad_id)
        out = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                    depth_rule=depth_rule, halt_threshold=halt_threshold, output_iterations=1 if iterations else False)
        pred = out.logits[:, :-1].argmax(-1).cpu()
        labels = batch["labels"][:, 1:]
        depths, exp_d, probs = out.exit_depths.cpu(), out.expected_depth.float().cpu(), out.exit_probs.float().cpu()
        top1 = out.iteration_top_ids[..., 0].cpu() if iterations else None  # (B, T, D)
        for b, ex in enumerate(chunk):
            n = len(ex.tokens)
            sup = (labels[b, : n - 1] != IGNORE_INDEX).nonzero().flatten()
            predicted = pred[b, sup].tolist()
            if len(sup) == 1:  # one answer token: the task's own checker decides
                correct = task.check(ex, predicted)
            else:
                correct = predicted == labels[b, sup].tolist()
            per_iteration = {}
            if iterations:
                hits = top1[b, sup] == labels[b, sup].unsqueeze(-1)  # (answers, D)
                per_iteration = {"iteration_top1": top1[b, :n].tolist(), "iteration_correct": hits.tolist(),
                                 "sufficient_depth": sufficient_depths(hits.numpy()).tolist()}
            yield {
                "dump_format": DUMP_FORMAT, "task": task.name, "variant": variant,
                "knob": ex.knob, "example": i + b, "tokens": ex.tokens, "symbols": list(task.decode(ex.tokens)),
                "predicted": predicted, "correct": bool(correct),
                "answer_positions": sup.tolist(),
                "answer_depth": float(depths[b, sup].float().mean()),
                "exit_depths": depths[b, :n].tolist(),
                "expected_depth": [round(x, 4) for x in exp_d[b, :n].tolist()],
                "exit_probs": [[round(p, 4) for p in row] for row in probs[b, :n].tolist()],
                **per_iteration,
            }


ROW_COLUMNS = ("knob", "n", "accuracy", "mean_depth", "mean_expected_depth")  # evaluate_knobs' frame


def evaluate_knobs(model, task, knobs, n_per_knob: int = 500, seed: int = 1234, batch_size: int = 256,
                   depth_rule=None, halt_threshold=None, dump_path: str | Path | None = None,
                   progress: bool = True, dump_correct_only: bool = False, variant: str | None = None) -> pd.DataFrame:
    """A frame with one row per knob value: knob, n, accuracy, mean_depth, mean_expected_depth.

    mean_depth is d̄ on answer tokens with the inference depth rule (§5.3). dump_correct_only: the
    dump keeps correctly answered examples only (the authors' --dump_compute_allocations_only_correct;
    the rows still count every example). The per-iteration view (format 3's fields) is computed only
    for a dump: it costs a second copy of every token in the block and D passes of the Coda. variant:
    the name the dump records (default: `model_variant` of the model)."""
    rows, dump = [], []
    for k in progress_bar(list(knobs), desc="evaluate", disable=not progress):
        recs = list(run_examples(model, task, task.eval_examples(k, n_per_knob, seed), batch_size,
                                 depth_rule, halt_threshold, iterations=dump_path is not None, variant=variant))
        for r in recs:  # the knob asked for: CLRS's is (algorithm, size), its examples' only the size
            r["knob"] = k
        ans_exp = [np.mean([r["expected_depth"][p] for p in r["answer_positions"]]) for r in recs]
        rows.append({"knob": k, "n": len(recs), "accuracy": float(np.mean([r["correct"] for r in recs])),
                     "mean_depth": float(np.mean([r["answer_depth"] for r in recs])),
                     "mean_expected_depth": float(np.mean(ans_exp))})
        dump.extend(r for r in recs if r["correct"] or not dump_correct_only)
    if dump_path is not None:
        atomic_write_jsonl(dump_path, dump)
    return pd.DataFrame(rows, columns=list(ROW_COLUMNS))


def depth_trend(rows) -> float:
    """Spearman correlation between the knob and d̄ across rows (a frame or dicts; NaN if d̄ is constant)."""
    rows = pd.DataFrame(rows)
    if len(rows) < 2 or rows["mean_depth"].nunique() < 2 or rows["knob"].nunique() < 2:
        return float("nan")  # undefined (e.g. a fixed-depth baseline's constant d̄): no warning, no number
    return float(spearmanr(rows["knob"], rows["mean_depth"]).statistic)


# ----------------------------------------------------------------------------- language modelling (LANO)

@torch.no_grad()
def lm_token_stats(model, windows, batch_size: int = 16, depth_rule=None, halt_threshold=None,
                   progress: bool = True) -> dict[str, np.ndarray]:
    """Per position of equal-length windows (W, L): expected_depth Σ_d d·q(d), exit_depths under the
    inference rule, and next_probs (W, L, V), the model's softmax over the vocabulary."""
    model.eval()
    device = next(model.parameters()).device
    windows = torch.as_tensor(np.asarray(windows), dtype=torch.long)
    exp_d, depths, probs = [], [], []
    for i in progress_bar(range(0, len(windows), batch_size), desc="forward", disable=not progress):
        ids = windows[i:i + batch_size].to(device)
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), depth_rule=depth_rule,
                    halt_threshold=halt_threshold)
        exp_d.append(out.expected_depth.float().cpu())
        depths.append(out.exit_depths.cpu())
        probs.append(out.logits.float().softmax(-1).cpu())
    return {"expected_depth": torch.cat(exp_d).numpy(), "exit_depths": torch.cat(depths).numpy(),
            "next_probs": torch.cat(probs).numpy()}


def kl_to_exact(next_probs: np.ndarray, exact: np.ndarray, token_ids) -> np.ndarray:
    """KL(exact ‖ model) per position, nats. next_probs (..., V); exact (..., K) over `token_ids` (K vocab
    ids, e.g. the terminals then EOS); the model is renormalised over those K ids. NaN where exact is NaN."""
    q = next_probs[..., list(token_ids)]
    q = q / q.sum(-1, keepdims=True)
    p = exact
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    kl = terms.sum(-1)
    return np.where(np.isnan(p).any(-1), np.nan, kl)


@torch.no_grad()
def generation_validity(model, prompt, check, n: int = 32, max_new_tokens: int = 450, eos_id: int = 4,
                        pad_id: int = 0, seed: int = 0) -> dict:
    """Sample `n` continuations of `prompt` (a list of ids ending where a new sentence starts) up to
    EOS with `generate()` (allocation-aware cache); returns the share `check(tokens)` accepts and the
    sentences."""
    model.eval()
    device = next(model.parameters()).device
    torch.manual_seed(seed)
    ids = torch.tensor([prompt] * n, device=device)
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, max_new_tokens=max_new_tokens,
                         eos_token_id=eos_id, pad_token_id=pad_id, suppress_tokens=[pad_id])
    sentences, valid = [], 0
    for row in out[:, len(prompt):].tolist():
        finished = eos_id in row
        sent = row[: row.index(eos_id)] if finished else row
        ok = finished and len(sent) > 0 and bool(check(sent))
        valid += ok
        sentences.append({"tokens": sent, "finished": finished, "valid": ok})
    return {"validity": valid / n, "n": n, "samples": sentences}


def token_frame(records: list[dict], correct_only: bool = False):
    """Allocation-dump records -> one pandas row per token: example, knob, position, symbol, role
    ('answer' where the token's logits predict a supervised token, else 'question'), exit_depth,
    expected_depth, correct (the example's verdict) and q_1 .. q_D (its exit distribution)."""
    import pandas as pd

    rows = []
    for r in records:
        if correct_only and not r["correct"]:
            continue
        answer = set(r["answer_positions"])
        knob = tuple(r["knob"]) if isinstance(r["knob"], list) else r["knob"]
        for i, (depth, exp_d, q) in enumerate(zip(r["exit_depths"], r["expected_depth"], r["exit_probs"])):
            rows.append({"example": r.get("example"), "knob": knob, "position": i,
                         "symbol": r["symbols"][i] if "symbols" in r else None,
                         "role": "answer" if i in answer else "question", "exit_depth": depth,
                         "expected_depth": exp_d, "correct": r["correct"],
                         **{f"q_{d + 1}": p for d, p in enumerate(q)}})
    return pd.DataFrame(rows)
