"""Attention as broadcast products and sums, for compiled CPU training on short rows.

Llama's eager attention is `softmax(q kᵀ · s + mask) v` through two batched matmuls. On rows of ~10
tokens each of those is B·heads products of 10 × head_dim matrices, which a CPU's BLAS runs at a
small fraction of its speed (~20 of ~175 GFLOP/s on this project's machine), and inductor cannot
fuse a matmul with the softmax around it. Written as `(q[:, :, :, None] * k[:, :, None]).sum(-1)`
and `(p[..., None] * v[:, :, None]).sum(-2)`, the same sums become reductions inductor fuses with
the scale, the mask and the softmax, in the forward and in the backward graph. The work per token
grows with the row length (nothing is blocked), so `anira_lib.training.training_compile.compiled_training` uses it only
up to a short length; the masks are eager attention's (additive, from `create_causal_mask`).

Registered under POINTWISE_ATTENTION with transformers' `AttentionInterface` and
`AttentionMaskInterface` on import, so `model.set_attn_implementation(POINTWISE_ATTENTION)` selects it.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask
from transformers.models.llama.modeling_llama import repeat_kv

POINTWISE_ATTENTION = "anira_pointwise"


def pointwise_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        attention_mask: torch.Tensor | None, scaling: float, dropout: float = 0.0, **kwargs):
    """Llama attention, query (B, h, T, d), key/value (B, h_kv, S, d), additive mask (B, 1, T, S) ->
    (output (B, T, h, d), weights (B, h, T, S)): the result of `eager_attention_forward` to float
    rounding, with its sums written as reductions."""
    key = repeat_kv(key, module.num_key_value_groups)
    value = repeat_kv(value, module.num_key_value_groups)
    scores = (query.unsqueeze(-2) * key.unsqueeze(-3)).sum(-1) * scaling  # (B, h, T, S)
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    out = (weights.unsqueeze(-1) * value.unsqueeze(-3)).sum(-2)  # (B, h, T, d)
    return out.transpose(1, 2).contiguous(), weights


AttentionInterface.register(POINTWISE_ATTENTION, pointwise_attention)
AttentionMaskInterface.register(POINTWISE_ATTENTION, eager_mask)

__all__ = ["POINTWISE_ATTENTION", "pointwise_attention"]
