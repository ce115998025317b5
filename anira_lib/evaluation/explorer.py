"""The allocation explorer's computing (pure functions; `widgets.explore` only wires them).

Input: allocation dumps, the JSONL files `evaluate_knobs(..., dump_path=...)` writes (one record per
example; fields in `evaluate.run_examples`), of any task. A run directory of the notebooks holds one
per variant, `allocations_<decider>.jsonl`; `load_allocations` reads a directory, one file or a
{name: path} mapping into {variant: records}.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .evaluate import DUMP_FORMAT, READ_FORMATS
from ..tasks import TASKS
from ..variants import name_from_dir

FIELDS = ("dump_format", "task", "knob", "example", "tokens", "symbols", "correct", "answer_positions",
          "exit_depths", "expected_depth", "exit_probs")


class DumpError(ValueError):
    """An allocation dump the explorer cannot read; the message says why and what to do."""


def _knob(value):
    return tuple(value) if isinstance(value, list) else value  # CLRS knobs (algorithm, size) come back as lists


def check_record(rec: dict, where: str) -> dict:
    """One dump record, checked: raises DumpError naming the problem (older format, unknown task,
    missing fields) and the fix."""
    if not isinstance(rec, dict):
        raise DumpError(f"{where} is not an allocation record (a JSON object per line).")
    if "dump_format" not in rec:
        raise DumpError(f"{where} is an allocation dump of an older format (1: no 'dump_format', 'task' or "
                        f"'symbols' fields); this anira reads format {DUMP_FORMAT}. Rewrite it by evaluating the "
                        "run again: evaluate_knobs(..., dump_path=...) or re-run its notebook (trained runs are "
                        "resumed, not retrained).")
    if rec["dump_format"] not in READ_FORMATS:
        raise DumpError(f"{where} has dump_format {rec['dump_format']!r}; this anira reads formats {READ_FORMATS} "
                        "(a newer dump needs a newer anira; an older one, re-evaluating the run).")
    if rec.get("task") not in TASKS:
        raise DumpError(f"{where} is a dump of unknown task {rec.get('task')!r}; the explorer knows "
                        f"{sorted(TASKS)}.")
    missing = [f for f in FIELDS if f not in rec]
    if missing:
        raise DumpError(f"{where} lacks the field(s) {missing} that the explorer needs; re-evaluate the run "
                        "to rewrite its dump.")
    return {**rec, "knob": _knob(rec["knob"])}


def load_dump(path: str | Path) -> list[dict]:
    """Records of one allocation dump (JSONL), each checked by `check_record`."""
    path = Path(path)
    if not path.is_file():
        raise DumpError(f"no allocation dump at {path}; notebooks write out_dir/allocations_<decider>.jsonl, "
                        "evaluate_knobs writes one where dump_path says.")
    records = []
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise DumpError(f"{path}:{n} is not JSON ({err.msg}); the dump is damaged, re-evaluate the run.") from None
            records.append(check_record(rec, f"{path}:{n}"))
    if not records:
        raise DumpError(f"{path} holds no records; re-evaluate the run to rewrite it.")
    return records


def variant_name(path: Path) -> str:
    """allocations_early.jsonl -> 'ANIRA-E'; other names keep their stem."""
    return name_from_dir(path.stem.removeprefix("allocations_"))


def load_allocations(source, variants=None) -> dict[str, list[dict]]:
    """{variant: records} from a run directory (its allocations_*.jsonl), one dump file, or a
    {name: path} mapping. Every dump must be of the same task. variants: the names to keep (e.g.
    ("ANIRA-E", "ANIRA-O") for an analysis of adaptive depth; None: all)."""
    if isinstance(source, dict):
        paths = {name: Path(p) for name, p in source.items()}
    else:
        source = Path(source)
        if source.is_dir():
            found = sorted(source.glob("allocations_*.jsonl"))
            if not found:
                raise DumpError(f"{source} holds no allocations_*.jsonl; run its notebook (or evaluate_knobs with "
                                "dump_path) first, or point at a run directory that has them.")
            paths = {variant_name(p): p for p in found}
        else:
            paths = {variant_name(source): source}
    if variants is not None:
        missing = [v for v in variants if v not in paths]
        if missing:
            raise DumpError(f"{source} has no dump of {missing} (it has {sorted(paths)}); evaluate those variants "
                            "first or choose others.")
        paths = {v: paths[v] for v in variants}
    data = {name: load_dump(p) for name, p in paths.items()}
    if not isinstance(source, dict):  # the variant a dump records names it (older dumps: the file name)
        data = {recs[0].get("variant", name): recs for name, recs in data.items()}
    tasks = {name: recs[0]["task"] for name, recs in data.items()}
    if len(set(tasks.values())) > 1:
        raise DumpError(f"these dumps are of different tasks ({tasks}); explore one task at a time.")
    return data


def find_runs(candidates) -> list[Path]:
    """The candidates (run directories or dump files) that hold allocation dumps, in order."""
    found = []
    for c in map(Path, candidates):
        if (c.is_dir() and any(c.glob("allocations_*.jsonl"))) or (c.is_file() and c.suffix == ".jsonl"):
            found.append(c)
    return found


def max_depth_of(records: list[dict]) -> int:
    """D: the length of a token's exit distribution q(d)."""
    return len(records[0]["exit_probs"][0])


def knob_values(records: list[dict]) -> list:
    """The knob values present, sorted (None, for LANO's single setting, stays as it is)."""
    return sorted({r["knob"] for r in records}, key=lambda k: (k is None, str(type(k)), k if k is not None else 0))


def select(records: list[dict], knob=None, correct: bool | None = None) -> list[dict]:
    """Records at `knob` (None: every knob), correct only (True), wrong only (False) or all (None)."""
    return [r for r in records
            if (knob is None or r["knob"] == knob) and (correct is None or r["correct"] == correct)]


def same_example(records_by_variant: dict[str, list[dict]], record: dict) -> dict[str, dict | None]:
    """The record of the same evaluation example (knob, example index) in every variant, or None."""
    return {name: next((r for r in recs if r["knob"] == record["knob"] and r["example"] == record["example"]),
                       None)
            for name, recs in records_by_variant.items()}


def token_strip(record: dict) -> pd.DataFrame:
    """One row per token: position, symbol, exit depth, expected depth, answer (its logits predict a
    supervised token)."""
    answer = set(record["answer_positions"])
    return pd.DataFrame({"position": range(len(record["tokens"])), "symbol": record["symbols"],
                         "depth": record["exit_depths"], "expected_depth": record["expected_depth"],
                         "answer": [i in answer for i in range(len(record["tokens"]))]})


def exit_distribution(record: dict, position: int) -> np.ndarray:
    """q(d) for d = 1..D at one token, shape (D,)."""
    if not 0 <= position < len(record["tokens"]):
        raise IndexError(f"position {position} is outside this example's {len(record['tokens'])} tokens.")
    return np.asarray(record["exit_probs"][position], dtype=float)


def depth_histogram(records: list[dict], answer_only: bool = True) -> pd.DataFrame:
    """Share of (answer) tokens exiting at each depth, per knob: index knob, columns 1..D, rows sum to 1."""
    D = max_depth_of(records)
    counts: dict = {}
    for r in records:
        positions = r["answer_positions"] if answer_only else range(len(r["tokens"]))
        row = counts.setdefault(r["knob"], np.zeros(D))
        for p in positions:
            row[r["exit_depths"][p] - 1] += 1
    knobs = knob_values(records)
    table = np.array([counts[k] for k in knobs])
    shares = table / np.maximum(table.sum(1, keepdims=True), 1)
    return pd.DataFrame(shares, index=pd.Index([str(k) for k in knobs], name="knob"),
                        columns=pd.Index(range(1, D + 1), name="depth"))


ANSWER_COLOUR, SELECTED_COLOUR = "#d62728", "#e0119d"  # red underline, magenta outline: told apart at a glance


def depth_colour(depth: int, max_depth: int) -> str:
    """Hex colour of an exit depth on the viridis scale (1: dark, D: bright)."""
    from matplotlib import colormaps

    frac = 0.0 if max_depth <= 1 else (depth - 1) / (max_depth - 1)
    r, g, b, _ = colormaps["viridis"](frac)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def strip_html(record: dict, max_depth: int, selected: int | None = None, title: str = "") -> str:
    """The token strip as HTML: one box per token coloured by exit depth, its depth below it, answer
    tokens underlined in red, the selected token outlined in magenta, and the colour key below
    (`strip_legend_html`). The outer div carries the example's id (data-knob, data-example,
    data-selected) so a browser test can read what it shows."""
    boxes = []
    for row in token_strip(record).itertuples():
        colour = depth_colour(row.depth, max_depth)
        text = "#000" if row.depth > max_depth / 2 else "#fff"
        border = f"2px solid {SELECTED_COLOUR}" if row.position == selected else "2px solid transparent"
        under = f"border-bottom:3px solid {ANSWER_COLOUR};" if row.answer else ""
        boxes.append(
            f'<span class="anira-token" title="position {row.position}: depth {row.depth}, '
            f'E[d] {row.expected_depth:.2f}" style="display:inline-block;text-align:center;margin:1px;'
            f'padding:1px 3px;font-family:monospace;background:{colour};color:{text};outline:{border};{under}">'
            f'{html.escape(str(row.symbol))}<br><small>{row.depth}</small></span>')
    head = f'<div class="anira-strip-title"><b>{html.escape(title)}</b></div>' if title else ""
    return (f'<div class="anira-strip" data-knob="{html.escape(str(record["knob"]))}" '
            f'data-example="{record["example"]}" data-selected="{selected}">{head}{"".join(boxes)}'
            f'{strip_legend_html(max_depth)}</div>')


def strip_legend_html(max_depth: int) -> str:
    """The strip's colour key: one swatch per exit depth 1..D, and what the underline and outline mean."""
    swatches = "".join(
        f'<span style="display:inline-block;width:18px;text-align:center;background:{depth_colour(d, max_depth)};'
        f'color:{"#000" if d > max_depth / 2 else "#fff"}">{d}</span>' for d in range(1, max_depth + 1))
    return (f'<div class="anira-strip-legend" style="font-size:11px;color:#555;margin-top:2px">exit depth '
            f'{swatches} · <span style="border-bottom:3px solid {ANSWER_COLOUR}">answer token</span> · '
            f'<span style="outline:2px solid {SELECTED_COLOUR}">selected token</span></div>')


def knob_label(task: str) -> str:
    """What a dump's knob is called on axes ('number of operators ℓ' for MANO): the task's own label."""
    return TASKS[task].knob_label if task in TASKS else "knob"


def vocabulary(records: list[dict]) -> dict[int, str]:
    """id -> symbol from the dumps' own tokens and symbols (a prediction of an id never seen as an input
    shows as #id)."""
    vocab: dict[int, str] = {}
    for r in records:
        vocab.update(zip(r["tokens"], r["symbols"]))
    return vocab


def iteration_grid(record: dict, vocab: dict[int, str]) -> pd.DataFrame | None:
    """A format-3 record's per-iteration view, one row per iteration 1..D and one column per position:
    the greedy prediction (symbol) had that token exited there; None for a format-2 record."""
    top1 = record.get("iteration_top1")
    if top1 is None:
        return None
    D = len(top1[0]) if top1 else 0
    return pd.DataFrame([[vocab.get(t[i], f"#{t[i]}") for t in top1] for i in range(D)],
                        index=pd.Index(range(1, D + 1), name="iteration"))


def iteration_html(record: dict, vocab: dict[int, str], selected: int | None = None) -> str:
    """Under a token strip: what each token would predict at every iteration (rows 1..D). A prediction
    that is the next token is green; the token's exit depth is boxed; at an answer token the sufficient
    depth (first iteration correct through D) carries a star. Empty for a format-2 record."""
    grid = iteration_grid(record, vocab)
    if grid is None:
        return ""
    tokens, depths = record["tokens"], record["exit_depths"]
    need = dict(zip(record["answer_positions"], record.get("sufficient_depth", [])))
    head = "".join(f'<th style="padding:0 3px;font-family:monospace;color:#555">{html.escape(str(sym))}</th>'
                   for sym in record["symbols"])
    rows = [f'<tr><th style="padding:0 4px;font-weight:normal;color:#555">i \\ token</th>{head}</tr>']
    for i in grid.index:
        cells = [f'<th style="padding:0 4px;font-weight:normal;color:#555">{i}</th>']
        for p, symbol in enumerate(grid.loc[i]):
            right = p + 1 < len(tokens) and record["iteration_top1"][p][i - 1] == tokens[p + 1]
            style = "background:#c7e9c0;" if right else ""
            style += "outline:2px solid #222;outline-offset:-2px;" if depths[p] == i else ""
            style += "border-left:2px solid #1f77b4;border-right:2px solid #1f77b4;" if p == selected else ""
            star = "★" if need.get(p) == i else ""
            cells.append(f'<td class="anira-iteration-cell" data-position="{p}" data-iteration="{i}" '
                         f'data-correct="{int(right)}" style="text-align:center;font-family:monospace;padding:0 3px;'
                         f'{style}">{html.escape(str(symbol))}{star}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    legend = ('<div style="font-size:11px;color:#555">prediction had the token exited at iteration i (rows): '
              '<span style="background:#c7e9c0">green</span> = the next token, boxed = its exit depth, '
              '★ = sufficient depth (correct from there through D)</div>')
    return (f'<div class="anira-iterations" data-example="{record["example"]}" data-selected="{selected}">'
            f'<table style="border-collapse:collapse">{"".join(rows)}</table>{legend}</div>')
