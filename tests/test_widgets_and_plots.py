"""Widgets are driven headlessly and asserted on their result; plots write real images."""

import matplotlib.image as mpimg
import pytest

from anira_lib.evaluate import depth_trend
from anira_lib.plots import plot_knob_curves
from anira_lib.widgets import token_depth_table, token_depth_view


def record(knob, depths):
    n = len(depths)
    return {"knob": knob, "tokens": list(range(n)), "predicted": [0], "correct": True, "answer_positions": [n - 2],
            "answer_depth": float(depths[n - 2]), "exit_depths": depths, "expected_depth": [float(d) for d in depths],
            "exit_probs": [[1.0]] * n}


def decode(tokens):
    return [f"t{t}" for t in tokens]


def test_token_depth_table():
    rows = token_depth_table(record(2, [1, 2, 3, 4]), decode)
    assert [r["depth"] for r in rows] == [1, 2, 3, 4]
    assert [r["answer"] for r in rows] == [False, False, True, False]
    assert rows[1]["token"] == "t1"


def test_token_depth_view_callback_updates_state():
    recs = {"ANIRA-E": [record(1, [1, 1, 2]), record(2, [2, 3, 3, 4])],
            "ANIRA-O": [record(1, [1, 1, 1]), record(2, [1, 2, 2, 2])]}
    view = token_depth_view(recs, decode, max_depth=4)
    dropdown, slider = view.children[0].children
    assert view.state["index"] == 0
    slider.value = 1
    assert view.state["index"] == 1 and [r["depth"] for r in view.state["table"]] == [2, 3, 3, 4]
    dropdown.value = "ANIRA-O"
    assert view.state["variant"] == "ANIRA-O" and [r["depth"] for r in view.state["table"]] == [1, 2, 2, 2]
    with pytest.raises(ValueError, match="at least one"):
        token_depth_view({"ANIRA-E": []}, decode, 4)


def test_knob_plot_is_written(tmp_path):
    rows = [{"knob": k, "accuracy": 1 - 0.1 * k, "mean_depth": 1 + k} for k in range(1, 5)]
    path = tmp_path / "f.png"
    plot_knob_curves({"ANIRA-E": rows, "ANIRA-O": rows[::-1]}, "ℓ", train_max=3, path=path)
    img = mpimg.imread(path)
    assert img[..., :3].std() > 0.05
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]  # no temporary file left behind
    assert depth_trend(rows) == pytest.approx(1.0)
