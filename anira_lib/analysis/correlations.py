"""Correlation analyses between per-token compute and difficulty proxies (paper Table 1).

`proxy_correlations` pairs a model's per-token expected depth (W, L) with each proxy (W, L) over the
positions where both are defined, and reports Spearman and Pearson coefficients with percentile
bootstrap intervals (resampling windows, so tokens of one window stay together).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr

from .prefix_parser import FEATURES

# Paper Table 1: correlation of expected depth with each proxy on LANO.
PAPER_TABLE1 = {
    "ANIRA-E": {"active_gamma_slice": 0.666, "active_beta_end": -0.264, "ops_add": 0.618, "ops_mul": 0.645},
    "ANIRA-O": {"active_gamma_slice": 0.456, "active_beta_end": -0.111, "ops_add": 0.463, "ops_mul": 0.490},
}
PROXY_NAMES = {"active_gamma_slice": "expansion", "active_beta_end": "convergence",
               "ops_add": "additions", "ops_mul": "multiplications"}


def _coefficients(x, y):
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    return float(spearmanr(x, y).statistic), float(pearsonr(x, y).statistic)


def correlate(depth: np.ndarray, proxy: np.ndarray, n_boot: int = 1000, seed: int = 0,
              level: float = 0.95) -> dict:
    """Spearman and Pearson of depth vs proxy over positions where both are finite; intervals from
    `n_boot` bootstrap resamples of rows (windows). depth, proxy: (W, L)."""
    depth, proxy = np.atleast_2d(np.asarray(depth, float)), np.atleast_2d(np.asarray(proxy, float))
    if depth.shape != proxy.shape:
        raise ValueError(f"depth {depth.shape} and proxy {proxy.shape} must have the same (windows, length) shape.")
    ok = np.isfinite(depth) & np.isfinite(proxy)
    if ok.sum() < 3:
        raise ValueError("fewer than 3 positions have both a depth and a proxy value.")
    spearman, pearson = _coefficients(depth[ok], proxy[ok])
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        rows = rng.integers(0, depth.shape[0], depth.shape[0])
        m = ok[rows]
        boot.append(_coefficients(depth[rows][m], proxy[rows][m]))
    boot = np.array(boot).reshape(-1, 2)
    percentiles = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]

    def interval(col):
        return [float(v) for v in np.nanpercentile(boot[:, col], percentiles)] if n_boot else [float("nan")] * 2

    return {"spearman": spearman, "spearman_ci": interval(0), "pearson": pearson, "pearson_ci": interval(1),
            "n_tokens": int(ok.sum())}


def proxy_correlations(depths: dict[str, np.ndarray], proxies: dict[str, np.ndarray], n_boot: int = 1000,
                       seed: int = 0) -> list[dict]:
    """Table 1 rows: one per (variant, proxy), with the paper's value beside ours."""
    rows = []
    for variant, depth in depths.items():
        for feature in FEATURES:
            r = correlate(depth, proxies[feature], n_boot=n_boot, seed=seed)
            rows.append({"variant": variant, "proxy": feature, "name": PROXY_NAMES[feature], **r,
                         "paper": PAPER_TABLE1.get(variant, {}).get(feature, float("nan"))})
    return rows


def format_table(rows: list[dict]) -> str:
    """Table 1 as text: ours (Spearman [CI], Pearson) next to the paper's coefficient."""
    lines = [f"{'variant':8} {'proxy':16} {'Spearman':>8} {'95% CI':>16} {'Pearson':>8} {'paper':>7}"]
    for r in rows:
        ci = "[{:+.2f}, {:+.2f}]".format(*r["spearman_ci"])
        lines.append(f"{r['variant']:8} {r['name']:16} {r['spearman']:+8.3f} {ci:>16} {r['pearson']:+8.3f} "
                     f"{r['paper']:+7.3f}")
    return "\n".join(lines)
