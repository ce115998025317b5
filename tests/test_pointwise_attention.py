"""Pointwise attention (compiled CPU training's attention on short rows) against Llama's eager attention:
same outputs, weights and gradients, on every padding pattern of short rows, with and without GQA."""

import itertools
from types import SimpleNamespace

import pytest
import torch
from transformers.masking_utils import create_causal_mask
from transformers.models.llama.modeling_llama import eager_attention_forward

from anira_lib import AniraConfig, AniraForCausalLM
from anira_lib.modeling.pointwise_attention import POINTWISE_ATTENTION, pointwise_attention
from anira_lib.training.training_compile import POINTWISE_MAX_LEN


def _masks(T):
    """Every left-padding pattern of a row of T tokens (0..T-1 pads), as 2-D attention masks (T, T)."""
    return torch.tensor([[0] * p + [1] * (T - p) for p in range(T)])


@pytest.mark.parametrize("heads,kv_heads", [(4, 4), (4, 2), (4, 1)])
@pytest.mark.parametrize("T", range(1, POINTWISE_MAX_LEN + 1))  # every length training attends pointwise
def test_pointwise_attention_matches_eager_outputs_weights_and_gradients(heads, kv_heads, T):
    torch.manual_seed(T)
    config = AniraConfig(vocab_size=8, hidden_size=8 * heads, num_attention_heads=heads, num_key_value_heads=kv_heads)
    config._attn_implementation = "eager"
    rows = _masks(T)
    B, d = rows.shape[0], 8
    mask = create_causal_mask(config=config, inputs_embeds=torch.zeros(B, T, 1), attention_mask=rows,
                              past_key_values=None, position_ids=None)
    module = SimpleNamespace(num_key_value_groups=heads // kv_heads, training=False)
    inputs = [torch.randn(B, h, T, d, dtype=torch.float64, requires_grad=True) for h in (heads, kv_heads, kv_heads)]
    grad_out = torch.randn(B, T, heads, d, dtype=torch.float64)
    results = []
    for attend in (eager_attention_forward, pointwise_attention):
        out, weights = attend(module, *inputs, attention_mask=mask.double(), scaling=d ** -0.5)
        grads = torch.autograd.grad((out * grad_out).sum() + weights.square().sum(), inputs)
        results.append((out, weights, *grads))
    for ref, got in zip(*results):
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("decider", ["early", "online", "none"])
def test_model_attends_pointwise_as_it_attends_eagerly(decider):
    """Whole ANIRA models on a padded batch, in training mode: logits and every parameter gradient (float32:
    in float64 transformers' eager mask overflows to -inf on fully padded query rows, eager and pointwise alike)."""
    torch.manual_seed(0)
    config = AniraConfig(vocab_size=11, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                         num_key_value_heads=2, max_depth=3, decider=decider)
    model = AniraForCausalLM(config).train()
    ids = torch.randint(1, 11, (4, 6))
    rows = torch.ones(4, 6, dtype=torch.long)
    rows[1, :2] = rows[3, :5] = 0
    labels = ids.masked_fill(rows == 0, -100)
    results = []
    for attn in ("eager", POINTWISE_ATTENTION):
        model.set_attn_implementation(attn)
        torch.manual_seed(1)  # the deciders' training-time sampling draws the same noise both times
        out = model(input_ids=ids, attention_mask=rows, labels=labels)
        model.zero_grad()
        out.loss.backward()
        results.append([out.logits.detach()] + [p.grad.clone() for p in model.parameters() if p.grad is not None])
    assert len(results[0]) == len(results[1]) > 10
    for ref, got in itertools.zip_longest(*results):
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)
