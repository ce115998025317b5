"""Gradient accumulation and FSDP2 sharding: the same training, in smaller passes or split across processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from anira_lib.modeling.model import IGNORE_INDEX
from anira_lib.training.run_config import TrainConfig
from anira_lib.tasks import get_task
from anira_lib.training.checkpoint import load_checkpoint
from anira_lib.training.train import build_model, train
from anira_lib.training.training_step import accumulate_gradients

TINY = dict(task_args={"max_ops": 3, "modulus": 5}, hidden_size=32, intermediate_size=64,
            num_attention_heads=4, max_depth=3, batch_size=8, steps=6, log_every=1,
            checkpoint_every=3, warmup_steps=1, lr=1e-2, progress=False)


def metric(out_dir, key="loss"):
    return [json.loads(line)[key] for line in (Path(out_dir) / "metrics.jsonl").read_text().splitlines()]


def gradients(model, batch, parts):
    model.zero_grad(set_to_none=True)
    kept = accumulate_gradients(model, batch, parts, model.config.kl_beta, torch.device("cpu"), keep=True)
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}, kept


@pytest.mark.parametrize("decider", ["none", "early", "online"])
@pytest.mark.parametrize("parts", [2, 4, 8])
def test_micro_batches_add_up_to_the_whole_batch_gradient(decider, parts):
    """Rows of different lengths (padding) and rows without targets: each micro-batch's CE and KL are
    weighted by its share of the step's targets and tokens, so the gradients sum to one pass's."""
    cfg = TrainConfig.from_dict({**TINY, "decider": decider, "kl_beta": 0.3})
    task = get_task(cfg.task, seed=0, **cfg.task_args)
    model = build_model(cfg, task).eval()  # the inference rule: no random draws, both sides see the same depths
    batch = task.train_batch(0, 8)
    batch["labels"][:4] = IGNORE_INDEX  # the first half supervises nothing
    lengths = batch["attention_mask"].sum(1)
    assert len(set(lengths.tolist())) > 1  # padding differs between rows
    whole, _ = gradients(model, batch, 1)
    split, kept = gradients(model, batch, parts)
    assert len(kept) == parts and sorted(whole) == sorted(split)
    assert sum(ce for _, _, ce, _ in kept) == pytest.approx(1.0) and sum(kl for *_, kl in kept) == pytest.approx(1.0)
    for name in whole:
        assert torch.allclose(whole[name], split[name], atol=1e-6, rtol=1e-4), name
    assert any(s[2] == 0.0 for s in kept)  # a micro-batch without targets weighs nothing in the CE


def test_accumulated_training_follows_the_one_pass_run(tmp_path):
    """The same run with grad_accum=1 and 4: the loss curves agree (fixed depth: no random draws)."""
    runs = {}
    for accum in (1, 4):
        out = tmp_path / f"accum{accum}"
        train(TrainConfig.from_dict({**TINY, "decider": "none", "grad_accum": accum, "out_dir": str(out)}))
        runs[accum] = metric(out)
    assert runs[1] != pytest.approx([runs[1][0]] * 6, abs=1e-3)  # the weights really move
    assert runs[4] == pytest.approx(runs[1], abs=1e-5)


def test_grad_accum_must_divide_each_process_batch(tmp_path):
    cfg = TrainConfig.from_dict({**TINY, "grad_accum": 3, "out_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="grad_accum=3 must divide each process's batch"):
        train(cfg)
    with pytest.raises(ValueError, match="grad_accum must be >= 1"):
        TrainConfig.from_dict({**TINY, "grad_accum": 0})
    with pytest.raises(ValueError, match="sharding='zero' is unknown"):
        TrainConfig.from_dict({**TINY, "sharding": "zero"})


def torchrun(out_dir, steps, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    args = [f"{k}={json.dumps(v) if isinstance(v, dict) else v}" for k, v in TINY.items() if k != "steps"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "anira_lib.training.train", *args, "decider=online", f"steps={steps}", f"out_dir={out_dir}", *extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_fsdp_trains_as_ddp_does_and_resumes_exactly(tmp_path):
    """2 gloo processes: FSDP2 (each keeps half of every parameter and moment) follows the DDP run's
    loss curve and weights; stopped at step 3 and resumed, it reproduces its own uninterrupted run bit
    for bit; its checkpoint, snapshots and final model hold full tensors that load into one process."""
    torchrun(tmp_path / "ddp", 6)
    torchrun(tmp_path / "fsdp", 6, "sharding=fsdp", "keep_checkpoints=true")
    torchrun(tmp_path / "part", 3, "sharding=fsdp", "grad_accum=2")
    torchrun(tmp_path / "part", 6, "sharding=fsdp", "grad_accum=2", "--resume")
    torchrun(tmp_path / "whole", 6, "sharding=fsdp", "grad_accum=2")
    ddp, fsdp = load_checkpoint(tmp_path / "ddp"), load_checkpoint(tmp_path / "fsdp")
    assert metric(tmp_path / "fsdp") == pytest.approx(metric(tmp_path / "ddp"), abs=1e-5)
    assert metric(tmp_path / "ddp") != pytest.approx([metric(tmp_path / "ddp")[0]] * 6, abs=1e-3)
    assert ddp["model"].keys() == fsdp["model"].keys()
    for k, v in ddp["model"].items():
        assert fsdp["model"][k].shape == v.shape and torch.allclose(fsdp["model"][k], v, atol=1e-5), k
    assert metric(tmp_path / "part") == metric(tmp_path / "whole")  # bit-identical resume
    part, whole = load_checkpoint(tmp_path / "part"), load_checkpoint(tmp_path / "whole")
    assert all(torch.equal(part["model"][k], whole["model"][k]) for k in whole["model"])
    from anira_lib.modeling.model import AniraForCausalLM

    for folder in (tmp_path / "fsdp" / "model", tmp_path / "fsdp" / "checkpoints" / "step_0000006"):
        saved = AniraForCausalLM.from_pretrained(folder).state_dict()
        assert all(torch.allclose(saved[k], fsdp["model"][k]) for k in fsdp["model"]), folder


def test_a_checkpoint_from_before_the_new_keys_resumes_with_their_defaults(tmp_path):
    """Runs checkpointed before grad_accum / sharding existed resume: a missing key counts as its default."""
    cfg = {**TINY, "steps": 3, "out_dir": str(tmp_path)}
    train(TrainConfig.from_dict(cfg))
    ckpt = load_checkpoint(tmp_path)
    for key in ("grad_accum", "sharding"):
        del ckpt["config"][key]
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    assert len(train(TrainConfig.from_dict({**cfg, "steps": 5}), resume=True).metrics) == 5
    from anira_lib.training.run_dir import RunDirError

    with pytest.raises(RunDirError, match=r"grad_accum=1 \(now 2\)"):  # a real change is still refused
        train(TrainConfig.from_dict({**cfg, "steps": 6, "grad_accum": 2}), resume=True)
