"""The A.8 staged regression on synthetic data with known coefficients."""

import numpy as np
import pandas as pd
import pytest

from anira_lib.analysis.regression import staged_regression

TRUE = {"Intercept": 0.5, "N": 0.3, "hub": 1.2, "frontier": -0.7}


def synthetic(n=4000, seed=0):
    """target = a linear function of N, hub, frontier + noise; hub_copy duplicates hub (collinear),
    noise_feature is irrelevant."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"N": rng.integers(3, 11, n).astype(float), "hub": rng.normal(0, 1, n),
                       "frontier": rng.normal(0, 1, n), "noise_feature": rng.normal(0, 1, n)})
    df["hub_copy"] = df["hub"] + rng.normal(0, 0.1, n)
    df["expected_depth"] = (TRUE["Intercept"] + TRUE["N"] * df["N"] + TRUE["hub"] * df["hub"]
                            + TRUE["frontier"] * df["frontier"] + rng.normal(0, 0.5, n))
    return df


def test_recovers_coefficients_drops_the_duplicate_and_gives_the_irrelevant_feature_no_r2():
    df = synthetic()
    res = staged_regression(df, "expected_depth", ["N", "hub", "hub_copy", "frontier", "noise_feature"],
                            categorical="N")
    # stage 1: the collinear copy goes, the original (nearer the target) stays; VIFs are then ~1
    assert res.correlation[["kept", "dropped"]].values.tolist() == [["hub", "hub_copy"]]
    assert res.vif["kept"].sum() == 4 and res.vif.loc[res.vif.kept, "vif"].max() < 1.1
    # stage 2: the irrelevant feature adds nothing
    ablation = dict(zip(res.ablation.feature, res.ablation.delta_r2))
    assert ablation["noise_feature"] < 1e-3 and min(ablation["hub"], ablation["frontier"], ablation["N"]) > 0.05
    # stage 3: it is not selected; the others' coefficients lie within 3 standard errors of the truth
    assert res.selected == ["N", "hub", "frontier"]
    final = res.final.set_index("feature")
    for name, value in TRUE.items():
        assert abs(final.loc[name, "coef"] - value) < 3 * final.loc[name, "se"], name
    noise_var = 0.25
    assert res.r2 == pytest.approx(1 - noise_var / df["expected_depth"].var(), abs=0.02)
    # stage 4: N is truly linear, so as a category it explains the same and the others' ΔR² keep
    assert res.r2_categorical == pytest.approx(res.r2, abs=0.005)
    assert np.allclose(res.categorical["ratio"], 1.0, atol=0.05)
    assert list(res.categorical.feature) == ["hub", "frontier"]


def test_a_categorical_effect_shows_in_the_refit():
    df = synthetic(seed=1)
    df["expected_depth"] += np.where(df["N"] % 2 == 0, 1.0, 0.0)  # not linear in N
    res = staged_regression(df, "expected_depth", ["N", "hub", "frontier"], categorical="N",
                            delta_r2_threshold=0.0)
    assert res.r2_categorical > res.r2 + 0.05


def test_bad_inputs_name_the_problem():
    df = synthetic(n=50)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['depth'\]"):
        staged_regression(df, "depth", ["N"])
    with pytest.raises(ValueError, match="must be one of the features"):
        staged_regression(df, "expected_depth", ["hub"], categorical="N")
    with pytest.raises(ValueError, match="constant"):
        staged_regression(df.assign(flat=1.0), "expected_depth", ["hub", "flat"])
    with pytest.raises(ValueError, match="cannot fit"):
        staged_regression(df.head(3), "expected_depth", ["N", "hub", "frontier"])
