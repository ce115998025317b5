"""Checkpoint evaluation: equals evaluating each snapshot by hand, resumes after a kill without
re-evaluating or duplicating a step, and names what is wrong with a run it cannot evaluate."""

import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from anira_lib.evaluation.checkpoint_eval import CheckpointError, evaluate_checkpoints, kept_checkpoints
from anira_lib.evaluation.evaluate import evaluate_knobs
from anira_lib.modeling.model import AniraForCausalLM
from anira_lib.training.run_config import TrainConfig
from anira_lib.tasks import get_task
from anira_lib.training.train import train

TINY = dict(task="mano", task_args={"max_ops": 2, "modulus": 5}, hidden_size=32, intermediate_size=64, max_depth=3,
            batch_size=8, steps=6, checkpoint_every=2, log_every=1, warmup_steps=2, progress=False,
            keep_checkpoints=True)
EVAL = dict(knobs=[1, 2], n_per_knob=6, seed=7, progress=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train(TrainConfig.from_dict({**TINY, "decider": "online", "out_dir": str(out)}))
    return out


def test_every_kept_checkpoint_equals_evaluating_it_by_hand(run, tmp_path):
    frame = evaluate_checkpoints(run, out_path=tmp_path / "eval.csv", **EVAL)
    assert [s for s, _ in kept_checkpoints(run)] == [2, 4, 6]
    assert list(frame.columns[:5]) == ["run", "task", "decider", "train_seed", "step"]
    assert set(frame["decider"]) == {"online"} and set(frame["task"]) == {"mano"} and set(frame["train_seed"]) == {0}
    task = get_task("mano", seed=0, max_ops=2, modulus=5)
    for step, path in kept_checkpoints(run):
        model = AniraForCausalLM.from_pretrained(path).eval()
        by_hand = pd.DataFrame(evaluate_knobs(model, task, [1, 2], n_per_knob=6, seed=7, progress=False))
        mine = frame[frame["step"] == step][by_hand.columns].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, by_hand)
    # a file written before task and train_seed were recorded gets them from the run when it resumes
    older = tmp_path / "older.csv"
    frame[frame["step"] < 6].drop(columns=["task", "train_seed"]).to_csv(older, index=False)
    resumed = evaluate_checkpoints(run, out_path=older, **EVAL)
    pd.testing.assert_frame_equal(resumed, frame)


@pytest.mark.parametrize("kill_at", range(1, 7))
def test_a_killed_evaluation_resumes_without_repeating_a_step(run, tmp_path, monkeypatch, kill_at):
    """Every kill point: three snapshots pass two fault points each (rows written, renamed). A kill at
    point k leaves the first k // 2 steps in the file; the resumed evaluation does only the rest."""
    out = tmp_path / "eval.csv"
    code = ("from anira_lib.evaluation.checkpoint_eval import evaluate_checkpoints as e; "
            f"e({str(run)!r}, out_path={str(out)!r}, knobs=[1, 2], n_per_knob=6, seed=7, progress=False)")
    env = {**os.environ, "ANIRA_FAULT_AT": str(kill_at)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    kept = [2, 4, 6][: kill_at // 2]
    assert (sorted(set(pd.read_csv(out)["step"])) if out.is_file() else []) == kept

    import anira_lib.evaluation.checkpoint_eval as ce

    calls = []
    monkeypatch.setattr(ce, "evaluate_knobs", lambda model, *a, **kw: calls.append(1) or evaluate_knobs(model, *a, **kw))
    resumed = evaluate_checkpoints(run, out_path=out, **EVAL)
    assert len(calls) == 3 - len(kept)  # only the steps the kill lost
    assert list(resumed.groupby("step").size()) == [2, 2, 2]  # one row per step × knob, none twice
    fresh = evaluate_checkpoints(run, out_path=tmp_path / "fresh.csv", **EVAL)
    pd.testing.assert_frame_equal(resumed, fresh)
    assert not list(tmp_path.glob(".*.tmp"))  # the killed write left no half-written file


def test_runs_it_cannot_evaluate_are_named(run, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        evaluate_checkpoints(tmp_path / "nowhere", **EVAL)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a training run"):
        evaluate_checkpoints(tmp_path / "empty", **EVAL)
    with pytest.raises(CheckpointError, match=r"holds checkpoints of task 'mano', not 'brevo'"):
        evaluate_checkpoints(run, task="brevo", out_path=tmp_path / "x.csv", **EVAL)
    plain = tmp_path / "plain"
    train(TrainConfig.from_dict({**TINY, "steps": 2, "keep_checkpoints": False, "out_dir": str(plain)}))
    with pytest.raises(CheckpointError, match="no kept checkpoints.*keep_checkpoints=true"):
        evaluate_checkpoints(plain, **EVAL)
    evaluate_checkpoints(run, out_path=tmp_path / "e.csv", **EVAL)
    with pytest.raises(CheckpointError, match="evaluated with n_per_knob=6, not 9"):
        evaluate_checkpoints(run, out_path=tmp_path / "e.csv", **{**EVAL, "n_per_knob": 9})
    with pytest.raises(CheckpointError, match=r"covers knobs \[1, 2\], not \[1\]"):
        evaluate_checkpoints(run, out_path=tmp_path / "e.csv", **{**EVAL, "knobs": [1]})


def test_command_line(run, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "anira_lib.evaluation.checkpoint_eval", "--checkpoints", str(run), "--knobs", "1", "2",
                           "--n-per-knob", "4", "--task", "mano"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "3 checkpoints" in proc.stdout and (run / "checkpoint_eval.csv").is_file()
    bad = subprocess.run([sys.executable, "-m", "anira_lib.evaluation.checkpoint_eval", "--checkpoints", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and bad.stderr.strip().startswith("anira evaluate: error:")
    assert "not a training run" in bad.stderr and "Traceback" not in bad.stderr


def test_overwrite_removes_the_old_runs_evaluations(tmp_path):
    """Issue 31: --overwrite kept checkpoint_eval.csv, so evaluating the new run skipped every step as
    'already evaluated' and reported the old run's numbers (train_seed 0 rows in a seed-1 run)."""
    cfg = {**TINY, "steps": 4, "decider": "online", "out_dir": str(tmp_path)}
    train(TrainConfig.from_dict(cfg))
    old = evaluate_checkpoints(tmp_path, **EVAL)
    assert set(old["train_seed"]) == {0}
    train(TrainConfig.from_dict({**cfg, "seed": 1}), overwrite=True)
    new = evaluate_checkpoints(tmp_path, **EVAL)
    assert set(new["train_seed"]) == {1} and sorted(set(new["step"])) == [2, 4]



def test_overwrite_removes_evaluations_under_any_name_and_only_the_runs_files(tmp_path):
    """Issue 31: a run knows its files from its manifest: an evaluation written into the run under another
    name goes with --overwrite too, and a file of the user's beside the run stays."""
    cfg = {**TINY, "steps": 2, "decider": "online", "out_dir": str(tmp_path)}
    train(TrainConfig.from_dict(cfg))
    evaluate_checkpoints(tmp_path, out_path=tmp_path / "mine.csv", **EVAL)
    (tmp_path / "notes.txt").write_text("mine")
    train(TrainConfig.from_dict({**cfg, "seed": 1}), overwrite=True)
    assert not (tmp_path / "mine.csv").exists() and (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("holder, refused", [("training", "evaluation"), ("checkpoint evaluation", "training")])
def test_training_and_evaluation_of_one_run_take_one_lock(run, tmp_path, holder, refused):
    """Issue 31: evaluation took a lock of its own, so --overwrite could delete the snapshots it was reading."""
    from anira_lib.training.run_dir import RunDirError, lock_run_dir

    held = lock_run_dir(run, writer=holder)
    try:
        with pytest.raises(RunDirError, match=f"{run} is being written by a {holder} \\(pid {os.getpid()} "):
            if refused == "evaluation":
                evaluate_checkpoints(run, out_path=tmp_path / "e.csv", **EVAL)
            else:
                train(TrainConfig.from_dict({**TINY, "decider": "online", "out_dir": str(run)}), overwrite=True)
    finally:
        held.release()
    assert kept_checkpoints(run)  # nothing was deleted


@pytest.mark.parametrize("plant", ["pickle", "no weights", "truncated"])
def test_a_planted_or_damaged_snapshot_is_named_before_anything_is_evaluated(tmp_path, plant):
    """Issue 31: a planted pytorch_model.bin gave torch's multi-line text without the snapshot's name, and
    its hint to set weights_only=False (which runs the plant). Now snapshots load from safetensors only."""
    import shutil
    import torch

    cfg = {**TINY, "steps": 4, "decider": "online", "out_dir": str(tmp_path / "run")}
    train(TrainConfig.from_dict(cfg))
    (first, _), (step, snap) = kept_checkpoints(tmp_path / "run")
    weights = snap / "model.safetensors"
    if plant == "pickle":
        weights.unlink()
        torch.save({"x": torch.zeros(1)}, snap / "pytorch_model.bin")
        message = rf"snapshot {re.escape(str(snap))} holds only pytorch_model.bin, pickle weights, which can run code"
    elif plant == "no weights":
        weights.unlink()
        message = rf"snapshot {re.escape(str(snap))} holds no weights \(no model.safetensors\); delete that snapshot"
    else:
        weights.write_bytes(weights.read_bytes()[:7])
        message = rf"snapshot {re.escape(str(snap))} cannot be loaded as a model \(.+\); delete that snapshot"
    with pytest.raises(CheckpointError, match=message) as exc:
        evaluate_checkpoints(tmp_path / "run", **EVAL)
    assert "\n" not in str(exc.value) and "weights_only" not in str(exc.value)
    done = pd.read_csv(tmp_path / "run" / "checkpoint_eval.csv") if plant == "truncated" else None
    if plant == "truncated":  # found only when read: the snapshots before it are kept
        assert sorted(set(done["step"])) == [first]
    else:  # found up front: nothing evaluated
        assert not (tmp_path / "run" / "checkpoint_eval.csv").exists()
    shutil.rmtree(snap)
    assert sorted(set(evaluate_checkpoints(tmp_path / "run", **EVAL)["step"])) == [first]
