"""Calibration screens: fixed-1 against fixed-D over seeds, stored as data, summarised and reported."""

import json

import pandas as pd
import pytest
import yaml

from anira_lib.studies.calibration import load_candidates, main, screen, summary, write_report

TINY = {"task": "mano", "knobs": [1, 2], "eval_per_knob": 8, "note": "tiny",
        "settings": {"task_args": {"max_ops": 2, "modulus": 2}, "max_depth": 3, "hidden_size": 32,
                     "intermediate_size": 64, "num_attention_heads": 2, "steps": 8, "batch_size": 8,
                     "warmup_steps": 1, "checkpoint_every": 8, "progress": False}}


@pytest.mark.slow
def test_screen_stores_rows_and_replaces_a_rescreened_seed(tmp_path):
    frame = screen("tiny", TINY, seeds=[0, 1], out_root=tmp_path / "runs", table_dir=tmp_path / "cal", processes=1)
    stored = pd.read_csv(tmp_path / "cal" / "mano.csv")
    assert len(stored) == len(frame) == 2 * 2 * 2  # seeds × baselines × knobs
    assert set(stored["variant"]) == {"fixed-1", "fixed-D"} and set(stored["seed"]) == {0, 1}
    assert set(stored[stored["variant"] == "fixed-1"]["mean_depth"]) == {1.0}
    assert set(stored[stored["variant"] == "fixed-D"]["mean_depth"]) == {3.0}
    assert (stored["train_s"] > 0).all() and set(stored["steps"]) == {8}
    assert json.loads(stored["settings"].iloc[0]) == TINY["settings"]  # the settings, as run
    screen("tiny", TINY, seeds=[1], out_root=tmp_path / "runs", table_dir=tmp_path / "cal", processes=1)
    again = pd.read_csv(tmp_path / "cal" / "mano.csv")
    assert len(again) == 8 and sorted(again["seed"].tolist()) == [0] * 4 + [1] * 4  # seed 1 replaced, not doubled
    table = summary(again)
    assert list(table["knob"]) == [1, 2] and set(table["seeds"]) == {2}
    assert {"gap", "gap_low", "gap_high", "needed", "train_s fixed-1", "train_s fixed-D"} <= set(table.columns)
    report = write_report({"tiny": TINY}, tmp_path / "calibration.md", tmp_path / "cal").read_text()
    assert "## mano" in report and "### tiny" in report and "| knob | seeds | fixed-1 accuracy |" in report


def test_candidate_file_errors(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text(yaml.safe_dump({"x": {"task": "mano", "knobs": [1]}}))
    with pytest.raises(ValueError, match=r"candidate 'x' .*keys must be task, knobs, settings"):
        load_candidates(bad)
    good = tmp_path / "g.yaml"
    good.write_text(yaml.safe_dump({"tiny": TINY}))
    assert main([str(good), "nope"]) == 2
    assert main([str(good)]) == 2  # nothing to do
    assert set(load_candidates("configs/studies/calibration.yaml")) >= {"depo_n8_k4_d4"}


def test_a_stopped_screen_is_reported_with_its_result_though_it_wrote_no_rows(tmp_path):
    """Screens stopped before they finished write no rows; their result and settings still belong in the
    record (depo_n16_m16_k8_d4_c0 and depo_n7_m7_k3_d4_p0c0 were missing from docs/calibration.md)."""
    stopped = {**TINY, "task": "depo", "result": "stopped: fixed-D stayed at chance"}
    never = {**TINY, "task": "brevo"}  # no result: not screened yet, not reported
    (tmp_path / "cal").mkdir()
    report = write_report({"stopped": stopped, "never": never}, tmp_path / "c.md", tmp_path / "cal").read_text()
    assert "## depo" in report and "### stopped (stopped: no rows)" in report
    assert "**Result:** stopped: fixed-D stayed at chance" in report and '"max_depth": 3' in report
    assert "never" not in report and "## brevo" not in report
