"""Figures. Each takes plain rows (lists of dicts from `evaluate`) and writes a file under figures/."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

VARIANT_STYLE = {"ANIRA-E": dict(color="tab:blue", marker="o"), "ANIRA-O": dict(color="tab:orange", marker="s"),
                 "fixed-depth": dict(color="tab:gray", marker="^"), "non-recurrent": dict(color="tab:green", marker="v"),
                 # the depth-necessity baselines: fixed depth at one iteration and at D
                 "fixed-1": dict(color="0.55", marker="v", ls="--"), "fixed-D": dict(color="0.25", marker="^", ls="--")}


FIGURE_DPI = 200  # raster figures; a PNG also gets a vector PDF beside it for papers and slides


def save_figure(fig, path: str | Path) -> Path:
    """Save atomically (write a sibling temp file, then rename): the path's format at FIGURE_DPI, and
    for a `.png` the same figure as `.pdf` beside it. Returns `path`."""
    from ..files import tmp_beside

    path = Path(path)
    targets = [path] + ([path.with_suffix(".pdf")] if path.suffix.lower() == ".png" else [])
    for target in targets:
        tmp = tmp_beside(target)
        try:
            fig.savefig(tmp, format=target.suffix.lstrip(".") or "png", dpi=FIGURE_DPI, bbox_inches="tight")
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
    return path


def finish_figure(fig, path):
    """Lay the figure out and save it to `path` (if given); returns the figure."""
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_knob_curves(results: dict[str, list[dict]], knob_label: str, title: str = "",
                     train_max: int | None = None, path: str | Path | None = None):
    """Accuracy (top) and answer-token d̄ (bottom) per knob value, one line per variant (Fig. 2 style).

    results: {"ANIRA-E": rows, ...}, rows with keys knob, accuracy, mean_depth (and, over several seeds,
    accuracy_min / _max and mean_depth_min / _max: drawn as a band). train_max: L_train, marked."""
    fig, (ax_acc, ax_d) = plt.subplots(2, 1, figsize=(5.2, 5.6), sharex=True)
    for name, rows in results.items():
        style = VARIANT_STYLE.get(name, {})
        knobs = [r["knob"] for r in rows]
        ax_acc.plot(knobs, [100 * r["accuracy"] for r in rows], label=name, **style)
        ax_d.plot(knobs, [r["mean_depth"] for r in rows], label=name, **style)
        if rows and "accuracy_min" in rows[0]:  # several seeds: their min–max around the mean
            for ax, key, scale in ((ax_acc, "accuracy", 100), (ax_d, "mean_depth", 1)):
                ax.fill_between(knobs, [scale * r[f"{key}_min"] for r in rows], [scale * r[f"{key}_max"] for r in rows],
                                color=style.get("color"), alpha=0.15, lw=0)
    for ax in (ax_acc, ax_d):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if train_max is not None:
            ax.axvline(train_max + 0.5, color="k", ls=":", lw=1)
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_ylim(-2, 102)
    ax_d.set_ylabel("mean depth d̄ (answer tokens)")
    ax_d.set_xlabel(knob_label)
    ax_acc.legend(loc="lower left")
    if title:
        ax_acc.set_title(title)
    return finish_figure(fig, path)


def plot_oracle_vs_chosen(frames: dict, knob_labels: dict | None = None, path: str | Path | None = None,
                          title: str = ""):
    """Sufficient against chosen depth per knob, one panel per task (`experiments.run_efficiency`
    frames by task): each variant's chosen d̄ (solid) and the mean sufficient depth of its own answer
    tokens (dashed), on one shared depth axis."""
    fig, axes = plt.subplots(1, len(frames), figsize=(4.2 * len(frames), 3.4), squeeze=False, sharey=True)
    for ax, (task, frame) in zip(axes[0], frames.items()):
        for variant, g in frame.groupby("variant", sort=False):
            style = {k: v for k, v in VARIANT_STYLE.get(variant, {}).items() if k != "ls"}
            x = [str(k) for k in g["knob"]]
            if variant in ("ANIRA-E", "ANIRA-O"):
                ax.plot(x, g["chosen_depth"], label=f"{variant} chosen", **style)
            ax.plot(x, g["oracle_depth"], ls="--", alpha=0.8, label=f"{variant} sufficient", **style)
        ax.set(xlabel=(knob_labels or {}).get(task, "knob"), title=task)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("mean depth (answer tokens)")
    axes[0, -1].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title)
    return finish_figure(fig, path)


def plot_sentence_proxies(tokens, depths: dict[str, "np.ndarray"], proxies: dict[str, "np.ndarray"],
                          path: str | Path | None = None, title: str = ""):
    """Per-token expected depth of each variant (top) and each proxy (one panel each) along one
    sentence. depths/proxies: {name: (L,)} arrays aligned with `tokens`."""
    import numpy as np

    fig, axes = plt.subplots(1 + len(proxies), 1, figsize=(10, 1.6 * (1 + len(proxies)) + 0.6), sharex=True)
    x = np.arange(len(tokens))
    for name, d in depths.items():
        axes[0].plot(x, d, lw=1, label=name, color=VARIANT_STYLE.get(name, {}).get("color"))
    axes[0].set_ylabel("E[depth]")
    axes[0].legend(loc="upper right", fontsize=8)
    for ax, (name, v) in zip(axes[1:], proxies.items()):
        ax.plot(x, v, lw=1, color="tab:gray")
        ax.set_ylabel(name, fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("token position")
    if title:
        axes[0].set_title(title)
    return finish_figure(fig, path)


def plot_task_size_grid(results: dict[str, list[dict]], tasks: list[str], path: str | Path | None = None,
                        title: str = ""):
    """CLRS style (Fig. 3 / 7): one column per task, accuracy (top) and answer d̄ (bottom) vs input size.

    results: {"ANIRA-E": rows, ...}, rows with task, size, accuracy, mean_depth, n and train (size is a
    training size); algorithms of one task are pooled (weighted by n). Training sizes are marked."""
    import numpy as np

    # one y-range per row: panels of different ranges make a flat line in one look like a trend beside another
    fig, axes = plt.subplots(2, len(tasks), figsize=(2.6 * len(tasks) + 0.6, 4.6), squeeze=False, sharex="col",
                             sharey="row")
    for col, task in enumerate(tasks):
        ax_acc, ax_d = axes[0, col], axes[1, col]
        train_sizes = set()
        for name, rows in results.items():
            mine = [r for r in rows if r["task"] == task]
            sizes = sorted({r["size"] for r in mine})
            train_sizes |= {r["size"] for r in mine if r["train"]}
            pooled = []
            for s in sizes:
                at = [r for r in mine if r["size"] == s]
                w = np.array([r["n"] for r in at], dtype=float)
                pooled.append((np.average([r["accuracy"] for r in at], weights=w),
                               np.average([r["mean_depth"] for r in at], weights=w)))
            style = dict(VARIANT_STYLE.get(name, {}), markersize=3)
            ax_acc.plot(sizes, [100 * a for a, _ in pooled], label=name, **style)
            ax_d.plot(sizes, [d for _, d in pooled], label=name, **style)
        for ax in (ax_acc, ax_d):
            for s in sorted(train_sizes):
                ax.axvline(s, color="k", alpha=0.12, lw=3)
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_acc.set_title(task, fontsize=9)
        ax_acc.set_ylim(-2, 102)
        ax_d.set_xlabel("input size n")
    axes[0, 0].set_ylabel("accuracy (%)")
    axes[1, 0].set_ylabel("d̄ (answer tokens)")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    if title:
        fig.suptitle(title + "  (grey bars: training sizes)", fontsize=10)
    return finish_figure(fig, path)


def draw_depth_histogram(ax, hist, title: str = "", knob_label: str = "knob"):
    """One variant's per-knob depth histogram (a frame from `explorer.depth_histogram`: knobs ×
    depths, shares) as a heat map on `ax`; returns the image (for a colour bar)."""
    D = hist.shape[1]
    image = ax.imshow(hist.to_numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=1,
                      extent=(0.5, D + 0.5, len(hist) - 0.5, -0.5))
    ax.set(xlabel="answer-token exit depth", ylabel=knob_label, title=title, xticks=range(1, D + 1),
           yticks=range(len(hist)))
    ax.set_yticklabels(list(hist.index), fontsize=7)
    return image


def plot_depth_histograms(histograms: dict, path: str | Path | None = None, title: str = "",
                          knob_label: str = "knob"):
    """`draw_depth_histogram` for each variant side by side, with a shared colour bar."""
    fig, axes = plt.subplots(1, len(histograms), figsize=(3.6 * len(histograms), 2.8), squeeze=False)
    for ax, (name, hist) in zip(axes[0], histograms.items()):
        image = draw_depth_histogram(ax, hist, name, knob_label)
    fig.colorbar(image, ax=list(axes[0]), label="share of answer tokens")
    if title:
        fig.suptitle(title)
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_question_tokens(panels: dict, path: str | Path | None = None, title: str = ""):
    """Fig. 6 style, one row per variant: compute per r_t on operator tokens (left) and per c_t in the
    operator cell with the most compute (right). panels: {variant: (per_r, per_c)} from
    `question_tokens.depth_by_cell`."""
    fig, axes = plt.subplots(len(panels), 2, figsize=(7.5, 2.6 * len(panels)), squeeze=False)
    for (ax_r, ax_c), (name, (per_r, per_c)) in zip(axes, panels.items()):
        style = VARIANT_STYLE.get(name, {})
        ax_r.bar(per_r["r"].astype(str), per_r["mean"], color=style.get("color", "tab:blue"))
        ax_r.set(xlabel="r_t (0 = root operator)", ylabel="mean E[d], operator tokens", title=name)
        ax_c.plot(per_c["c"], per_c["mean"], **style)
        ax_c.set(xlabel="c_t (operators completed at the previous token)", ylabel="mean E[d]",
                 title=f"{name}, operators with r_t = {int(per_c['r'].iloc[0])}")
        ax_c.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    return finish_figure(fig, path)


def plot_delta_r2(comparison, path: str | Path | None = None, title: str = ""):
    """ΔR² per feature, ours beside the paper's, one panel per variant (a frame from
    `answer_regression.compare_with_paper`, several variants concatenated)."""
    variants = list(dict.fromkeys(comparison["variant"]))
    fig, axes = plt.subplots(1, len(variants), figsize=(5 * len(variants), 3.2), squeeze=False)
    for ax, variant in zip(axes[0], variants):
        rows = comparison[(comparison["variant"] == variant) & ~comparison["feature"].str.startswith(("R²", "Intercept"))]
        x = range(len(rows))
        ax.bar([i - 0.2 for i in x], rows["delta_r2"].fillna(0) * 100, 0.4, label="ours",
               color=VARIANT_STYLE.get(variant, {}).get("color", "tab:blue"))
        ax.bar([i + 0.2 for i in x], rows["paper_delta_r2"].fillna(0) * 100, 0.4, label="paper", color="tab:gray")
        ax.set_xticks(list(x))
        ax.set_xticklabels(rows["feature"], rotation=45, ha="right", fontsize=7)
        ax.set(ylabel="ΔR² (%)", title=variant)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return finish_figure(fig, path)


def plot_savings(rows: list[dict], path: str | Path | None = None, title: str = ""):
    """Inference savings against d̄ (rows from `savings.decode_savings`), one measure per panel: decode
    speed-up over full depth beside the layer-count bound (left), KV bytes held as a share of a
    fixed-depth cache beside the accounting (right)."""
    sweep = [r for r in rows if r["tau"] is not None]
    depth = [r["mean_depth"] for r in sweep]
    fig, (ax_s, ax_m) = plt.subplots(1, 2, figsize=(8, 3.2))
    ax_s.plot(depth, [r["speedup"] for r in sweep], "o-", label="measured")
    ax_s.plot(depth, [r["bound"] for r in sweep], "k:", label="layer-count bound")
    ax_s.set(xlabel="d̄ (decoded tokens)", ylabel="decode speed-up vs full depth (×)")
    ax_m.plot(depth, [r["kv_held_over_fixed"] for r in sweep], "s-", label="held")
    ax_m.plot(depth, [r["kv_accounting"] for r in sweep], "k:", label="accounting")
    ax_m.set(xlabel="d̄ (decoded tokens)", ylabel="KV bytes / fixed-depth cache", ylim=(0, 1.05))
    for ax in (ax_s, ax_m):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return finish_figure(fig, path)
