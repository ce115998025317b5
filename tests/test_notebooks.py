"""Every numbered notebook runs headlessly (papermill) with tiny parameters; figures are real."""

import io
import json
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from anira_lib.evaluation.explorer import load_allocations
from anira_lib.notebooks import NOTEBOOK_DIR, check_parameters, declared_parameters, load_notebook, run_notebook
from anira_lib.analysis.prefix_parser import FEATURES

TINY = {
    "01_mano": dict(steps=30, batch_size=32, eval_per_knob=16, max_ops=3, hidden_size=32, intermediate_size=64,
                    compile_training=False),
    "02_brevo": dict(steps=20, batch_size=16, eval_per_knob=8, max_nodes=5, hidden_size=32, intermediate_size=64,
                     compile_training=False),
    "03_depo": dict(steps=20, batch_size=16, eval_per_knob=8, max_k=3, hidden_size=32, intermediate_size=64,
                    compile_training=False),
    "04_lano": dict(steps=10, batch_size=2, window=160, eval_windows=4, generations=2, hidden_size=32,
                    intermediate_size=64, compile_training=False, depth_baselines=True),
    "05_clrs": dict(algorithms=["minimum", "insertion_sort"], train_sizes={"minimum": [4, 5], "insertion_sort": [4]},
                    eval_sizes={"minimum": [4, 5, 6], "insertion_sort": [4, 5]}, train_samples=50, eval_per_pair=5,
                    steps=10, batch_size=4, hidden_size=32, intermediate_size=64, compile_training=False),
    "07_inference_savings": dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, max_depth=4,
                                 taus=[0.3, 0.7], prompt_len=8, new_tokens=6, batch_size=2),
    "14_explorer": dict(run_dirs=[], steps=30, eval_per_knob=8),
    "09_mano_extrapolation": dict(train_max=2, eval_max=4, hidden_size=32, intermediate_size=64, steps=10, processes=1,
                                  batch_size=16, seeds=[0, 1], eval_per_knob=4),
    "10_pareto": dict(run_dirs={"brevo": "no/such/run", "mano": "no/such/run"}, steps={"brevo": 10, "mano": 20},
                      seeds=[0, 1], taus=[0.3, 0.7], eval_per_knob=4, decode_rounds=1),
    "08_training_dynamics": dict(mano_steps=20, brevo_steps=10, checkpoint_every=5, eval_per_knob=4),
    "11_mano_question_tokens": dict(run_dir="no/such/run", steps=40, eval_per_knob=16),
    "12_brevo_answer_regression": dict(run_dir="no/such/run", steps=40, eval_per_knob=16, correct_only=False),
    # lr 1e-7: six steps leave the random model random, so it keeps talking (a briefly trained one says EOS at once)
    "13_natural_language": dict(steps=6, batch_size=4, lr=1e-7, max_length=64, documents=120, limit=2,
                                max_new_tokens=6, splits=["main", "p2"]),
    "15_sufficient_depth": dict(run_dirs={"mano": "no/such/run", "depo": "no/such/run"}, steps=10, eval_per_knob=4,
                                processes=1),
    "06_lano_proxies": dict(lano_dir="no/such/run", steps=10, batch_size=2, window=160, eval_windows=4,
                            hidden_size=32, intermediate_size=64, n_boot=20, compile_training=False),
}
KNOBS = {"01_mano": [1, 2, 3], "02_brevo": [3, 4, 5], "03_depo": [1, 2, 3]}
PROGRESS = {"01_mano": "mano", "02_brevo": "brevo", "03_depo": "depo"}  # notebook -> task name in its bars


CELL_TIMEOUT_S = 300  # tiny cells take seconds; the slowest whole notebook takes about a minute


def failing_cell_traceback(path: Path) -> str:
    """The error outputs of an executed notebook (ANSI colours removed), or why there are none."""
    import re

    if not path.is_file():
        return f"(no executed copy at {path})"
    cells = json.loads(path.read_text())["cells"]
    errors = ["\n".join(o["traceback"]) for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(errors)) or "(no error output in the executed copy)"


def test_every_notebook_has_tiny_parameters():
    names = {p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.py")}
    assert names == set(TINY), "add tiny parameters for each notebook to TINY"


def assert_not_blank(png: Path):
    img = mpimg.imread(png)
    assert img.shape[0] > 100 and img.shape[1] > 100
    assert img[..., :3].std() > 0.05  # more than a blank canvas


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY))
def test_notebook_runs_with_tiny_parameters(name, tmp_path):
    params = {**TINY[name], "out_dir": str(tmp_path / "run"), "figure_dir": str(tmp_path / "figures")}
    if name == "05_clrs":
        params["data_dir"] = str(tmp_path / "data")
    if name in ("04_lano", "06_lano_proxies"):  # nothing written into the checkout's data/
        params["proxy_cache"] = str(tmp_path / "lano_proxies")
    terminal = io.StringIO()
    try:  # a cell stuck for CELL_TIMEOUT_S is interrupted: the failure shows where it was, not a hung suite
        executed = run_notebook(name, params, output_dir=tmp_path / "executed", cwd=Path.cwd(), stream=terminal,
                                timeout=CELL_TIMEOUT_S)
    except RuntimeError:
        print(terminal.getvalue()[-4000:], failing_cell_traceback(tmp_path / "executed" / f"{name}.failed.ipynb"))
        raise
    nb = json.loads(executed.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    if name in PROGRESS:  # each variant's training reached the terminal as it ran, and stays in the notebook
        kept = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
        for decider in ("early", "online"):
            done = f"train {PROGRESS[name]} {decider}  {params['steps']}/{params['steps']} 100% | loss "
            assert done in terminal.getvalue() and done in kept
    figures = list((tmp_path / "figures").glob("*.png"))
    assert figures
    for fig in figures:
        assert_not_blank(fig)
    CHECKS[name](tmp_path / "run")


def _check_knob_results(run):
    summary = json.loads((run / "results.json").read_text())
    assert set(summary) == {"ANIRA-E", "ANIRA-O", "fixed-1", "fixed-D"}  # the depth baselines beside E and O
    for rows in summary.values():
        assert [r["knob"] for r in rows["rows"]] in KNOBS.values()
        assert all(1 <= r["mean_depth"] <= 6 and 0 <= r["accuracy"] <= 1 for r in rows["rows"])
    assert {r["mean_depth"] for r in summary["fixed-1"]["rows"]} == {1.0}
    assert len({r["mean_depth"] for r in summary["fixed-D"]["rows"]}) == 1 and summary["fixed-D"]["rows"][0]["mean_depth"] > 1
    import pandas as pd

    frame = pd.read_csv(run / "results.csv")  # the tidy table: one row per seed × variant × knob
    assert list(frame.columns[:3]) == ["variant", "seed", "knob"] and len(frame) == 4 * len(rows["rows"])


def _check_lano(run):
    summary = json.loads((run / "lano_summary.json").read_text())
    for s in summary.values():
        assert 1 <= s["mean_expected_depth"] <= 4 and s["kl_to_exact_nats"] >= 0
        assert 0 <= s["generation_validity"] <= 1 and s["generations"] == 2
    import pandas as pd

    frame = pd.read_csv(run / "lano_summary.csv")  # the same numbers as a table
    assert list(frame["variant"]) == list(summary) and np.allclose(
        frame["kl_to_exact_nats"], [s["kl_to_exact_nats"] for s in summary.values()])
    with np.load(run / "lano_eval.npz") as f:
        assert f["windows"].shape == (4, 160) and f["expected_depth_ANIRA-O"].shape == (4, 160)
        dumps = load_allocations(run)  # the same windows, for the explorer (fixed-1 / fixed-D: depth_baselines)
        assert set(dumps) == {"ANIRA-E", "ANIRA-O", "fixed-1", "fixed-D"}
        assert {d for r in dumps["fixed-1"] for d in r["exit_depths"]} == {1}
        assert [r["tokens"] for r in dumps["ANIRA-O"]] == f["windows"].tolist()
        assert np.allclose([r["expected_depth"] for r in dumps["ANIRA-O"]], f["expected_depth_ANIRA-O"], atol=1e-3)


def _check_table1(run):
    rows = json.loads((run / "table1.json").read_text())
    assert {(r["variant"], r["proxy"]) for r in rows} == {(v, p) for v in ("ANIRA-E", "ANIRA-O") for p in FEATURES}
    for r in rows:
        assert -1 <= r["spearman"] <= 1 and r["spearman_ci"][0] <= r["spearman_ci"][1] and r["n_tokens"] > 100


def _check_clrs(run):
    results = json.loads((run / "clrs_results.json").read_text())
    for rows in results.values():
        assert {(r["algorithm"], r["size"]) for r in rows} == {("minimum", 4), ("minimum", 5), ("minimum", 6),
                                                              ("insertion_sort", 4), ("insertion_sort", 5)}
        assert {r["task"] for r in rows} == {"minimum", "sort"}
        assert [r["train"] for r in rows if r["algorithm"] == "minimum"] == [True, True, False]
        assert all(0 <= r["accuracy"] <= 1 and 1 <= r["mean_depth"] <= 4 and 0 <= r["overlap"] <= 1 for r in rows)
    import pandas as pd

    frame = pd.read_csv(run / "clrs_results.csv")
    assert len(frame) == sum(len(rows) for rows in results.values()) and frame.columns[0] == "variant"
    assert (run / "early" / "model" / "clrs_tokenizer.json").exists()


def _check_savings(run):
    rows = json.loads((run / "savings.json").read_text())
    assert [r["setting"] for r in rows] == ["τ=0.3", "τ=0.7", "full depth"]
    assert rows[0]["mean_depth"] <= rows[1]["mean_depth"] <= 4 == rows[2]["mean_depth"]  # higher τ, deeper
    for r in rows:
        assert r["kv_held_over_fixed"] >= r["kv_accounting"] - 1e-9 and r["bound"] >= 1


def _check_explorer(run):
    data = load_allocations(run)
    assert set(data) == {"ANIRA-E", "ANIRA-O"} and all(len(recs) == 3 * 8 for recs in data.values())


def _check_dynamics(run):
    import pandas as pd

    frames = {p.parent.parent.name + " " + p.parent.name: pd.read_csv(p) for p in run.glob("*/*/checkpoint_eval.csv")}
    assert set(frames) == {"mano early", "mano online", "brevo early", "brevo online"}
    for name, f in frames.items():  # every kept checkpoint × every training knob, once
        steps = [5, 10, 15, 20] if name.startswith("mano") else [5, 10]
        knobs = [1, 2, 3, 4] if name.startswith("mano") else [3, 4, 5, 6]
        assert sorted(set(f["step"])) == steps and sorted(set(f["knob"])) == knobs and len(f) == len(steps) * len(knobs)
        assert f["accuracy"].between(0, 1).all() and f["mean_depth"].between(1, 6).all()
    phases = pd.read_csv(run / "phases.csv")
    assert len(phases) == 4 and (phases["depth_at_peak"] >= phases["depth_at_end"]).all()
    first = pd.read_csv(run / "first_steps.csv")
    assert len(first) == 16 and first["first_step"].dropna().isin([5, 10, 15, 20]).all()


def _check_extrapolation(run):
    import pandas as pd

    frame = pd.read_csv(run / "results.csv")
    models = ["ANIRA-E", "ANIRA-O", "fixed-depth", "non-recurrent", "fixed-1"]
    assert list(dict.fromkeys(frame["variant"])) == models and sorted(set(frame["seed"])) == [0, 1]
    assert len(frame) == 2 * 5 * 4 and sorted(set(frame["knob"])) == [1, 2, 3, 4]
    fixed = frame[frame["variant"].isin(models[2:4])]
    assert (fixed["mean_depth"] == 4).all()  # the baselines run every layer
    assert (frame[frame["variant"] == "fixed-1"]["mean_depth"] == 1).all()
    summary = json.loads((run / "results.json").read_text())
    assert "accuracy_min" in summary["ANIRA-O"]["rows"][0] and summary["ANIRA-O"]["rows"][0]["seeds"] == 2


def _check_pareto(run):
    import pandas as pd

    frame = pd.read_csv(run / "pareto.csv")
    for (task, seed), f in frame.groupby(["task", "seed"]):
        assert list(f["setting"]) == ["mode", "median", "mean", "τ=0.3", "τ=0.7"], (task, seed)
        assert f["accuracy"].between(0, 1).all() and f["mean_depth"].between(1, 6).all()
        sweep = f[f["rule"] == "threshold"]
        assert sweep["mean_depth"].is_monotonic_increasing  # a higher τ never stops earlier
        assert sweep["decode_speedup"].notna().all() and sweep["kv_held_over_full"].between(0, 1.0001).all()
    assert set(frame["task"]) == {"brevo", "mano"} and sorted(set(frame["seed"])) == [0, 1]
    spread = pd.read_csv(run / "pareto_over_seeds.csv")  # one row per task × setting, over both seeds
    assert len(spread) == 10 and (spread["seeds"] == 2).all()
    assert (spread["accuracy_min"] <= spread["accuracy"]).all() and (spread["accuracy"] <= spread["accuracy_max"]).all()


def _check_natural_language(run):
    import pandas as pd

    summary = pd.read_csv(run / "gsm_summary.csv")
    assert sorted(zip(summary["variant"], summary["split"])) == sorted(
        (v, s) for v in ("fixed-depth", "ANIRA-E", "ANIRA-O") for s in ("main", "p2")) and (summary["n"] == 2).all()
    assert summary["accuracy"].between(0, 100).all() and summary["depth"].between(1, 4).all()
    assert (summary.loc[summary["variant"] == "fixed-depth", "depth"] == 4).all()  # the baseline runs all D
    assert summary["paper_accuracy"].notna().all()
    rows = pd.read_csv(run / "gsm_rows.csv")
    assert len(rows) == 12 and set(rows["correct"]) <= {True, False} and (rows["answer_tokens"] > 0).all()
    for variant in ("fixed-depth", "anira-e", "anira-o"):  # each fine-tuned to its last step, model saved
        assert (run / variant / "run" / "model" / "config.json").is_file()
        assert (run / variant / "run" / "model" / "tokenizer.json").is_file()


def _check_question_tokens(run):
    import pandas as pd

    fits = pd.read_csv(run / "question_token_fits.csv")
    assert set(fits.variant) == {"ANIRA-E", "ANIRA-O"} and fits["r2"].between(0, 1).all()
    for _, rows in fits.groupby("variant"):  # nested models: R² cannot fall as the model grows
        r2 = rows.set_index("model")["r2"]
        assert r2["type"] <= r2["type + r"] + 1e-9 <= r2["piecewise"] + 2e-9
        assert (rows["n"] > 0).all() and rows.set_index("model")["parameters"]["type"] == 2


def _check_answer_regression(run):
    import pandas as pd

    table = pd.read_csv(run / "regression_vs_paper.csv")
    assert set(table.variant) == {"ANIRA-E", "ANIRA-O"}
    for variant, rows in table.groupby("variant"):
        r2 = rows.set_index("feature")["delta_r2"]
        assert 0 <= r2["R² (linear)"] <= 1 and rows.set_index("feature")["paper_delta_r2"]["R² (linear)"] > 0.68
        assert {"N", "out_degree_dep", "frontier", "newly_enabled"} <= set(rows.feature)  # the paper's rows


def _check_sufficient_depth(run):
    import pandas as pd

    from anira_lib.studies.experiments import run_efficiency

    # the small runs trained where none was found: 4 examples per knob, one answer each (MANO), 3-4 (DEPO)
    for task, knobs, answers in (("mano", [1, 2, 3, 4], {4}), ("depo", [1, 2, 3], set(range(12, 17)))):
        frame = run_efficiency(run / task)
        assert set(frame["variant"]) == {"ANIRA-E", "ANIRA-O", "fixed-D"} and sorted(set(frame["knob"])) == knobs
        shares = frame[["under", "exact", "over"]].sum(axis=1)
        assert ((shares - 1).abs() < 1e-9)[frame["solved"] > 0].all() and set(frame["tokens"]) <= answers
        assert isinstance(frame, pd.DataFrame)


CHECKS = {"15_sufficient_depth": _check_sufficient_depth, "13_natural_language": _check_natural_language, "09_mano_extrapolation": _check_extrapolation, "10_pareto": _check_pareto, "08_training_dynamics": _check_dynamics, "14_explorer": _check_explorer, "12_brevo_answer_regression": _check_answer_regression, "11_mano_question_tokens": _check_question_tokens, "01_mano": _check_knob_results, "05_clrs": _check_clrs, "07_inference_savings": _check_savings, "02_brevo": _check_knob_results, "03_depo": _check_knob_results,
          "04_lano": _check_lano, "06_lano_proxies": _check_table1}


def test_unknown_or_mistyped_notebook_parameter_is_an_error():
    declared = declared_parameters(load_notebook(NOTEBOOK_DIR / "01_mano.py"))
    assert declared["max_ops"] == 4 and declared["compile_training"] is True
    with pytest.raises(ValueError, match="no parameter 'step'; did you mean 'steps'"):
        check_parameters({"step": 5}, declared, "01_mano")
    with pytest.raises(TypeError, match="must be int"):
        check_parameters({"steps": "many"}, declared, "01_mano")
    with pytest.raises(FileNotFoundError, match="available"):
        run_notebook("99_nothing")


@pytest.mark.slow
def test_a_cell_past_its_timeout_is_interrupted_and_leaves_no_worker(tmp_path):
    """The failed copy's traceback shows where the stuck cell was (here: the parent waiting on its training
    workers), and no worker trains on after the interrupt."""
    from anira_lib.training.run_dir import lock_run_dir

    params = {**TINY["01_mano"], "steps": 100_000, "out_dir": str(tmp_path / "run"),
              "figure_dir": str(tmp_path / "figures")}
    with pytest.raises(RuntimeError, match="notebook 01_mano failed; the executed copy with the traceback is"):
        run_notebook("01_mano", params, output_dir=tmp_path / "executed", timeout=20)
    trace = failing_cell_traceback(tmp_path / "executed" / "01_mano.failed.ipynb")
    assert "KeyboardInterrupt" in trace and "train_parallel" in trace
    for decider in ("early", "online"):  # no worker still holds its run directory
        lock_run_dir(tmp_path / "run" / decider).release()


def test_paper_parameter_files_name_only_their_notebooks_parameters():
    """configs/notebooks/<notebook>_paper.yaml: every key a parameter of that notebook, of its type."""
    import yaml

    files = sorted((NOTEBOOK_DIR.parent / "configs" / "notebooks").glob("*_paper.yaml"))
    assert {f.stem.removesuffix("_paper") for f in files} >= {"01_mano", "02_brevo", "08_training_dynamics",
                                                             "09_mano_extrapolation", "10_pareto",
                                                             "11_mano_question_tokens", "12_brevo_answer_regression"}
    for f in files:
        nb = NOTEBOOK_DIR / f"{f.stem.removesuffix('_paper')}.py"
        check_parameters(yaml.safe_load(f.read_text()), declared_parameters(load_notebook(nb)), nb.stem)
