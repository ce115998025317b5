import os
from pathlib import Path

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs the suite in one worker per core: one thread each,
    os.environ["OMP_NUM_THREADS"] = "1"   # and the kernels and subprocesses a test starts inherit it
    torch.set_num_threads(1)

from anira_lib import AniraConfig, AniraForCausalLM


def tiny_config(**kw) -> AniraConfig:
    base = dict(vocab_size=40, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                prelude_layers=1, max_depth=4, coda_layers=1, decider="early")
    base.update(kw)
    return AniraConfig(**base)


def tiny_model(seed=0, **kw) -> AniraForCausalLM:
    torch.manual_seed(seed)
    return AniraForCausalLM(tiny_config(**kw))


def write_dumps(run, task, knob_values, n_per_knob=6, max_depth=4):
    """A run directory's allocation dumps (allocations_early/online.jsonl) from tiny untrained models:
    what the explorer reads, without training anything."""
    from anira_lib.evaluation.evaluate import evaluate_knobs

    for seed, decider in enumerate(("early", "online")):
        model = tiny_model(seed=seed, vocab_size=task.vocab_size, decider=decider, max_depth=max_depth,
                           max_position_embeddings=512).eval()
        evaluate_knobs(model, task, knob_values, n_per_knob=n_per_knob, batch_size=4,
                       dump_path=Path(run) / f"allocations_{decider}.jsonl", progress=False)
    return Path(run)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 40, (3, 9), generator=g)
    labels = torch.full_like(ids, -100)
    labels[:, -2:] = ids[:, -2:]
    return ids, labels
