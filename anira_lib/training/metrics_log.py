"""A run's metric files: `metrics.jsonl` (every logged row, every key) and `metrics.csv` (the columns of
METRIC_KEYS), both rewritten atomically, and the optional TensorBoard writer."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..files import atomic_write_text

METRIC_KEYS = ("step", "loss", "ce", "kl", "answer_acc", "answer_depth", "mean_depth", "lr",
               "tokens_per_s", "elapsed_s")


def write_metrics(out_dir: Path, rows: list[dict]) -> None:
    """out_dir/metrics.jsonl and out_dir/metrics.csv hold exactly `rows` (each file replaced whole)."""
    atomic_write_text(out_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_KEYS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out_dir / "metrics.csv", buf.getvalue())


def tensorboard_writer(out_dir: Path):
    """A SummaryWriter into out_dir/tensorboard; a one-line ImportError naming the extra without the package."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ImportError("tensorboard=true needs the tensorboard package: pip install -e '.[lab]' "
                          "(or set tensorboard=false; metrics.csv/jsonl are always written).") from err
    return SummaryWriter(out_dir / "tensorboard")
