"""The paper's claims as verdicts: one row per claim, our statistic with its interval over seeds.

Each claim has a per-seed statistic computed from a result frame (the frames `compare_deciders`,
`evaluate_clrs`, `pareto_sweep` and `checkpoint_eval` write), the null value it is compared with,
and the side the paper puts it on. `verdict` applies one rule to every claim:

    holds         the 95% interval over seeds lies entirely on the paper's side of the null
    reversed      it lies entirely on the other side
    inconclusive  it covers the null, or fewer than 2 seeds give a value (said so in the row)

How examples enter: each seed's statistic is computed on that seed's fixed evaluation set, so the
examples within a seed are averaged before the interval; seeds are the replicates
(`intervals.seed_interval`, Student t). Every row also states the depth-necessity condition it was
measured under (`depth_necessity`): a trend in d̄ where fixed-1 is as accurate as fixed-D says how
a model spends compute, not that the task needs it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .depth_necessity import DEEP, SHALLOW, depth_necessity, require_variants, summarize_necessity
from ..intervals import Interval, seed_interval, spearman_or_nan

E, O = "ANIRA-E", "ANIRA-O"
RULE = ("holds: the 95% interval over seeds lies on the paper's side of the null; reversed: on the other "
        "side; inconclusive: it covers the null, or fewer than 2 seeds")
ACCURACY_TOLERANCE = 0.05  # "at equal accuracy": O at most this much less accurate than E (upper bound)


@dataclass(frozen=True)
class Claim:
    """A claim of the paper: its statement, the figure and number it rests on, the per-seed statistic
    we measure, the null value and the paper's side of it (+1: above, -1: below)."""
    key: str
    statement: str
    paper: str
    statistic: str
    null: float = 0.0
    side: int = 1


CLAIMS = {c.key: c for c in [
    Claim("depth_rises", "d̄ rises with the knob", "Fig. 2 / 8 / 3: d̄ grows with ℓ, n, k, size",
          "Spearman(knob, d̄) per seed"),
    Claim("o_below_e", "ANIRA-O spends less than ANIRA-E at equal accuracy", "Fig. 2: O below E at every knob",
          "mean over knobs of d̄_E − d̄_O per seed (equal accuracy: E − O accuracy upper bound ≤ 0.05)"),
    Claim("clrs_unseen_drop", "CLRS accuracy drops at sizes not seen in training", "Fig. 3 / 7",
          "accuracy at training sizes − at unseen sizes, per seed (mean over variants)"),
    Claim("easy_to_hard", "easier knob values are learnt first", "Fig. 4 / 5",
          "Spearman(knob, first step reaching the accuracy level) per seed (mean over variants)"),
    Claim("two_phases", "two phases: learning, then compute reduction", "Fig. 4 / 5",
          "d̄ at its peak − d̄ at the last checkpoint, per seed (mean over variants)"),
    Claim("all_drop_past_train", "past L_train every model's accuracy drops", "Fig. 9",
          "smallest drop over variants of accuracy (ℓ ≤ L_train) − accuracy (ℓ > L_train), per seed"),
    Claim("o_most_graceful", "past L_train ANIRA-O degrades most gracefully", "Fig. 9",
          "accuracy past L_train of O − the best other variant's, per seed"),
    Claim("tau_trades", "τ trades accuracy for compute", "Fig. 10: accuracy and d̄ both rise with τ",
          "min(Spearman(τ, d̄), Spearman(τ, accuracy)) over the τ sweep, per seed"),
    Claim("need_rises", "the knob is a difficulty: the depth a token needs rises with it",
          "implicit in §5 (knobs chosen as difficulty)",
          "Spearman(knob, mean sufficient depth of fixed-D's answer tokens) per seed"),
    Claim("allocation_tracks_need", "compute tracks need, token by token (our question, not the paper's)",
          "§6: d̄ tracks difficulty proxies",
          "Spearman(chosen exit depth, sufficient depth) over solved answer tokens, per seed"),
    Claim("brevo_e_structural", "BREVO: E's compute follows structure, O's the algorithm", "Table 2 (ΔR²)",
          "not measured yet"),
    Claim("mano_parse_state", "MANO question tokens track parse state", "Fig. 6", "not measured yet"),
    Claim("table1_signs", "Table 1's correlation signs (LANO proxies)", "Table 1", "not measured yet"),
]}


def verdict(values, null: float = 0.0, side: int = 1, level: float = 0.95) -> tuple[Interval, str]:
    """The interval of per-seed `values` and the verdict of `RULE` against `null` on the paper's `side`."""
    if side not in (1, -1):
        raise ValueError(f"side must be +1 (the paper says above the null) or -1 (below), got {side}.")
    iv = seed_interval(values, level)
    if iv.n < 2:
        return iv, "inconclusive (single seed)" if iv.n == 1 else "inconclusive (no seeds)"
    above, below = iv.low > null, iv.high < null
    if (above and side == 1) or (below and side == -1):
        return iv, "holds"
    if above or below:
        return iv, "reversed"
    return iv, "inconclusive"


def claim_row(claim: Claim | str, per_seed, scope: str, condition: str, level: float = 0.95,
              override: str | None = None) -> dict:
    """One row of the verdict table. per_seed: the statistic per seed (a Series or list). override:
    a verdict a claim's extra condition forces (e.g. 'inconclusive (accuracies differ)')."""
    claim = CLAIMS[claim] if isinstance(claim, str) else claim
    iv, word = verdict(list(per_seed), claim.null, claim.side, level)
    if override is not None and word == "holds":
        word = override
    return {"claim": claim.key, "scope": scope, "paper": f"{claim.statement} ({claim.paper})",
            "statistic": claim.statistic, "value": iv.mean, "low": iv.low, "high": iv.high, "seeds": iv.n,
            "verdict": word, "condition": condition}


def not_measured(claim: str, scope: str, why: str) -> dict:
    """A row for a claim we have no runs for (inconclusive, with the reason)."""
    c = CLAIMS[claim]
    return {"claim": c.key, "scope": scope, "paper": f"{c.statement} ({c.paper})", "statistic": c.statistic,
            "value": np.nan, "low": np.nan, "high": np.nan, "seeds": 0, "verdict": "not measured",
            "condition": why}


# ------------------------------------------------------------------------ per-seed statistics of frames

def _require_columns(frame: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} needs column(s) {missing}; the frame has {list(frame.columns)}.")


def depth_trend_by_seed(frame: pd.DataFrame, variant: str) -> pd.Series:
    """Spearman(knob, d̄) of `variant` per seed; 0 where d̄ is the same at every knob (an adaptive model
    that spends one depth on every knob measured no rise, which is a result, not a missing seed)."""
    _require_columns(frame, ["seed", "variant", "knob", "mean_depth"], "depth_trend_by_seed")
    require_variants(frame, [variant], "'d̄ rises with the knob'")
    rows = frame[frame["variant"] == variant]

    def trend(g):
        if g["knob"].nunique() >= 2 and g["mean_depth"].nunique() == 1:
            return 0.0
        return spearman_or_nan(g["knob"], g["mean_depth"])
    return rows.groupby("seed").apply(trend, include_groups=False)


def constant_depth(frame: pd.DataFrame, variant: str) -> bool:
    """Whether `variant` spent one d̄ on every knob in every seed (its 'rise' is 0 by construction)."""
    rows = frame[frame["variant"] == variant]
    return len(rows) > 0 and bool((rows.groupby("seed")["mean_depth"].nunique() == 1).all())


def o_below_e_by_seed(frame: pd.DataFrame) -> pd.DataFrame:
    """Per seed: depth_gap = mean over knobs of d̄_E − d̄_O, accuracy_gap = the same of accuracy."""
    _require_columns(frame, ["seed", "variant", "knob", "accuracy", "mean_depth"], "o_below_e_by_seed")
    require_variants(frame, [E, O], "'O spends less than E'")
    means = frame[frame["variant"].isin([E, O])].groupby(["seed", "variant"])[["mean_depth", "accuracy"]].mean()
    wide = means.unstack("variant").dropna()
    return pd.DataFrame({"depth_gap": wide[("mean_depth", E)] - wide[("mean_depth", O)],
                         "accuracy_gap": wide[("accuracy", E)] - wide[("accuracy", O)]})


def unseen_drop_by_seed(frame: pd.DataFrame) -> pd.Series:
    """CLRS: accuracy at training sizes − at unseen sizes, per seed, averaged over variants."""
    _require_columns(frame, ["variant", "train", "accuracy"], "unseen_drop_by_seed")
    if "seed" not in frame:
        frame = frame.assign(seed=0)
    if frame["train"].nunique() < 2:
        raise ValueError("the CLRS frame needs both training and unseen sizes (column 'train' True and False).")
    by = frame.groupby(["seed", "variant", "train"])["accuracy"].mean().unstack("train")
    return (by[True] - by[False]).groupby("seed").mean()


def extrapolation_by_seed(frame: pd.DataFrame, train_max: int) -> pd.DataFrame:
    """Per seed × variant: accuracy at knobs ≤ train_max (inside), past it (past) and drop = inside − past."""
    _require_columns(frame, ["seed", "variant", "knob", "accuracy"], "extrapolation_by_seed")
    if not (frame["knob"] > train_max).any() or not (frame["knob"] <= train_max).any():
        raise ValueError(f"the frame needs knobs on both sides of L_train = {train_max}; it has "
                         f"{sorted(frame['knob'].unique())}.")
    inside = frame[frame["knob"] <= train_max].groupby(["seed", "variant"])["accuracy"].mean()
    past = frame[frame["knob"] > train_max].groupby(["seed", "variant"])["accuracy"].mean()
    return pd.DataFrame({"inside": inside, "past": past, "drop": inside - past}).reset_index()


def all_drop_by_seed(table: pd.DataFrame) -> pd.Series:
    """The smallest drop over variants, per seed (positive: every model lost accuracy)."""
    return table.groupby("seed")["drop"].min()


def o_most_graceful_by_seed(table: pd.DataFrame) -> pd.Series:
    """O's accuracy past L_train − the best other variant's, per seed."""
    require_variants(table, [O], "'O degrades most gracefully'")
    if table["variant"].nunique() < 2:
        raise ValueError("'O degrades most gracefully' needs another variant to compare with.")
    out = {}
    for seed, g in table.groupby("seed"):
        past = g.set_index("variant")["past"]
        if O in past:
            out[seed] = past[O] - past.drop(O).max()
    return pd.Series(out, dtype=float)


def tau_trade_by_seed(frame: pd.DataFrame) -> pd.Series:
    """Over the threshold rows of a Pareto sweep: min(Spearman(τ, d̄), Spearman(τ, accuracy)) per seed."""
    _require_columns(frame, ["tau", "accuracy", "mean_depth"], "tau_trade_by_seed")
    rows = frame[frame["tau"].notna()]
    if "seed" not in rows:
        rows = rows.assign(seed=0)
    return rows.groupby("seed").apply(lambda g: min(spearman_or_nan(g["tau"], g["mean_depth"]),
                                                    spearman_or_nan(g["tau"], g["accuracy"])), include_groups=False)


def dynamics_by_seed(frame: pd.DataFrame, level: float = 0.9) -> pd.DataFrame:
    """From a checkpoint evaluation (run, decider, train_seed, step, knob, accuracy, mean_depth):
    per seed, the easy-to-hard Spearman and the two-phase d̄ drop, each averaged over the seed's runs."""
    from .dynamics import first_step_reaching, two_phases

    _require_columns(frame, ["train_seed"], "dynamics_by_seed")
    seed_of = frame.groupby("run")["train_seed"].first()
    first = first_step_reaching(frame, level).groupby("run")["spearman"].first()
    drop = two_phases(frame).set_index("run")["depth_drop"]
    runs = pd.DataFrame({"seed": seed_of, "easy_to_hard": first, "depth_drop": drop})
    return runs.groupby("seed")[["easy_to_hard", "depth_drop"]].mean()


def need_by_seed(records_by_seed: dict) -> pd.Series:
    """{seed: fixed-D dump records (format 3)} -> Spearman(knob, mean sufficient depth) per seed."""
    from ..evaluation.sufficient_depth import allocation_efficiency

    out = {}
    for seed, records in records_by_seed.items():
        eff = allocation_efficiency(records)
        out[seed] = spearman_or_nan(eff["knob"], eff["oracle_depth"])
    return pd.Series(out, dtype=float)


def tracking_by_seed(records_by_seed: dict) -> pd.Series:
    """{seed: dump records} -> Spearman(chosen, sufficient depth) over every solved answer token, per seed;
    0 where the model chose one depth for every token while their needs differ (no tracking, measured)."""
    from ..evaluation.sufficient_depth import token_table

    out = {}
    for seed, records in records_by_seed.items():
        t = token_table(records).dropna(subset=["sufficient_depth"])
        one_depth = len(t) >= 2 and t["exit_depth"].nunique() == 1 and t["sufficient_depth"].nunique() > 1
        out[seed] = 0.0 if one_depth else spearman_or_nan(t["exit_depth"], t["sufficient_depth"])
    return pd.Series(out, dtype=float)


# --------------------------------------------------------------------------- run folders

def read_comparison(path: str | Path, task: str, variants=(), file: str = "results.csv") -> pd.DataFrame:
    """The result frame of a run folder (compare_deciders' `results.csv`), after checking that every
    run under it trained `task` and that the frame has `variants`: a folder of another task, without
    results or missing a variant gets one line naming it."""
    path = Path(path)
    if not (path / file).is_file():
        raise FileNotFoundError(f"{path / file} does not exist; run the comparison into {path} first "
                                "(make findings runs every one the verdicts need).")
    for config in sorted(path.glob("**/train_config.yaml")):
        trained = (yaml.safe_load(config.read_text()) or {}).get("task")
        if trained != task:
            raise ValueError(f"{config.parent} trained task {trained!r}, but this claim reads {task!r} runs; "
                             f"point it at a {task} run folder.")
    frame = pd.read_csv(path / file)
    require_variants(frame, variants, f"{path}")
    return frame


# --------------------------------------------------------------------------- rows from result frames

def necessity_condition(frame: pd.DataFrame, deep: str = DEEP) -> str:
    """The depth-necessity condition of a comparison frame, in words."""
    if not {SHALLOW, deep} <= set(frame["variant"]):
        return f"depth necessity not measured (no {SHALLOW} / {deep} runs)"
    return summarize_necessity(depth_necessity(frame, deep=deep))


def comparison_rows(frame: pd.DataFrame, scope: str, level: float = 0.95) -> list[dict]:
    """The rows a knob comparison (compare_deciders' results.csv) supports: d̄ rises with the knob for
    E and O, and O below E at equal accuracy, each under the frame's depth-necessity condition."""
    condition = necessity_condition(frame)
    rows = []
    for v in (E, O):
        if v in set(frame["variant"]):
            row = claim_row("depth_rises", depth_trend_by_seed(frame, v), f"{scope}, {v}", condition, level)
            if constant_depth(frame, v):
                row["verdict"] = "inconclusive (d̄ the same at every knob, in every seed)"
            rows.append(row)
    if {E, O} <= set(frame["variant"]):
        gaps = o_below_e_by_seed(frame)
        accuracy = seed_interval(gaps["accuracy_gap"], level)
        equal = accuracy.n >= 2 and accuracy.high <= ACCURACY_TOLERANCE
        rows.append(claim_row("o_below_e", gaps["depth_gap"], scope,
                              f"{condition}; E − O accuracy {accuracy}", level,
                              override=None if equal else "inconclusive (accuracies not shown equal)"))
    return rows


def extrapolation_rows(frame: pd.DataFrame, train_max: int, scope: str, level: float = 0.95) -> list[dict]:
    """Fig. 9's two claims from an extrapolation frame (four variants, knobs past train_max)."""
    table = extrapolation_by_seed(frame, train_max)
    inside = frame[frame["knob"] <= train_max]  # the deep model here is Fig. 9's fixed-depth baseline
    condition = f"trained on knob ≤ {train_max}; {necessity_condition(inside, deep='fixed-depth')}"
    return [claim_row("all_drop_past_train", all_drop_by_seed(table), scope, condition, level),
            claim_row("o_most_graceful", o_most_graceful_by_seed(table), scope, condition, level)]


def verdict_table(rows: list[dict]) -> pd.DataFrame:
    """The rows as the verdict frame (columns in a fixed order)."""
    columns = ["claim", "scope", "paper", "statistic", "value", "low", "high", "seeds", "verdict", "condition"]
    return pd.DataFrame(rows, columns=columns)
