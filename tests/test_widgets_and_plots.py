"""Widgets are driven headlessly and asserted on their result; plots write real images."""

import matplotlib.image as mpimg
import pandas as pd
import pytest

from anira_lib.evaluation.evaluate import depth_trend
from anira_lib.display.plots import plot_depth_histograms, plot_knob_curves


def test_depth_histograms_plot_is_written(tmp_path):
    hist = pd.DataFrame([[0.5, 0.5, 0.0], [0.0, 0.2, 0.8]], index=pd.Index(["1", "2"], name="knob"),
                        columns=pd.Index([1, 2, 3], name="depth"))
    path = tmp_path / "h.png"
    plot_depth_histograms({"ANIRA-E": hist, "ANIRA-O": hist[::-1]}, path, title="t")
    assert mpimg.imread(path)[..., :3].std() > 0.05
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.pdf", "h.png"]  # no temporary file left behind


def test_knob_plot_is_written(tmp_path):
    rows = [{"knob": k, "accuracy": 1 - 0.1 * k, "mean_depth": 1 + k} for k in range(1, 5)]
    path = tmp_path / "f.png"
    plot_knob_curves({"ANIRA-E": rows, "ANIRA-O": rows[::-1]}, "ℓ", train_max=3, path=path)
    img = mpimg.imread(path)
    assert img[..., :3].std() > 0.05
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.pdf", "f.png"]  # no temporary file left behind
    assert depth_trend(rows) == pytest.approx(1.0)


def test_savings_view_redraws_for_the_tau_the_slider_picks():
    from anira_lib.display.widgets import savings_view

    rows = [{"tau": None, "mean_depth": 4.0, "speedup": 1.0, "bound": 1.0, "kv_held_over_fixed": 1.0, "kv_accounting": 1.0}]
    rows += [{"tau": t, "mean_depth": 1 + 3 * t, "speedup": 2 - t, "bound": 2.2 - t, "kv_held_over_fixed": 0.4 + t / 2,
              "kv_accounting": 0.4 + t / 2} for t in (0.1, 0.5, 0.9)]
    view = savings_view(rows)
    assert view.state["tau"] == 0.1 and view.state["row"]["mean_depth"] == pytest.approx(1.3)
    view.children[0].value = 0.9  # the slider's callback re-renders for the new τ
    assert view.state["tau"] == 0.9 and view.state["row"] is rows[-1]
    with pytest.raises(ValueError, match="at least one τ row"):
        savings_view(rows[:1])


def test_a_png_figure_comes_with_a_vector_pdf_and_nothing_half_written(tmp_path):
    import matplotlib.pyplot as plt

    from anira_lib.display.plots import FIGURE_DPI, save_figure

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [0, 1])
    save_figure(fig, tmp_path / "f.png")
    plt.close(fig)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.pdf", "f.png"]
    assert (tmp_path / "f.pdf").read_bytes().startswith(b"%PDF")
    assert mpimg.imread(tmp_path / "f.png").shape[1] >= 2 * FIGURE_DPI * 0.8  # 2 inches at FIGURE_DPI (tight box)


def test_the_savings_figure_puts_speed_and_memory_on_their_own_axes(tmp_path):
    from anira_lib.display.plots import plot_savings

    rows = [{"tau": None, "mean_depth": 4.0, "speedup": 1.0, "bound": 1.0, "kv_held_over_fixed": 1.0, "kv_accounting": 1.0}]
    rows += [{"tau": t, "mean_depth": 1 + 3 * t, "speedup": 2 - t, "bound": 2.2 - t, "kv_held_over_fixed": 0.4 + t / 2,
              "kv_accounting": 0.4 + t / 2} for t in (0.1, 0.5, 0.9)]
    fig = plot_savings(rows, tmp_path / "s.png")
    speed, memory = fig.axes
    assert "speed-up" in speed.get_ylabel() and "KV bytes" in memory.get_ylabel()
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 2] and (tmp_path / "s.png").is_file()
