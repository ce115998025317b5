"""The paper's four-stage feature regression (A.8, Tables 2 and 6–10), with statsmodels OLS.

    result = staged_regression(frame, target="expected_depth", features=[...], categorical="N")

1. Multicollinearity. For each feature pair with |Pearson r| above `corr_threshold`, taken from the
   most correlated pair down, drop the feature less correlated with the target. Then drop features
   one at a time, highest VIF first, until every VIF is at or below `vif_threshold`.
2. Ablation. ΔR²(f) = R²(all kept) − R²(all kept but f).
3. Selection. Keep the features with ΔR² ≥ `delta_r2_threshold` and refit the OLS: coefficients,
   standard errors, p-values and ΔR² in the final model.
4. Categorical refit (when `categorical` is among the selected features). That feature enters as
   C(categorical) (one-hot, first level as baseline); each other feature's ΔR² in this model is
   reported next to its ΔR² in the linear model, with their ratio (categorical / linear).

The thresholds were lost in the paper's extraction. These defaults are ours: |r| > 0.8, VIF > 5
and ΔR² < 0.5% (0.005). Every stage's decisions come back as DataFrames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class StagedRegression:
    correlation: pd.DataFrame   # dropped pairs: kept, dropped, abs_r, kept_r_target, dropped_r_target
    vif: pd.DataFrame           # feature, vif (last computed), kept
    ablation: pd.DataFrame      # feature, delta_r2 (stage 2, all features that survived stage 1)
    final: pd.DataFrame         # feature, coef, se, p, delta_r2 (stage 3); the intercept included
    r2: float                   # R² of the stage-3 model
    categorical: pd.DataFrame | None  # feature, delta_r2_linear, delta_r2_categorical, ratio
    r2_categorical: float | None
    selected: list[str]


def _formula(target: str, terms: list[str]) -> str:
    return f"Q('{target}') ~ " + (" + ".join(terms) if terms else "1")


def _term(feature: str, categorical: str | None) -> str:
    return f"C(Q('{feature}'))" if feature == categorical else f"Q('{feature}')"


def _r2(frame, target, features, categorical=None) -> float:
    import statsmodels.formula.api as smf

    return float(smf.ols(_formula(target, [_term(f, categorical) for f in features]), frame).fit().rsquared)


def _delta_r2(frame, target, features, categorical=None) -> dict[str, float]:
    full = _r2(frame, target, features, categorical)
    return {f: full - _r2(frame, target, [g for g in features if g != f], categorical) for f in features}


def correlation_filter(frame: pd.DataFrame, target: str, features: list[str], threshold: float):
    """(kept features, DataFrame of the dropped pairs): of each pair with |r| > threshold, the one
    less correlated with the target goes."""
    corr = frame[features].corr().abs()
    to_target = frame[features].corrwith(frame[target]).abs()
    pairs = sorted(((corr.loc[a, b], a, b) for i, a in enumerate(features) for b in features[i + 1:]
                    if corr.loc[a, b] > threshold), reverse=True)
    dropped, rows = set(), []
    for r, a, b in pairs:
        if a in dropped or b in dropped:
            continue
        keep, drop = (a, b) if to_target[a] >= to_target[b] else (b, a)
        dropped.add(drop)
        rows.append({"kept": keep, "dropped": drop, "abs_r": r, "kept_r_target": to_target[keep],
                     "dropped_r_target": to_target[drop]})
    columns = ["kept", "dropped", "abs_r", "kept_r_target", "dropped_r_target"]
    return [f for f in features if f not in dropped], pd.DataFrame(rows, columns=columns)


def vif_filter(frame: pd.DataFrame, features: list[str], threshold: float):
    """(kept features, DataFrame feature / vif / kept): the highest VIF above the threshold goes,
    one at a time, VIFs recomputed after each (a constant column included)."""
    from statsmodels.stats.outliers_influence import variance_inflation_factor

    kept, last = list(features), {}
    while len(kept) > 1:
        X = np.column_stack([np.ones(len(frame)), frame[kept].to_numpy(dtype=float)])
        vifs = {f: float(variance_inflation_factor(X, i + 1)) for i, f in enumerate(kept)}
        last.update(vifs)
        worst = max(vifs, key=vifs.get)
        if vifs[worst] <= threshold:
            break
        kept.remove(worst)
    table = pd.DataFrame([{"feature": f, "vif": last.get(f, 1.0), "kept": f in kept} for f in features])
    return kept, table


def staged_regression(frame: pd.DataFrame, target: str, features: list[str], categorical: str | None = None,
                      corr_threshold: float = 0.8, vif_threshold: float = 5.0,
                      delta_r2_threshold: float = 0.005) -> StagedRegression:
    """The four stages of A.8 on `frame` (one row per answer token); see the module docstring."""
    import statsmodels.formula.api as smf

    missing = [c for c in [target, *features] if c not in frame.columns]
    if missing:
        raise ValueError(f"the frame lacks the column(s) {missing}; it has {list(frame.columns)}.")
    if categorical is not None and categorical not in features:
        raise ValueError(f"categorical={categorical!r} must be one of the features {features}.")
    frame = frame[[target, *features]].dropna()
    if len(frame) <= len(features) + 1:
        raise ValueError(f"{len(frame)} complete rows cannot fit {len(features)} features; dump more examples.")
    constant = [f for f in features if frame[f].nunique() < 2]
    if constant:
        raise ValueError(f"feature(s) {constant} are constant in these rows: drop them or add varied data.")

    kept, corr_table = correlation_filter(frame, target, features, corr_threshold)
    kept, vif_table = vif_filter(frame, kept, vif_threshold)
    ablation = _delta_r2(frame, target, kept)
    ablation_table = pd.DataFrame({"feature": list(ablation), "delta_r2": list(ablation.values())})
    selected = [f for f in kept if ablation[f] >= delta_r2_threshold]

    fit = smf.ols(_formula(target, [_term(f, None) for f in selected]), frame).fit()
    final_delta = _delta_r2(frame, target, selected)
    names = ["Intercept", *selected]
    params = fit.params.to_numpy()
    final = pd.DataFrame({"feature": names, "coef": params, "se": fit.bse.to_numpy(), "p": fit.pvalues.to_numpy(),
                          "delta_r2": [np.nan, *(final_delta[f] for f in selected)]})

    cat_table, r2_cat = None, None
    if categorical is not None and categorical in selected:
        cat_delta = _delta_r2(frame, target, selected, categorical)
        r2_cat = _r2(frame, target, selected, categorical)
        others = [f for f in selected if f != categorical]
        cat_table = pd.DataFrame({"feature": others, "delta_r2_linear": [final_delta[f] for f in others],
                                  "delta_r2_categorical": [cat_delta[f] for f in others]})
        cat_table["ratio"] = cat_table["delta_r2_categorical"] / cat_table["delta_r2_linear"]
    return StagedRegression(corr_table, vif_table, ablation_table, final, float(fit.rsquared), cat_table, r2_cat,
                            selected)
