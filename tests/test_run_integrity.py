"""Run integrity: kills lose nothing, checkpoints cannot run code, one writer per run directory,
and every bad input gets one line that names the problem and the fix."""

import json
import multiprocessing
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from anira_lib import AniraConfig, faults
from anira_lib.training.run_config import TrainConfig
from anira_lib.training.run_dir import MANIFEST, RunDirError, lock_run_dir
from anira_lib.training.train import load_run, main, train

from .conftest import tiny_model

TINY = dict(task_args={"max_ops": 2, "modulus": 5}, hidden_size=16, intermediate_size=32, num_attention_heads=2,
            max_depth=2, batch_size=8, steps=8, log_every=1, checkpoint_every=3, warmup_steps=2, progress=False,
            keep_checkpoints=True)
TIMING = ("tokens_per_s", "elapsed_s")
FORK = multiprocessing.get_context("fork")


def config(out_dir, **kw):
    return TrainConfig.from_dict({**TINY, "out_dir": str(out_dir), **kw})


def _child(cfg_dict, env, resume):
    os.environ.update(env)
    faults.reset_fault_points()
    torch.set_num_threads(1)
    train(TrainConfig.from_dict(cfg_dict), resume=resume)


def run_in_child(out_dir, env=None, resume=False):
    """Train in a forked process (so SIGKILL ends only it); returns its exit code (-9: killed)."""
    proc = FORK.Process(target=_child, args=(config(out_dir).to_dict(), env or {}, resume))
    proc.start()
    proc.join(120)
    return proc.exitcode


def rows(out_dir):
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in (Path(out_dir) / "metrics.jsonl").read_text().splitlines()]


def stray_temps(out_dir):
    return sorted(str(p.relative_to(out_dir)) for p in Path(out_dir).rglob("*") if p.name.endswith(".tmp"))


@pytest.mark.slow
def test_a_kill_at_any_write_or_step_loses_nothing(tmp_path):
    """SIGKILL at every fault point of a run (each training step, and before and after the rename of
    every durable write: config, snapshot, metrics, checkpoint, final model), then resume: the metrics
    rows and the final weights equal the uninterrupted run's, and no temp file is left."""
    log = tmp_path / "points.log"
    assert run_in_child(tmp_path / "ref", {"ANIRA_FAULT_LOG": str(log)}) == 0
    points = log.read_text().splitlines()
    labels = [p.split(" ", 1)[1] for p in points]
    assert sum(label.startswith("step ") for label in labels) == 8
    for name in ("checkpoint.pt", "metrics.jsonl", "metrics.csv", "step_0000003", "model", "train_config.yaml"):
        assert f"written {name}" in labels and f"renamed {name}" in labels, name
    reference = rows(tmp_path / "ref")
    weights = load_file(tmp_path / "ref" / "model" / "model.safetensors")
    print(f"{len(points)} kill points")
    for n in range(1, len(points) + 1):
        run = tmp_path / f"killed_at_{n}"
        assert run_in_child(run, {"ANIRA_FAULT_AT": str(n)}) == -9, points[n - 1]
        assert run_in_child(run, resume="auto") == 0, points[n - 1]
        assert rows(run) == reference, points[n - 1]
        resumed = load_file(run / "model" / "model.safetensors")
        assert all(torch.equal(resumed[k], weights[k]) for k in weights), points[n - 1]
        assert stray_temps(run) == [], points[n - 1]
        shutil.rmtree(run)


class Plant:
    """Unpickling this creates `marker`: what a malicious checkpoint.pt would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_planted_checkpoint_runs_no_code_on_resume(tmp_path, capsys):
    probe = tmp_path / "probe.pt"
    torch.save({"model": Plant(tmp_path / "proof")}, probe)
    torch.load(probe, weights_only=False)
    assert (tmp_path / "proof").exists()  # the plant is real: a plain load runs it
    run, marker = tmp_path / "run", tmp_path / "pwned"
    run.mkdir()
    torch.save({"model": Plant(marker), "step": 1}, run / "checkpoint.pt")
    with pytest.raises(SystemExit) as exc:  # in a folder no run wrote, it is not even opened
        main(["--resume", f"out_dir={run}", "progress=false"])
    assert not marker.exists() and "checkpoint.pt, which no anira run wrote" in str(exc.value)
    (run / MANIFEST).write_text(json.dumps({"files": ["checkpoint.pt"]}))  # planted into a run's folder
    with pytest.raises(SystemExit) as exc:
        main(["--resume", f"out_dir={run}", "progress=false"])
    assert not marker.exists()
    assert re.fullmatch(rf"anira train: error: {re.escape(str(run / 'checkpoint.pt'))} cannot be read as a "
                        r"checkpoint \(.*\); it is truncated, corrupt or not written by anira\. Delete it, or start "
                        r"over with --overwrite\. \(run with --debug for the traceback\)", str(exc.value))


def test_no_unsafe_load_remains_in_the_package():
    package = Path(__file__).parent.parent / "anira_lib"
    hits = [p for p in package.rglob("*.py") if "weights_only=False" in p.read_text()]
    assert hits == []


def _hold_lock(out_dir, held, release):
    lock = lock_run_dir(out_dir)
    held.set()
    release.wait(60)
    lock.release()


def test_a_second_training_into_a_busy_directory_refuses_naming_the_holder(tmp_path):
    held, release = FORK.Event(), FORK.Event()
    holder = FORK.Process(target=_hold_lock, args=(tmp_path, held, release))
    holder.start()
    try:
        assert held.wait(30)
        with pytest.raises(RunDirError, match=rf"{re.escape(str(tmp_path))} is being written by a training "
                                              rf"\(pid {holder.pid} on .*, since .*\); wait for it"):
            train(config(tmp_path))
    finally:
        release.set()
        holder.join(30)
    train(config(tmp_path, steps=2))  # the holder is gone (a kill would drop its lock too)


def test_a_new_run_into_a_finished_directory_refuses_unless_overwritten(tmp_path):
    train(config(tmp_path, steps=3))
    with pytest.raises(RunDirError, match=r"already holds a finished run \(model/ is there\): train_config.yaml, "
                                          r"checkpoint.pt, .*Pass --resume to continue it, --overwrite to delete it"):
        train(config(tmp_path, steps=4, lr=0.01))
    stale = tmp_path / "checkpoints" / "step_0000003"
    assert stale.is_dir()
    train(config(tmp_path, steps=4, lr=0.01, checkpoint_every=4), overwrite=True)
    assert not stale.exists() and [r["step"] for r in rows(tmp_path)] == [1, 2, 3, 4]
    with pytest.raises(RunDirError, match="pass one of them"):
        train(config(tmp_path), resume=True, overwrite=True)


def test_resume_truncates_metrics_past_the_checkpoint_and_removes_stale_temps(tmp_path):
    train(config(tmp_path, steps=3))
    with open(tmp_path / "metrics.jsonl", "a") as f:  # as a kill after the metrics write would leave it
        f.write(json.dumps({"step": 4, "loss": 9.0}) + "\n")
    (tmp_path / ".checkpoint.pt.x1y2.tmp").write_bytes(b"\0" * 1000)
    (tmp_path / ".model.ab12.tmp").mkdir()
    train(config(tmp_path, steps=6), resume=True)
    assert [r["step"] for r in rows(tmp_path)] == [1, 2, 3, 4, 5, 6]
    assert all(r["loss"] != 9.0 for r in rows(tmp_path))
    assert stray_temps(tmp_path) == []


def test_a_moved_run_directory_resumes_with_or_without_a_trailing_slash(tmp_path):
    train(config(tmp_path / "a", steps=3))
    shutil.move(tmp_path / "a", tmp_path / "b")
    train(config(str(tmp_path / "b") + "/", steps=6), resume=True)
    assert [r["step"] for r in rows(tmp_path / "b")] == list(range(1, 7))


def test_output_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        train(config(tmp_path, steps=3))
    finally:
        os.umask(old)
    for name in ("metrics.jsonl", "metrics.csv", "checkpoint.pt", "train_config.yaml"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o755


def cli_error(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    message = str(exc.value)
    assert "\n" not in message and message.startswith("anira train: error: ")
    return message


def test_cli_errors_are_one_line_naming_the_problem_and_the_fix(tmp_path, capsys):
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("steps: 3\nhidden_size: 16\n")
    msg = cli_error(["--config", str(cfg_file), "stpes=4"], capsys)
    assert "unknown key 'stpes' in the command-line overrides; did you mean 'steps'?" in msg
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1, 2\nlr: 0.1\n")
    msg = cli_error(["--config", str(bad)], capsys)
    assert f"{bad} is not valid YAML at line" in msg and "fix the file" in msg
    run = tmp_path / "run"
    train(config(run, steps=6))
    msg = cli_error(["--resume", f"out_dir={run}", "steps=3"] + [f"{k}={json.dumps(v)}" for k, v in TINY.items()
                                                                   if k != "steps"], capsys)
    assert "is at step 6, past steps=3; pass steps=6 or more to resume it" in msg
    msg = cli_error(["--resume", f"out_dir={run}", "steps=8", "lr=0.5"] + [
        f"{k}={json.dumps(v)}" for k, v in TINY.items() if k != "steps"], capsys)
    assert "was written with another config: lr=0.001 (now 0.5)" in msg
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    msg = cli_error(["--resume", f"out_dir={run}"] + [f"{k}={json.dumps(v)}" for k, v in TINY.items()], capsys)
    assert f"{ckpt} cannot be read as a checkpoint" in msg and "--overwrite" in msg


def test_a_truncated_model_file_names_the_file(tmp_path):
    cfg = config(tmp_path, steps=3)
    train(cfg)
    weights = tmp_path / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(RunDirError, match=rf"{re.escape(str(tmp_path / 'model'))} cannot be loaded as a model "
                                          r"\(.*\); .*--resume re-saves it from checkpoint.pt"):
        load_run(cfg)


@pytest.mark.parametrize("kw,match", [
    (dict(halt_threshold=5), r"halt_threshold \(τ\) must be a number in \(0, 1\], got 5"),
    (dict(halt_threshold=0.0), r"halt_threshold \(τ\) must be a number in \(0, 1\], got 0.0"),
    (dict(depth_rule="thresold"), r"depth_rule='thresold' is unknown; did you mean 'threshold'\?"),
])
def test_invalid_depth_rules_and_thresholds_are_refused_wherever_they_enter(kw, match, batch):
    ids, _ = batch
    model = tiny_model(decider="online").eval()
    with pytest.raises(ValueError, match=match):
        model(ids, **kw)
    with pytest.raises(ValueError, match=match):
        model.generate(ids, max_new_tokens=2, pad_token_id=0, **kw)
    cfg = AniraConfig(decider="online")
    name, value = next(iter(kw.items()))
    with pytest.raises(ValueError, match=match):
        setattr(cfg, name, value)
    with pytest.raises(ValueError, match=match):
        AniraConfig(**kw)


def test_inference_savings_refuse_bad_taus_before_running():
    from anira_lib.evaluation.savings import decode_savings

    with pytest.raises(ValueError, match=r"got 0.0"):
        decode_savings(tiny_model(decider="online").eval(), [0.0, 1.5, -2])


def test_notebook_runs_resume_their_trainings(tmp_path):
    from anira_lib.studies.experiments import train_variants

    settings = {k: v for k, v in TINY.items() if k != "keep_checkpoints"}
    first = train_variants({**settings, "steps": 4}, tmp_path, processes=1)
    again = train_variants({**settings, "steps": 6}, tmp_path, processes=1)  # continues, does not start over
    for name in first:
        assert [r["step"] for r in again[name].metrics] == list(range(1, 7))
        assert again[name].metrics[:4] == first[name].metrics


@pytest.mark.slow
def test_a_failing_notebook_keeps_its_executed_copy_and_no_temp_file(tmp_path):
    from anira_lib.notebooks import run_notebook

    source = tmp_path / "99_fails.py"
    source.write_text('# %% tags=["parameters"]\nx = 1\n\n# %%\nprint("before")\n\n# %%\nraise ValueError(f"boom {x}")\n')
    out = tmp_path / "executed"
    with pytest.raises(RuntimeError, match=rf"notebook 99_fails failed; the executed copy with the traceback is "
                                           rf"{re.escape(str(out / '99_fails.failed.ipynb'))}"):
        run_notebook(source, {"x": 7}, output_dir=out, cwd=tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["99_fails.failed.ipynb"]
    assert "boom 7" in (out / "99_fails.failed.ipynb").read_text()
    source.write_text('# %% tags=["parameters"]\nx = 1\n\n# %%\nprint(x)\n')
    run_notebook(source, {"x": 2}, output_dir=out, cwd=tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["99_fails.ipynb"]  # the failure is superseded, no temp left


def test_notebook_cli_errors_are_one_line():
    from anira_lib.notebooks import main as notebooks_main

    with pytest.raises(SystemExit) as exc:
        notebooks_main(["run", "01_mano", "-p", "stpes=3"])
    assert str(exc.value) == "anira notebooks: error: notebook 01_mano has no parameter 'stpes'; did you mean 'steps'?"


@pytest.mark.parametrize("given, found", [("01_mano", "01_mano"), ("01_mano.py", "01_mano"), ("01", "01_mano"),
                                          ("1", "01_mano"), ("10", "10_pareto"), ("pareto", "10_pareto"),
                                          ("15", "15_sufficient_depth"), (" 03_depo ", "03_depo")])
def test_find_notebook_by_name_or_number(given, found):
    from anira_lib.notebooks import find_notebook

    assert find_notebook(given).stem == found


@pytest.mark.parametrize("given, message", [("", "no notebook name given"), ("   ", "no notebook name given"),
                                            ("mano", "ambiguous"), ("lano", "ambiguous"), ("99", "no notebook '99'"),
                                            ("sudoku", "no notebook 'sudoku'")])
def test_find_notebook_refuses_empty_ambiguous_and_unknown_names(given, message):
    """Issue 31: 'run 1' used to open 10_pareto (first prefix match) and 'run ''' 01_mano."""
    from anira_lib.notebooks import find_notebook

    with pytest.raises(FileNotFoundError, match=message):
        find_notebook(given)


@pytest.mark.parametrize("override, message", [
    ("gumbel_temperature=.inf", "gumbel_temperature must be a finite number, got inf"),
    ("kl_beta=.nan", "kl_beta must be a finite number, got nan"),
    ("prior_lambda=.inf", "prior_lambda must be a finite number, got inf"),
    ("lr=-.inf", "lr must be a finite number, got -inf"),
    ("initial_depth=.nan", "initial_depth must be a finite number"),
    ("out_dir=''", "out_dir is empty"),
    ("out_dir='  '", "out_dir is empty"),
])
def test_non_finite_numbers_and_an_empty_out_dir_are_refused_before_training(override, message):
    """Issue 31: these passed validation (inf trained at depth 1 everywhere; nan failed at step 1 blaming
    the learning rate and left a config behind; '' was the current directory)."""
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig.load(None, [override])


@pytest.mark.parametrize("text, message", [("", "is empty"), ("# only a comment\n", "is empty"),
                                           ("steps: 3\nlr: 1e-3\nsteps: 4\n", "key 'steps' appears twice")])
def test_empty_config_files_and_duplicate_keys_are_refused(tmp_path, text, message):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        TrainConfig.load(path)


def test_ctrl_c_in_the_training_cli_is_one_line(monkeypatch, tmp_path):
    """Issue 31: Ctrl-C printed a 74-line traceback (the data was safe)."""
    import anira_lib.training.train as train_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train", interrupted)
    with pytest.raises(SystemExit) as exc:
        main([f"out_dir={tmp_path}", "steps=2"])
    message = str(exc.value)
    assert message.count("\n") == 0 and "interrupted" in message and f"in {tmp_path}" in message
    assert "--resume continues it" in message


def test_resume_after_a_kill_before_the_first_checkpoint_starts_over(tmp_path, capsys):
    """Issue 31: --resume said 'no checkpoint: start without --resume', and without flags the folder
    'already holds an unfinished run: pass --resume'; only --overwrite worked."""
    cfg = TrainConfig.from_dict({"task_args": {"max_ops": 2, "modulus": 5}, "hidden_size": 32, "intermediate_size": 64,
                                 "steps": 2, "batch_size": 8, "progress": False, "out_dir": str(tmp_path)})
    (tmp_path / "train_config.yaml").write_text("task: mano\n")  # what a kill at step 1 of 250 leaves
    (tmp_path / "metrics.jsonl").write_text("")
    result = train(cfg, resume=True)
    assert result.metrics[-1]["step"] == 2 and (tmp_path / "model").is_dir()
    assert "no checkpoint yet" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="nothing to resume"):  # an empty or foreign folder: still refused
        train(TrainConfig.from_dict({**cfg.to_dict(), "out_dir": str(tmp_path / "empty")}), resume=True)


@pytest.mark.parametrize("override, message", [
    ("num_attention_heads=0", "num_attention_heads must be >= 1, got 0."),
    ("hidden_size=0", "hidden_size must be >= 1, got 0."),
    ("hidden_size=30", "hidden_size=30 is not a multiple of num_attention_heads=4."),
    ("max_depth=0", "max_depth (D) must be >= 1, got 0."),
])
def test_model_field_errors_are_one_line_naming_the_field(override, message):
    """Issue 31: 'integer modulo by zero', and validator errors in two lines behind a class-validation header."""
    with pytest.raises(ValueError) as exc:
        TrainConfig.load(None, [override])
    assert str(exc.value) == message


@pytest.mark.parametrize("override, message", [
    ("task_args={max_ops: '3'}", "task 'mano' knob max_ops must be int, got '3' (str)"),
    ("task_args={max_ops: 3.5}", "knob max_ops must be int, got 3.5 (float)"),
    ("task_args={division: 1}", "knob division must be bool, got 1 (int)"),
])
def test_task_knobs_of_the_wrong_type_are_named(override, message, tmp_path):
    """Issue 31: a string number in task_args failed deep in the sampler ('>=' not supported between 'str' and 'int')."""
    from anira_lib.tasks import get_task

    cfg = TrainConfig.load(None, [override, f"out_dir={tmp_path}"])
    with pytest.raises(ValueError, match=re.escape(message)):
        get_task(cfg.task, **cfg.task_args)


def test_out_dir_that_is_a_file_and_a_damaged_metrics_line_are_named(tmp_path):
    """Issue 31: '[Errno 17]' for an out_dir that is a file; 'Expecting value: line 1 column 21' (no file
    named) for a damaged metrics.jsonl line on resume."""
    from anira_lib.files import read_jsonl

    afile = tmp_path / "taken"
    afile.write_text("x")
    with pytest.raises(RunDirError, match=f"out_dir {re.escape(str(afile))} is a file, not a folder"):
        lock_run_dir(afile)
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"step": 1}\n{"step": 2, "loss": }\n')
    with pytest.raises(ValueError, match=re.escape(f"{metrics}:2 is not valid JSON")):
        read_jsonl(metrics)


@pytest.mark.parametrize("case, message", [
    ("id too large", r"input_ids must lie in 0..vocab_size-1 = 0..39, got values from \d+ to 40"),
    ("negative id", r"input_ids must lie in 0..vocab_size-1 = 0..39, got values from -1"),
    ("mask length", r"attention_mask has shape \(2, 4\); without a cache it must match input_ids, \(2, 5\)"),
    ("mask batch", r"attention_mask has shape \(1, 5\); without a cache it must match input_ids, \(2, 5\)"),
    ("empty", r"input_ids must be \(batch, tokens\) with at least one token, got shape \(1, 0\)"),
    ("labels longer", r"labels has shape \(2, 6\); it must match input_ids, \(2, 5\)"),
])
def test_forward_names_bad_arguments(case, message):
    """Issue 31: raw 'index out of range in self' and shape errors from deep inside the model."""
    model = tiny_model()
    ids = torch.randint(3, 40, (2, 5))
    kwargs = {"id too large": dict(input_ids=torch.cat([ids[:, :4], torch.full((2, 1), 40)], 1)),
              "negative id": dict(input_ids=torch.cat([ids[:, :4], torch.full((2, 1), -1)], 1)),
              "mask length": dict(input_ids=ids, attention_mask=torch.ones(2, 4, dtype=torch.long)),
              "mask batch": dict(input_ids=ids, attention_mask=torch.ones(1, 5, dtype=torch.long)),
              "empty": dict(input_ids=torch.zeros(1, 0, dtype=torch.long)),
              "labels longer": dict(input_ids=ids, labels=torch.randint(3, 40, (2, 6)))}[case]
    with pytest.raises(ValueError, match=message):
        model(**kwargs)


@pytest.mark.parametrize("text, message", [("a: [1\n", r"is not valid YAML at line 2"), ("- 1\n- 2\n", "must hold a mapping"),
                                           ("a: !!python/object:os.system x\n", "is not valid YAML")])
def test_notebook_parameter_files_get_the_same_one_line_errors(tmp_path, text, message):
    """Issue 31: -f with malformed YAML printed PyYAML's 7 lines, a YAML list 'dictionary update sequence
    element #0'; python tags in overrides a raw 3-line error."""
    from anira_lib.notebooks import main as notebooks_main

    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(SystemExit) as exc:
        notebooks_main(["run", "01_mano", "-f", str(path)])
    assert re.search(message, str(exc.value)) and "\n" not in str(exc.value)
    with pytest.raises(SystemExit) as exc:
        notebooks_main(["run", "01_mano", "-p", "steps=!!python/object/apply:os.system [true]"])
    assert "is not plain YAML" in str(exc.value) and "\n" not in str(exc.value)


def test_overwrite_never_deletes_files_no_run_wrote(tmp_path):
    """Issue 31: with --overwrite, a folder's own model/, checkpoints/ and metrics.csv were deleted (run
    files were recognised by name). Now the run's manifest says what it owns; a folder without one is refused."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_text("the user's")
    (tmp_path / "metrics.csv").write_text("the user's")
    with pytest.raises(RunDirError, match=rf"{re.escape(str(tmp_path))} holds metrics.csv, model, which no anira run "
                                          rf"wrote \(there is no {re.escape(MANIFEST)}\); a run never writes over"):
        train(config(tmp_path, steps=2), overwrite=True)
    assert (tmp_path / "model" / "weights.bin").read_text() == "the user's"
    assert (tmp_path / "metrics.csv").read_text() == "the user's"


def test_a_run_from_before_manifests_is_still_overwritten_and_resumed(tmp_path):
    """A run folder written before manifests existed is known by its train_config.yaml."""
    train(config(tmp_path, steps=2))
    (tmp_path / MANIFEST).unlink()
    train(config(tmp_path, steps=2, seed=1), overwrite=True)
    assert json.loads((tmp_path / MANIFEST).read_text())["files"] == [
        "train_config.yaml", "checkpoint.pt", "metrics.jsonl", "metrics.csv", "model", "checkpoints", "tensorboard"]
    for damaged in ("[1, 2]", '{"files": ["../elsewhere"]}', '{"files": [".lock"]}', '{"files": ["a/b"]}'):
        (tmp_path / MANIFEST).write_text(damaged)
        with pytest.raises(RunDirError, match=f"{re.escape(str(tmp_path / MANIFEST))} is damaged"):
            train(config(tmp_path, steps=2), overwrite=True)
    assert (tmp_path / "model").is_dir()  # nothing was deleted on the damaged manifest's word


def test_resume_says_when_the_metrics_before_the_checkpoint_are_gone(tmp_path, capsys):
    """Issue 31: --resume after metrics.* were deleted wrote only the rows after the checkpoint, without a word."""
    train(config(tmp_path, steps=2, checkpoint_every=2, log_every=1))
    (tmp_path / "metrics.jsonl").unlink()
    (tmp_path / "metrics.csv").unlink()
    capsys.readouterr()
    result = train(config(tmp_path, steps=4, checkpoint_every=2, log_every=1), resume=True)
    said = capsys.readouterr().out
    assert f"{tmp_path / 'metrics.jsonl'} holds no rows up to the checkpoint's step 2" in said
    assert "metrics start at step 3" in said and [r["step"] for r in result.metrics] == [3, 4]
