"""Interactive views for JupyterLab. The computing is in pure functions (tested); widgets only wire them.

Exceptions inside ipywidgets callbacks are swallowed, so each view keeps its last result in
`view.state` and notebooks/tests assert on it after changing a control.
"""

from __future__ import annotations


def token_depth_table(record: dict, decode) -> list[dict]:
    """One evaluated example -> rows {position, token, depth, expected_depth, answer} (pure)."""
    symbols = decode(record["tokens"])
    answer = set(record["answer_positions"])
    return [{"position": i, "token": s, "depth": record["exit_depths"][i],
             "expected_depth": record["expected_depth"][i], "answer": i in answer}
            for i, s in enumerate(symbols)]


def token_depth_view(records_by_variant: dict[str, list[dict]], decode, max_depth: int):
    """Slider over examples, dropdown over variants; shows per-token exit depths as bars."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    from .plots import plot_token_depths

    variants = list(records_by_variant)
    n = min(len(r) for r in records_by_variant.values())
    if n == 0:
        raise ValueError("token_depth_view needs at least one evaluated record per variant.")
    pick = w.IntSlider(value=0, min=0, max=n - 1, description="example")
    variant = w.Dropdown(options=variants, value=variants[0], description="model")
    out = w.Output()
    box = w.VBox([w.HBox([variant, pick]), out])
    box.state = {}

    def render(_=None):
        rec = records_by_variant[variant.value][pick.value]
        table = token_depth_table(rec, decode)
        with out:
            out.clear_output(wait=True)
            ax = plot_token_depths([r["token"] for r in table], [r["depth"] for r in table], max_depth,
                                   title=f"{variant.value} · knob {rec['knob']} · "
                                         f"{'correct' if rec['correct'] else 'wrong'}")
            display(ax.figure)
            plt.close(ax.figure)
        box.state.update(variant=variant.value, index=pick.value, table=table)

    pick.observe(render, names="value")
    variant.observe(render, names="value")
    render()
    return box


def savings_view(rows: list[dict]):
    """Slider over the τ settings of `decode_savings` rows: shows that setting's d̄, speed and KV use
    next to full depth, and marks it on the speed-vs-d̄ curve."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    sweep = [r for r in rows if r["tau"] is not None]
    full = next(r for r in rows if r["tau"] is None)
    if not sweep:
        raise ValueError("savings_view needs at least one τ row from decode_savings.")
    pick = w.SelectionSlider(options=[r["tau"] for r in sweep], value=sweep[0]["tau"], description="τ")
    out = w.Output()
    box = w.VBox([pick, out])
    box.state = {}

    def render(_=None):
        row = next(r for r in sweep if r["tau"] == pick.value)
        with out:
            out.clear_output(wait=True)
            fig, (ax_s, ax_m) = plt.subplots(1, 2, figsize=(8, 3))
            ax_s.plot([r["mean_depth"] for r in sweep], [r["speedup"] for r in sweep], "o-", label="measured")
            ax_s.plot([r["mean_depth"] for r in sweep], [r["bound"] for r in sweep], "k:", label="layer bound")
            ax_s.plot([row["mean_depth"]], [row["speedup"]], "r*", markersize=14)
            ax_s.set(xlabel="d̄", ylabel="decode speedup vs full depth")
            ax_s.legend(fontsize=8)
            ax_m.bar(["this τ", "accounting", "full depth"],
                     [row["kv_held_over_fixed"], row["kv_accounting"], full["kv_held_over_fixed"]])
            ax_m.set(ylabel="KV bytes / fixed-depth")
            fig.tight_layout()
            display(fig)
            plt.close(fig)
        box.state.update(tau=pick.value, row=row)

    pick.observe(render, names="value")
    render()
    return box
