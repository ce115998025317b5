import pytest
import torch

from anira_lib import AniraConfig, AniraForCausalLM


def tiny_config(**kw) -> AniraConfig:
    base = dict(vocab_size=40, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                prelude_layers=1, max_depth=4, coda_layers=1, decider="early")
    base.update(kw)
    return AniraConfig(**base)


def tiny_model(seed=0, **kw) -> AniraForCausalLM:
    torch.manual_seed(seed)
    return AniraForCausalLM(tiny_config(**kw))


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 40, (3, 9), generator=g)
    labels = torch.full_like(ids, -100)
    labels[:, -2:] = ids[:, -2:]
    return ids, labels
