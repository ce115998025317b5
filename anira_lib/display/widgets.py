"""Interactive views for JupyterLab: the allocation explorer and the savings view. The computing is in
pure functions (`explorer`, `savings`; tested); widgets only wire them.

Exceptions inside ipywidgets callbacks are swallowed, so each view keeps its last result in
`view.state` and notebooks and tests assert on it after changing a control.
"""

from __future__ import annotations

import html

import numpy as np


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


ANSWER_FILTERS = {"all": None, "correct": True, "wrong": False}


def explore(source, max_variants: int = 2):
    """The allocation explorer over a run directory, one allocation dump, or {name: path} (any task).

    Controls: variant(s), knob value, all / correct / wrong answers, example, token (a slider, or a
    click on the token's button). Shows the token strip of each chosen variant on the same example
    (coloured by exit depth, answer tokens underlined) with, under it, what every token would predict at
    each iteration (dump format 3: `explorer.iteration_html`), the selected token's q(d) for each, and
    each variant's per-knob depth histogram.
    A dump it cannot read gives the reason in the widget (and `view.state['error']`)."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    from ..evaluation import explorer as ex
    from .plots import draw_depth_histogram

    try:
        data = ex.load_allocations(source)
    except ex.DumpError as err:
        box = w.VBox([w.HTML(f'<div class="anira-error" style="color:#b00020"><b>explorer:</b> '
                             f'{html.escape(str(err))}</div>')])
        box.state = {"error": str(err)}
        return box
    names = list(data)
    first = data[names[0]]
    D = ex.max_depth_of(first)
    knobs = ex.knob_values(first)
    knob_label = ex.knob_label(first[0]["task"])
    histograms = {name: ex.depth_histogram(recs) for name, recs in data.items()}

    variants = w.SelectMultiple(options=names, value=tuple(names[:max_variants]), description="variants",
                                rows=min(len(names), 4))
    knob = w.Dropdown(options=[(str(k), i) for i, k in enumerate(knobs)], value=0, description="knob",
                      tooltip=knob_label)
    answers = w.ToggleButtons(options=list(ANSWER_FILTERS), value="all", description="answers")
    example = w.IntSlider(value=0, min=0, max=0, description="example", continuous_update=False)
    token = w.IntSlider(value=0, min=0, max=0, description="token", continuous_update=False)
    picker = w.ToggleButtons(options=[("·", 0)], value=0, description="click a token", style={"button_width": "auto"})
    picker.add_class("anira-token-picker")
    vocab = {name: ex.vocabulary(recs) for name, recs in data.items()}
    strips = w.HTML()
    figure = w.Output()
    box = w.VBox([w.HBox([variants, knob]), answers, w.HBox([example, token]), picker, strips, figure])
    box.add_class("anira-explorer")
    box.state = {"error": None}

    def chosen() -> list[str]:
        return list(variants.value) or names[:1]

    def pool() -> list[dict]:
        return ex.select(data[chosen()[0]], knobs[knob.value], ANSWER_FILTERS[answers.value])

    def draw(_=None):
        if busy[0]:
            return
        records = pool()
        if not records:
            strips.value = (f'<div class="anira-strip-empty">no {answers.value} examples of {chosen()[0]} at knob '
                            f'{knobs[knob.value]}; choose another filter or knob.</div>')
            figure.clear_output()
            box.state.update(index=None, example=None, strips={}, q={})
            return
        rec = records[min(example.value, len(records) - 1)]
        pair = ex.same_example({n: data[n] for n in chosen()}, rec)
        position = min(token.value, len(rec["tokens"]) - 1)
        html_strips, q = {}, {}
        for name, r in pair.items():
            if r is None:
                html_strips[name] = f"<div>{html.escape(name)}: this example is not in its dump.</div>"
                continue
            verdict = "correct" if r["correct"] else "wrong"
            html_strips[name] = (ex.strip_html(r, D, selected=position,
                                               title=f"{name} · knob {r['knob']} · example {r['example']} · {verdict}")
                                 + ex.iteration_html(r, vocab[name], selected=position))
            q[name] = ex.exit_distribution(r, position)
        strips.value = "".join(html_strips.values())
        with figure:
            figure.clear_output(wait=True)
            fig, axes = plt.subplots(1, 1 + len(q), figsize=(3.4 * (1 + len(q)), 2.6))
            axes = np.atleast_1d(axes)
            width = 0.8 / max(len(q), 1)
            for i, (name, probs) in enumerate(q.items()):
                axes[0].bar(np.arange(1, D + 1) + (i - (len(q) - 1) / 2) * width, probs, width, label=name)
            axes[0].set(xlabel="depth d", ylabel="q(d)", title=f"token {position} '{rec['symbols'][position]}'",
                        xticks=range(1, D + 1), ylim=(0, 1))
            axes[0].legend(fontsize=7)
            image = None
            for ax, name in zip(axes[1:], q):
                image = draw_depth_histogram(ax, histograms[name], name, knob_label)
            fig.tight_layout()
            if image is not None:
                fig.colorbar(image, ax=list(axes[1:]), label="share of answer tokens")
            display(fig)
            plt.close(fig)
        box.state.update(index=example.value, example=rec["example"], knob=rec["knob"], position=position,
                         strips=html_strips, q={n: v.tolist() for n, v in q.items()})

    busy = [False]  # while controls are being reset, their own callbacks do not redraw

    def reset(example_too: bool):
        busy[0] = True
        try:
            records = pool()
            if example_too:
                example.max = max(len(records) - 1, 0)
                example.value = min(example.value, example.max)
            if records:  # a new example starts at its first answer token
                rec = records[min(example.value, len(records) - 1)]
                token.max = len(rec["tokens"]) - 1
                picker.options = [(f"{p}:{sym}", p) for p, sym in enumerate(rec["symbols"])]
                token.value = rec["answer_positions"][0] if rec["answer_positions"] else 0
                picker.value = token.value
        finally:
            busy[0] = False
        draw()

    def reset_example(_=None):
        reset(example_too=True)

    def reset_token(_=None):
        reset(example_too=False)

    for control in (variants, knob, answers):
        control.observe(reset_example, names="value")
    example.observe(reset_token, names="value")
    token.observe(draw, names="value")

    syncing = [False]  # the picker and the slider mirror each other without echoing back

    def follow_picker(change):  # a click on a token moves the slider (which redraws)
        if not busy[0] and not syncing[0] and change["new"] is not None:
            token.value = change["new"]

    def follow_slider(change):
        if picker.value != change["new"] and change["new"] in [v for _, v in picker.options]:
            syncing[0] = True
            try:
                picker.value = change["new"]
            finally:
                syncing[0] = False

    picker.observe(follow_picker, names="value")
    token.observe(follow_slider, names="value")
    reset_example()
    return box
