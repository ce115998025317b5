"""Is depth needed at all? The condition every adaptive-computation finding is measured under.

"d̄ rises with the knob" means something only where the task needs the depth: where a model that
runs one iteration of the recurrent block (`fixed-1`, P + R + C layers) is clearly less accurate
than one that always runs all D iterations (`fixed-D`). Both are the fixed-depth baseline
(`decider: none`) of the same settings; `DEPTH_BASELINES` holds their overrides, to train beside
ANIRA-E and ANIRA-O (`experiments.compare_deciders(..., variants=...)`).
"""

from __future__ import annotations

import pandas as pd

from ..intervals import seed_interval
from ..variants import DEEP, DEPTH_BASELINES, SHALLOW  # noqa: F401 (DEPTH_BASELINES: notebooks import it from here)
MIN_GAP = 0.15  # accuracy points: the gap that counts as "depth is needed" (and must clear the seed spread)


def require_variants(frame: pd.DataFrame, variants, what: str = "this comparison") -> None:
    """Raise one line naming the variants `frame` lacks and how to get them."""
    have = set(frame["variant"]) if "variant" in frame else set()
    missing = [v for v in variants if v not in have]
    if missing:
        raise ValueError(f"{what} needs variant(s) {missing}, the frame has {sorted(have)}; train them beside "
                         "the others (compare_deciders(..., variants={**VARIANTS, **DEPTH_BASELINES})).")


def depth_necessity(frame: pd.DataFrame, shallow: str = SHALLOW, deep: str = DEEP, min_gap: float = MIN_GAP,
                    level: float = 0.95, chance: float | None = None, by=("knob",), value: str = "accuracy",
                    lower_is_better: bool = False) -> pd.DataFrame:
    """Per knob value: is the deep baseline clearly more accurate than the shallow one?

    frame: one row per seed × variant × knob with `accuracy` (compare_deciders' frame, results.csv).
    The gap deep − shallow is taken per seed (the two runs of a seed share its data stream) and
    summarised by `intervals.seed_interval`. needed: "yes" when the interval lies above 0 and the
    mean gap is at least `min_gap`; "no" when the interval lies below `min_gap`; else "unclear"
    (always with a single seed). helps: the interval lies above 0, whatever the gap's size (depth makes
    a difference that the seeds agree on, if perhaps a smaller one than `min_gap`). With `chance`, deep_above_chance says whether the deep baseline's
    lower accuracy bound over seeds is above it (a gap between two models at chance means nothing).
    by: the columns naming a knob value, e.g. ("algorithm", "size") for CLRS-Text's results; () for a
    frame without a knob (LANO: one row per seed × variant). value / lower_is_better: another measure,
    e.g. "kl_to_exact_nats" with lower_is_better=True (the gap is then shallow − deep, what depth saves)."""
    require_variants(frame, [shallow, deep], "depth_necessity")
    if "seed" not in frame:  # a single-seed frame (a notebook run without seeds)
        frame = frame.assign(seed=0)
    rows = []
    by = [by] if isinstance(by, str) else list(by)
    if not by:
        frame, by = frame.assign(knob="all"), ["knob"]
    sign = -1.0 if lower_is_better else 1.0
    for knob, group in frame[frame["variant"].isin([shallow, deep])].groupby(by, sort=False):
        wide = group.pivot_table(index="seed", columns="variant", values=value).dropna()
        gap = seed_interval(sign * (wide[deep] - wide[shallow]), level)
        deep_acc, shallow_acc = seed_interval(wide[deep], level), seed_interval(wide[shallow], level)
        if gap.n >= 2 and gap.low > 0 and gap.mean >= min_gap:
            needed = "yes"
        elif gap.n >= 2 and gap.high < min_gap:
            needed = "no"
        else:
            needed = "unclear"
        row = {**dict(zip(by, knob)), "seeds": gap.n, f"{shallow} {value}": shallow_acc.mean,
               f"{deep} {value}": deep_acc.mean, "gap": gap.mean, "gap_low": gap.low, "gap_high": gap.high,
               "gap_sd": gap.sd, "needed": needed, "helps": bool(gap.n >= 2 and gap.low > 0)}
        if chance is not None:
            row["deep_above_chance"] = bool(deep_acc.n >= 2 and deep_acc.low > chance)
        rows.append(row)
    return pd.DataFrame(rows)


def summarize_necessity(table: pd.DataFrame) -> str:
    """One line: at which knob values depth is needed, e.g. 'depth needed at knob 3, 4 (of 1..4)', and
    where it only helps (the gap's interval above 0 without the gap reaching MIN_GAP surely)."""
    keys = [c for c in table.columns[: list(table.columns).index("seeds")]]  # the knob columns
    knobs = [" ".join(map(str, row)) for row in table[keys].itertuples(index=False)]
    needed = [k for k, n in zip(knobs, table["needed"]) if n == "yes"]
    helps = [k for k, n, h in zip(knobs, table["needed"], table.get("helps", [False] * len(knobs))) if h and n != "yes"]
    span = f"{knobs[0]}..{knobs[-1]}" if knobs else "none"
    line = (f"depth needed at knob {', '.join(map(str, needed))} (of {span})" if needed else
            f"depth needed at no knob value (of {span})")
    if helps:  # the gap's interval is above 0 but the gap is under MIN_GAP (or its interval reaches below it)
        line += f"; depth helps, by less than {MIN_GAP:.2f} or not surely more, at knob {', '.join(map(str, helps))}"
    return line
