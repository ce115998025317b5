"""The allocation explorer's pure functions, on dumps of every task, and its messages for bad dumps."""

import html
import json
import re

import numpy as np
import pandas as pd
import pytest

from anira_lib.evaluation import explorer as ex
from anira_lib.evaluation.evaluate import DUMP_FORMAT
from anira_lib.tasks import get_task
from anira_lib.display.widgets import explore

from .conftest import write_dumps

D = 4
TASK_SETTINGS = {  # name -> (task knobs, knob values evaluated)
    "mano": (dict(max_ops=3, modulus=5), [1, 2, 3]),
    "brevo": (dict(max_nodes=5), [3, 5]),
    "depo": (dict(max_nodes=6, max_k=2, queries=2), [1, 2]),
    "lano": (dict(window=24), [None]),
    "clrs": (dict(algorithms=("minimum",), train_sizes={"minimum": [4]}, eval_sizes={"minimum": [4, 5]},
                  train_samples=8, eval_samples=4), [("minimum", 4), ("minimum", 5)]),
}


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    """{task: run directory holding allocations_early.jsonl and allocations_online.jsonl} from tiny
    untrained models (the explorer reads dumps; what trained them does not matter here)."""
    root = tmp_path_factory.mktemp("dumps")
    out = {}
    for name, (knobs, values) in TASK_SETTINGS.items():
        if name == "clrs":
            knobs = {**knobs, "data_dir": str(root / "clrs_data")}
        out[name] = write_dumps(root / name, get_task(name, **knobs), values, max_depth=D)
    return out


@pytest.mark.parametrize("name", sorted(TASK_SETTINGS))
def test_dumps_of_every_task_load_and_give_consistent_views(dumps, name):
    data = ex.load_allocations(dumps[name])
    assert set(data) == {"ANIRA-E", "ANIRA-O"}
    recs = data["ANIRA-E"]
    knobs = [tuple(k) if isinstance(k, list) else k for k in TASK_SETTINGS[name][1]]
    assert ex.knob_values(recs) == knobs and ex.max_depth_of(recs) == D
    assert all(r["task"] == name and r["dump_format"] == DUMP_FORMAT for r in recs)
    for knob in knobs:
        at = ex.select(recs, knob)
        assert [r["example"] for r in at] == list(range(6))
        right, wrong = ex.select(recs, knob, True), ex.select(recs, knob, False)
        assert len(right) + len(wrong) == 6 and all(r["correct"] for r in right) and not any(r["correct"] for r in wrong)
    rec = recs[-1]
    strip = ex.token_strip(rec)
    assert list(strip.columns) == ["position", "symbol", "depth", "expected_depth", "answer"]
    assert len(strip) == len(rec["tokens"]) and strip["depth"].between(1, D).all()
    assert strip.loc[strip["answer"], "position"].tolist() == rec["answer_positions"]
    q = ex.exit_distribution(rec, rec["answer_positions"][0])
    assert q.shape == (D,) and abs(q.sum() - 1) < 1e-3
    # the dumped expected depth is Σ d·q(d) of the dumped q(d), at every token
    for p in range(len(rec["tokens"])):
        assert abs(float(np.arange(1, D + 1) @ ex.exit_distribution(rec, p)) - rec["expected_depth"][p]) < 2e-3
    pair = ex.same_example(data, rec)
    assert pair["ANIRA-E"] is rec and pair["ANIRA-O"]["tokens"] == rec["tokens"]
    assert pair["ANIRA-O"]["example"] == rec["example"] and pair["ANIRA-O"]["knob"] == rec["knob"]


@pytest.mark.parametrize("name", sorted(TASK_SETTINGS))
def test_depth_histogram_counts_answer_token_exits_per_knob(dumps, name):
    recs = ex.load_allocations(dumps[name])["ANIRA-O"]
    hist = ex.depth_histogram(recs)
    assert list(hist.columns) == list(range(1, D + 1)) and len(hist) == len(ex.knob_values(recs))
    assert np.allclose(hist.sum(axis=1), 1.0)
    knob = ex.knob_values(recs)[-1]
    depths = [r["exit_depths"][p] for r in ex.select(recs, knob) for p in r["answer_positions"]]
    expected = np.bincount(depths, minlength=D + 1)[1:] / len(depths)
    assert np.allclose(hist.loc[str(knob)].to_numpy(), expected)


def test_strip_html_marks_depths_answers_and_the_selected_token(dumps):
    rec = ex.load_allocations(dumps["mano"])["ANIRA-E"][3]
    page = ex.strip_html(rec, D, selected=2, title="E <1>")
    assert page.count('class="anira-token"') == len(rec["tokens"])
    assert f'data-example="{rec["example"]}"' in page and 'data-selected="2"' in page
    assert "E &lt;1&gt;" in page  # escaped
    assert page.count(f"border-bottom:3px solid {ex.ANSWER_COLOUR};") == len(rec["answer_positions"])
    assert page.count(f"outline:2px solid {ex.SELECTED_COLOUR};") == 1 and ex.SELECTED_COLOUR != ex.ANSWER_COLOUR
    assert ex.depth_colour(1, D) == "#440154" and ex.depth_colour(D, D) == "#fde724"  # viridis ends
    legend = page.split('class="anira-strip-legend"', 1)[1]  # the colour key: a swatch per depth 1..D
    assert [ex.depth_colour(d, D) in legend for d in range(1, D + 1)] == [True] * D
    assert "answer token" in legend and "selected token" in legend


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda r: {k: v for k, v in r.items() if k not in ("dump_format", "task", "symbols", "example")},
     "older format"),
    (lambda r: {**r, "task": "sudoku"}, "unknown task 'sudoku'"),
    (lambda r: {**r, "dump_format": DUMP_FORMAT + 1}, f"dump_format {DUMP_FORMAT + 1}"),
    (lambda r: {k: v for k, v in r.items() if k != "exit_probs"}, r"lacks the field\(s\) \['exit_probs'\]"),
])
def test_bad_dumps_get_a_clear_message_in_the_function_and_the_widget(dumps, tmp_path, edit, message):
    """(The format case: a dump newer than this anira.)"""
    recs = [json.loads(line) for line in (dumps["brevo"] / "allocations_early.jsonl").read_text().splitlines()]
    bad = _write(tmp_path / "allocations_early.jsonl", [edit(r) for r in recs])
    with pytest.raises(ex.DumpError, match=message):
        ex.load_allocations(bad)
    view = explore(tmp_path)  # the widget shows the same message instead of a blank output
    shown = view.children[0].value
    assert 'class="anira-error"' in shown and re.search(message, html.unescape(shown))
    assert re.search(message, view.state["error"])


def test_missing_empty_and_mixed_dumps_are_named(dumps, tmp_path):
    with pytest.raises(ex.DumpError, match="holds no allocations_"):
        ex.load_allocations(tmp_path)
    with pytest.raises(ex.DumpError, match="no allocation dump at"):
        ex.load_allocations(tmp_path / "nothing.jsonl")
    with pytest.raises(ex.DumpError, match="holds no records"):
        ex.load_allocations(_write(tmp_path / "empty.jsonl", []))
    (tmp_path / "broken.jsonl").write_text('{"knob": 1,\n')
    with pytest.raises(ex.DumpError, match="broken.jsonl:1 is not JSON"):
        ex.load_allocations(tmp_path / "broken.jsonl")
    with pytest.raises(ex.DumpError, match="different tasks"):
        ex.load_allocations({"a": dumps["mano"] / "allocations_early.jsonl",
                             "b": dumps["depo"] / "allocations_early.jsonl"})


@pytest.mark.parametrize("name", sorted(TASK_SETTINGS))
def test_explorer_widget_follows_its_controls(dumps, name):
    data = ex.load_allocations(dumps[name])
    knobs = ex.knob_values(data["ANIRA-E"])
    view = explore(dumps[name])
    (variants, knob), answers, (example, token), picker, strips = (
        view.children[0].children, view.children[1], view.children[2].children, view.children[3], view.children[4])
    assert view.state["error"] is None and set(view.state["strips"]) == {"ANIRA-E", "ANIRA-O"}
    first = view.state["strips"]["ANIRA-E"]
    assert view.state["example"] == 0 and strips.value.count('class="anira-strip"') == 2
    example.value = 3
    rec = ex.select(data["ANIRA-E"], knobs[0])[3]
    assert view.state["example"] == 3 and view.state["strips"]["ANIRA-E"] != first
    assert view.state["position"] == rec["answer_positions"][0]  # a new example starts at its answer
    assert picker.value == rec["answer_positions"][0] and len(picker.options) == len(rec["tokens"])
    token.value = 1
    assert view.state["position"] == 1 and 'data-selected="1"' in strips.value and picker.value == 1
    assert np.allclose(view.state["q"]["ANIRA-E"], rec["exit_probs"][1])
    picker.value = 2  # a click on token 2's button moves the slider and redraws
    assert token.value == 2 and view.state["position"] == 2 and 'data-selected="2"' in strips.value
    assert strips.value.count('class="anira-iterations"') == 2  # the per-iteration grid under each strip
    variants.value = ("ANIRA-O",)
    assert set(view.state["strips"]) == {"ANIRA-O"}
    knob.value = len(knobs) - 1
    assert view.state["knob"] == knobs[-1]
    for choice in ("correct", "wrong"):
        answers.value = choice
        pool = ex.select(data["ANIRA-O"], knobs[-1], choice == "correct")
        if pool:
            assert view.state["example"] in [r["example"] for r in pool]
            assert all(r["correct"] == (choice == "correct") for r in pool)
        else:
            assert "anira-strip-empty" in strips.value and view.state["example"] is None


def test_a_format_2_dump_without_the_per_iteration_fields_still_reads(dumps, tmp_path):
    recs = [json.loads(line) for line in (dumps["brevo"] / "allocations_early.jsonl").read_text().splitlines()]
    assert {"iteration_top1", "iteration_correct", "sufficient_depth"} <= set(recs[0])
    old = [{**{k: v for k, v in r.items() if not k.startswith("iteration_") and k != "sufficient_depth"},
            "dump_format": 2} for r in recs]
    loaded = ex.load_allocations(_write(tmp_path / "allocations_early.jsonl", old))
    assert len(loaded["ANIRA-E"]) == len(recs) and "iteration_top1" not in loaded["ANIRA-E"][0]


def test_iteration_grid_marks_correct_exit_and_sufficient_depth():
    rec = {"example": 0, "tokens": [1, 5, 6, 2], "symbols": ["<bos>", "a", "b", "<eos>"], "answer_positions": [1],
           "exit_depths": [1, 2, 3, 1], "iteration_top1": [[5, 5, 5], [7, 6, 6], [2, 9, 2], [0, 0, 0]],
           "sufficient_depth": [2]}
    vocab = ex.vocabulary([rec])
    grid = ex.iteration_grid(rec, vocab)
    assert grid.shape == (3, 4) and list(grid.loc[1]) == ["a", "#7", "<eos>", "<pad>" if 0 in vocab else "#0"]
    page = ex.iteration_html(rec, vocab, selected=1)
    cells = re.findall(r'data-position="(\d)" data-iteration="(\d)" data-correct="(\d)"', page)
    correct = {(int(p), int(i)) for p, i, c in cells if c == "1"}
    assert correct == {(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 1), (2, 3)}  # equal to the next token
    assert page.count("★</td>") == 1 and re.search(r'data-position="1" data-iteration="2"[^>]*>b★', page)
    assert ex.iteration_html({k: v for k, v in rec.items() if k != "iteration_top1"}, vocab) == ""


def test_load_allocations_keeps_the_variants_asked_for(dumps):
    assert set(ex.load_allocations(dumps["mano"], variants=("ANIRA-O",))) == {"ANIRA-O"}
    with pytest.raises(ex.DumpError, match=r"has no dump of \['fixed-D'\]"):
        ex.load_allocations(dumps["mano"], variants=("ANIRA-E", "fixed-D"))


def test_the_heat_map_names_the_knob_as_the_task_does():
    assert ex.knob_label("mano") == "number of operators ℓ" and ex.knob_label("depo") == "hops k"
    assert ex.knob_label("brevo") == "number of nodes n" and ex.knob_label("someone_elses_task") == "knob"
    import matplotlib.pyplot as plt

    from anira_lib.display.plots import draw_depth_histogram

    fig, ax = plt.subplots()
    draw_depth_histogram(ax, pd.DataFrame([[0.5, 0.5]], index=pd.Index(["1"], name="knob")), "E", ex.knob_label("mano"))
    assert ax.get_ylabel() == "number of operators ℓ"
    plt.close(fig)
