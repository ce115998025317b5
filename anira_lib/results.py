"""Result tables as tidy pandas DataFrames: one row per run × variant × knob (× step, τ or seed).

`rows_frame` gives `evaluate_knobs`' frame (or rows) constant columns in front; `write_frame`
saves one atomically as CSV beside the JSON; `seed_spread` gives the mean and the min–max of a value
over seeds, what the figures draw when a comparison has several seeds; `markdown_table` renders one
for the generated pages under docs/.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from .files import atomic_write_text


def rows_frame(rows, **columns) -> pd.DataFrame:
    """`rows` (a frame or dicts) as a new frame, with each of `columns` (e.g. variant="ANIRA-E", seed=0) in front."""
    frame = pd.DataFrame(rows).copy()
    for i, (name, value) in enumerate(columns.items()):
        frame.insert(i, name, [value] * len(frame))
    return frame


def write_frame(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write `frame` as CSV at `path` atomically (a reader never sees half a table)."""
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    atomic_write_text(path, buf.getvalue())
    return Path(path)


def read_frame(path: str | Path) -> pd.DataFrame:
    """A frame written by `write_frame` (an empty frame if the file is missing or empty)."""
    path = Path(path)
    if not path.is_file() or not path.stat().st_size:
        return pd.DataFrame()
    return pd.read_csv(path)


def seed_spread(frame: pd.DataFrame, by: list[str], values=("accuracy", "mean_depth")) -> pd.DataFrame:
    """Per group of `by` (e.g. variant, knob): mean, min, max and s.d. of each value over seeds, and
    the number of seeds (`seeds`). Columns `<value>`, `<value>_min`, `<value>_max`, `<value>_sd`."""
    grouped = frame.groupby(by, sort=False, dropna=False)  # a NaN key (a rule's τ) is a group too
    out = grouped.size().rename("seeds").to_frame()
    for v in values:
        out[v] = grouped[v].mean()
        out[f"{v}_min"] = grouped[v].min()
        out[f"{v}_max"] = grouped[v].max()
        out[f"{v}_sd"] = grouped[v].std(ddof=0)
    return out.reset_index()


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """`frame` as a Markdown table (floats to `digits` places, NaN as an em dash), for generated docs."""
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        cells = ["—" if isinstance(v, float) and v != v else f"{v:.{digits}f}" if isinstance(v, float) else str(v)
                 for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
