"""Trainer contracts: exact resume, strict configs, atomic outputs, DDP through torchrun."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from anira_lib.training.run_config import TrainConfig
from anira_lib.training.checkpoint import load_checkpoint
from anira_lib.training.train import main, train

TINY = dict(task_args={"max_ops": 3, "modulus": 5}, hidden_size=32, intermediate_size=64,
            num_attention_heads=4, max_depth=3, batch_size=16, steps=12, log_every=1,
            checkpoint_every=6, warmup_steps=4, progress=False)


def losses(out_dir):
    return [json.loads(l)["loss"] for l in (Path(out_dir) / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("decider", ["early", "online"])
def test_resume_reproduces_uninterrupted_loss_curve(tmp_path, decider):
    full = TrainConfig.from_dict({**TINY, "decider": decider, "out_dir": str(tmp_path / "full")})
    train(full)
    part = TrainConfig.from_dict({**TINY, "decider": decider, "out_dir": str(tmp_path / "part"), "steps": 6})
    train(part)
    assert len(losses(tmp_path / "part")) == 6
    resumed = TrainConfig.from_dict({**TINY, "decider": decider, "out_dir": str(tmp_path / "part")})
    train(resumed, resume=True)
    assert losses(tmp_path / "part") == losses(tmp_path / "full")  # bit-identical curve
    a = load_checkpoint(tmp_path / "full")["model"]
    b = load_checkpoint(tmp_path / "part")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_outputs_written(tmp_path):
    cfg = TrainConfig.from_dict({**TINY, "out_dir": str(tmp_path), "keep_checkpoints": True})
    result = train(cfg)
    for name in ("metrics.jsonl", "metrics.csv", "checkpoint.pt", "train_config.yaml", "model/config.json"):
        assert (tmp_path / name).is_file(), name
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_0000006", "step_0000012"]
    assert not list(tmp_path.glob(".*tmp*"))  # nothing half-written left behind
    assert result.metrics[-1]["step"] == 12
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0]
    assert header.startswith("step,loss,ce,kl,answer_acc,answer_depth")


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    cfg = TrainConfig.from_dict({**TINY, "out_dir": str(tmp_path / "nothing")})
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*Start without --resume"):
        train(cfg, resume=True)


def test_resume_refuses_a_changed_config(tmp_path):
    train(TrainConfig.from_dict({**TINY, "out_dir": str(tmp_path), "steps": 6}))
    with pytest.raises(RuntimeError, match=r"written with another config: lr=0.001 \(now 0.5\)"):
        train(TrainConfig.from_dict({**TINY, "out_dir": str(tmp_path), "lr": 0.5}), resume=True)


@pytest.mark.parametrize("decider", ["early", "online", "none"])
@pytest.mark.parametrize("field,value", [("kl_beta", 0.5), ("prior_lambda", 2.0), ("gumbel_temperature", 0.5),
                                         ("lr", 0.5)])
def test_only_a_decider_free_run_may_change_the_decider_s_loss_knobs(tmp_path, decider, field, value):
    """A fixed-depth run (decider none) never uses β, λ or τ: a study may resume it under other values
    (and reuse its finished baselines); every other run, and any other field, is refused."""
    from anira_lib.training.checkpoint import check_resumable
    from anira_lib.training.run_dir import RunDirError

    then = TrainConfig.from_dict({**TINY, "decider": decider, "out_dir": str(tmp_path)})
    now = TrainConfig.from_dict({**then.to_dict(), field: value})
    ckpt = {"config": then.to_dict(), "step": 6}
    if decider == "none" and field != "lr":
        check_resumable(ckpt, now, tmp_path / "checkpoint.pt")
    else:
        with pytest.raises(RunDirError, match=f"written with another config: {field}="):
            check_resumable(ckpt, now, tmp_path / "checkpoint.pt")


def test_config_file_typo_and_types(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("steps: 10\nkl_bta: 0.1\n")
    with pytest.raises(ValueError, match=r"unknown key 'kl_bta' in .*c.yaml; did you mean 'kl_beta'"):
        TrainConfig.load(f)
    f.write_text("steps: ten\n")
    with pytest.raises(TypeError, match="steps must be int"):
        TrainConfig.load(f)
    f.write_text("lr: 1e-4\n")  # YAML 1.1 reads this as a string: accepted as the float it means
    assert TrainConfig.load(f).lr == pytest.approx(1e-4)
    with pytest.raises(FileNotFoundError, match="configs/"):
        TrainConfig.load(tmp_path / "missing.yaml")


def test_shipped_configs_load():
    configs = sorted(Path("configs").glob("*.yaml"))
    assert configs
    for path in configs:
        cfg = TrainConfig.load(path)
        assert cfg.steps >= 1


def test_every_calibration_candidate_and_findings_study_is_a_valid_run():
    from anira_lib.studies.calibration import load_candidates
    from anira_lib.studies.findings_run import load_plan

    specs = {**load_candidates("configs/studies/calibration.yaml"),
             **load_plan("configs/studies/findings.yaml")["studies"]}
    assert len(specs) >= 5
    for name, spec in specs.items():
        cfg = TrainConfig.from_dict({**spec["settings"], "task": spec["task"]}, source=name)
        assert cfg.task == spec["task"] and cfg.steps >= 1


def test_cli_runs(tmp_path, capsys):
    main(["steps=3", "batch_size=8", "hidden_size=32", "intermediate_size=64", "progress=false",
          "task_args={max_ops: 2, modulus: 5}", f"out_dir={tmp_path}"])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["step"] == 3


def test_ddp_two_processes_gloo_matches_layout(tmp_path):
    """torchrun with 2 CPU processes (gloo): both ranks train, rank 0 writes, replicas stay equal."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "anira_lib.training.train", "steps=4", "batch_size=8", "hidden_size=32", "intermediate_size=64",
           "progress=false", "checkpoint_every=2", "task_args={max_ops: 2, modulus: 5}", f"out_dir={tmp_path}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["step"] == 4 and len(ckpt["rng"]) == 2
    assert not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])  # per-rank streams
    assert (tmp_path / "model" / "model.safetensors").is_file()


def test_train_parallel_matches_sequential(tmp_path):
    from anira_lib.training.parallel_training import train_parallel

    cfgs = [TrainConfig.from_dict({**TINY, "steps": 4, "decider": d, "out_dir": str(tmp_path / d)})
            for d in ("early", "online")]
    results = train_parallel(cfgs, processes=2)
    assert [r.model.config.decider for r in results] == ["early", "online"]
    ref = train(TrainConfig.from_dict({**TINY, "steps": 4, "decider": "online", "out_dir": str(tmp_path / "ref")}))
    assert [m["loss"] for m in results[1].metrics] == [m["loss"] for m in ref.metrics]


def test_train_parallel_names_the_run_a_worker_failed_on(tmp_path):
    """A worker's error comes back with its message and traceback; the other run still finishes."""
    from anira_lib.training.run_dir import lock_run_dir
    from anira_lib.training.parallel_training import train_parallel

    cfgs = [TrainConfig.from_dict({**TINY, "steps": 2, "decider": d, "out_dir": str(tmp_path / d)})
            for d in ("early", "online")]
    held = lock_run_dir(tmp_path / "online")  # this process holds the second run's directory
    try:
        with pytest.raises(RuntimeError, match=r"(?s)training .*online failed in its worker process: RunDirError: "
                                               r".*is being written by a training.*Traceback"):
            train_parallel(cfgs, processes=2)
    finally:
        held.release()
    assert (tmp_path / "early" / "model").is_dir()


def test_an_interrupt_of_train_parallel_ends_its_workers(tmp_path, monkeypatch):
    """Ctrl-C (or a notebook's timeout) in the parent while workers train: none of them trains on."""
    import anira_lib.training.parallel_training as parallel_training
    from anira_lib.training.run_dir import lock_run_dir

    real_relay = parallel_training.relay

    def interrupted_relay(queue, done, bars=None, **kw):  # once both workers have started their bars
        real_relay(queue, done=lambda: len(bars) == 2, bars=bars, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(parallel_training, "relay", interrupted_relay)
    cfgs = [TrainConfig.from_dict({**TINY, "steps": 100_000, "progress": True, "decider": d,
                                   "out_dir": str(tmp_path / d)}) for d in ("early", "online")]
    with pytest.raises(KeyboardInterrupt):
        parallel_training.train_parallel(cfgs, processes=2)
    for d in ("early", "online"):  # nobody holds the run directories any more
        lock_run_dir(tmp_path / d).release()


@pytest.mark.slow
def test_workers_of_a_killed_parent_stop_and_free_their_runs(tmp_path):
    """SIGKILL to the process running train_parallel (no cleanup runs there): its workers notice the
    parent is gone and exit within seconds, so a resumed run finds its directories free."""
    import signal
    import textwrap

    from anira_lib.training.run_dir import lock_run_dir

    script = textwrap.dedent(f"""
        from anira_lib.training.run_config import TrainConfig
        from anira_lib.training.parallel_training import train_parallel
        cfgs = [TrainConfig.from_dict({{**{TINY!r}, "steps": 100_000, "progress": False, "checkpoint_every": 100_000,
                                        "decider": d, "out_dir": {str(tmp_path)!r} + "/" + d}}) for d in ("early", "online")]
        train_parallel(cfgs, processes=2)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=Path.cwd())
    deadline = time.monotonic() + 120
    while not all((tmp_path / d / "train_config.yaml").exists() for d in ("early", "online")):
        assert time.monotonic() < deadline and parent.poll() is None, "the workers never started"
        time.sleep(0.5)
    time.sleep(2)  # both workers are training now, each holding its run directory's lock
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    for d in ("early", "online"):
        while True:
            try:
                lock_run_dir(tmp_path / d).release()  # free: the orphaned worker has exited
                break
            except Exception:
                assert time.monotonic() < deadline, f"the worker of {d} kept training after its parent was killed"
                time.sleep(0.5)


def test_a_worker_whose_parent_died_before_it_started_exits_at_once():
    """The parent is passed in, not read in the worker: one killed while its worker was still importing
    (seen: a worker orphaned during its start-up watched its new parent, pid 1, and never exited)."""
    code = "from anira_lib.training.parallel_training import exit_with_parent; import os; exit_with_parent(os.getppid() + 1); print('alive')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3 and "alive" not in done.stdout
    code = "from anira_lib.training.parallel_training import exit_with_parent; import os; exit_with_parent(os.getppid()); print('alive')"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout == "alive\n"


def test_train_parallel_reports_a_killed_worker(tmp_path, monkeypatch):
    from anira_lib.training.parallel_training import train_parallel

    monkeypatch.setenv("ANIRA_FAULT_AT", "3")  # spawned workers inherit it: SIGKILL at their third fault point
    cfgs = [TrainConfig.from_dict({**TINY, "steps": 4, "decider": d, "out_dir": str(tmp_path / d)})
            for d in ("early", "online")]
    with pytest.raises(RuntimeError, match=r"training .*early failed in its worker process: the worker process "
                                           r"ended without a result \(killed\? out of memory\?\)"):
        train_parallel(cfgs, processes=2)


@pytest.mark.slow
@pytest.mark.parametrize("decider,task", [("early", {}), ("online", {"task": "brevo", "task_args": {"max_nodes": 4}})])
def test_compiled_run_resumes_exactly(tmp_path, decider, task):
    """compile=true (inductor, C++ wrapper on CPU): a resumed run reproduces its own uninterrupted run bit for
    bit, and the model it returns attends through its original (SDPA) implementation again. MANO's batches
    have one length (one static graph); these BREVO batches two (20, 18 at steps 4 and 6: a static graph and
    a symbolic one), and the run resumed at step 6 must run each step on the graph the first run used."""
    cfg = {**TINY, "decider": decider, "compile": True, **task}
    full = train(TrainConfig.from_dict({**cfg, "out_dir": str(tmp_path / "full")}))
    train(TrainConfig.from_dict({**cfg, "out_dir": str(tmp_path / "part"), "steps": 6}))
    train(TrainConfig.from_dict({**cfg, "out_dir": str(tmp_path / "part")}), resume=True)
    assert losses(tmp_path / "part") == losses(tmp_path / "full")
    a, b = load_checkpoint(tmp_path / "full")["model"], load_checkpoint(tmp_path / "part")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert full.model.config._attn_implementation == "sdpa"


@pytest.mark.slow
def test_compiled_training_computes_what_eager_training_does(tmp_path):
    """The fixed-depth baseline draws no random numbers, so compiled and eager training must follow the same
    loss curve up to float rounding (a different kernel order), step after step."""
    cfg = {**TINY, "decider": "none"}
    train(TrainConfig.from_dict({**cfg, "out_dir": str(tmp_path / "eager")}))
    train(TrainConfig.from_dict({**cfg, "out_dir": str(tmp_path / "compiled"), "compile": True}))
    eager, compiled = losses(tmp_path / "eager"), losses(tmp_path / "compiled")
    assert len(eager) == len(compiled) == TINY["steps"]
    assert compiled == pytest.approx(eager, rel=1e-4)
    assert eager[-1] < eager[0]


def test_compiled_cpu_training_attends_by_row_length():
    """Pointwise attention up to POINTWISE_MAX_LEN tokens, eager up to EAGER_MAX_LEN, the model's own (SDPA)
    past it, on every length to 40; nothing changes uncompiled or off the CPU; the model's own implementation
    is back afterwards, also when the loop raises."""
    from anira_lib import AniraConfig, AniraForCausalLM
    from anira_lib.modeling.pointwise_attention import POINTWISE_ATTENTION as PW
    from anira_lib.training.training_compile import EAGER_MAX_LEN, POINTWISE_MAX_LEN, compiled_training

    assert 1 <= POINTWISE_MAX_LEN < EAGER_MAX_LEN
    model = AniraForCausalLM(AniraConfig(vocab_size=8, hidden_size=16, intermediate_size=32, num_attention_heads=2))
    cpu = torch.device("cpu")
    assert model.config._attn_implementation == "sdpa"
    for seq_len in [None, *range(1, 41)]:
        inside = PW if (seq_len or 0) <= POINTWISE_MAX_LEN else "eager" if seq_len <= EAGER_MAX_LEN else "sdpa"
        with compiled_training(model, cpu, enabled=True, seq_len=seq_len):
            assert model.config._attn_implementation == inside, seq_len
        assert model.config._attn_implementation == "sdpa"
        with compiled_training(model, cpu, enabled=False, seq_len=seq_len):
            assert model.config._attn_implementation == "sdpa"
        with compiled_training(model, torch.device("meta"), enabled=True, seq_len=seq_len):
            assert model.config._attn_implementation == "sdpa"
    model.set_attn_implementation("eager")  # a model attending eagerly keeps doing so past EAGER_MAX_LEN
    with compiled_training(model, cpu, enabled=True, seq_len=EAGER_MAX_LEN + 1):
        assert model.config._attn_implementation == "eager"
    with compiled_training(model, cpu, enabled=True, seq_len=1):
        assert model.config._attn_implementation == PW
    assert model.config._attn_implementation == "eager"
    model.set_attn_implementation("sdpa")
    with pytest.raises(KeyError), compiled_training(model, cpu, enabled=True, seq_len=10):
        raise KeyError
    assert model.config._attn_implementation == "sdpa"


def test_a_finished_run_resumed_compiles_nothing(tmp_path, monkeypatch):
    """A study that reuses a finished run resumes it at its last step: no step is left, so no compile
    (about a minute each on a CPU). Compilation is replaced by a recorder here."""
    import anira_lib.training.train as train_module

    compiled = []
    monkeypatch.setattr(train_module, "compile_for_training", lambda model, device: compiled.append("graph") or model)
    monkeypatch.setattr(train_module, "compile_on_first_batch", lambda *a: compiled.append("first batch"))
    cfg = TrainConfig.from_dict({**TINY, "out_dir": str(tmp_path), "steps": 4, "compile": True})
    train(cfg)
    assert compiled == ["graph", "first batch"]
    train(cfg, resume=True)  # at step 4 of 4
    assert compiled == ["graph", "first batch"]
    train(TrainConfig.from_dict({**cfg.to_dict(), "steps": 6}), resume=True)  # two steps left: compiled again
    assert compiled == ["graph", "first batch"] * 2
