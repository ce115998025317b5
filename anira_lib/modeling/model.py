"""ANIRA: Prelude -> shared recurrent block (<= D iterations, per-token exit) -> Coda (paper §3).

Read top to bottom: `passthrough` (Eq. 5) and token packing; the recurrent block (`AniraModel.
iterate`: optional input injection, then R Llama layers) and its two runners, `EveryToken`
(training and uncached inference: all tokens, exited ones held at their frozen state) and
`RunningTokens` (cached inference: only the tokens still running, against an `AllocationCache`);
`AniraModel.recur`, the one loop over iterations, which drives a runner with a halting policy from
`deciders.py`; `AniraModel.forward`; then `AniraForCausalLM.forward` with the loss (Eqs. 3-4).

Blocks are transformers' `LlamaDecoderLayer` (attention through its SDPA/eager interface, RMSNorm,
SwiGLU), positions are `LlamaRotaryEmbedding`, masks are `create_causal_mask` (uncached) or the
cache's own (cached): nothing here re-implements attention.

Training unrolls all D iterations for every token (a static graph); a token that has exited keeps
presenting its frozen state h_{d_t} to every layer of deeper iterations (passthrough), and the Coda
reads h_{d_t}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.masking_utils import create_causal_mask
from transformers.cache_utils import Cache
from transformers.models.llama.modeling_llama import (
    LlamaDecoderLayer,
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
    rotate_half,
)
from transformers.utils import ModelOutput

from .cache import AllocationCache, CacheStep
from .configuration import AniraConfig, check_depth_rule, check_halt_threshold
from .deciders import (
    DeciderFFN,
    HaltingPolicy,
    bias_for_expected_depth,
    halting_policy,
    kl_to_prior,
    needs_probe,
    select_depth,
)

IGNORE_INDEX = -100


@dataclass
class AniraModelOutput(ModelOutput):
    """Hidden states after the Coda and the depth decisions.

    last_hidden_state: (B, T, H). exit_depths: (B, T) long in 1..D, the iterations each token ran.
    exit_log_probs: (B, T, D) log q(d | x_t) (one-hot at D for the fixed-depth baseline).
    With output_iterations (see `AniraModel.forward`): iteration_states (B, T, D, H), h_i of each
    token, continued past its exit; iteration_hidden (B, T, D, H), the normed Coda output had the token
    exited at i; iteration_halt_probs (B, T, D), ANIRA-O's λ_i = σ(a_i) read from h_i (1 at i = D,
    where the block always stops), None for the other deciders.
    """

    last_hidden_state: torch.Tensor | None = None
    exit_depths: torch.LongTensor | None = None
    exit_log_probs: torch.Tensor | None = None
    past_key_values: object | None = None
    iteration_states: torch.Tensor | None = None
    iteration_hidden: torch.Tensor | None = None
    iteration_halt_probs: torch.Tensor | None = None


@dataclass
class AniraCausalLMOutput(ModelOutput):
    """loss = ce_loss + β·kl_loss (Eq. 3). exit_probs: (B, T, D); expected_depth: (B, T) Σ_d d·q(d).
    kl_loss is None for a fixed-depth model and for a cached forward without labels (decoding).

    With output_iterations: iteration_logits (B, T, D, V), the logits each token would get had it
    exited at iteration i (or, with output_iterations=k, iteration_top_logits / iteration_top_ids
    (B, T, D, k)); iteration_states and iteration_halt_probs as in `AniraModelOutput`."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    past_key_values: object | None = None
    ce_loss: torch.Tensor | None = None
    kl_loss: torch.Tensor | None = None
    exit_depths: torch.LongTensor | None = None
    exit_probs: torch.Tensor | None = None
    expected_depth: torch.Tensor | None = None
    iteration_states: torch.Tensor | None = None
    iteration_logits: torch.Tensor | None = None
    iteration_top_logits: torch.Tensor | None = None
    iteration_top_ids: torch.LongTensor | None = None
    iteration_halt_probs: torch.Tensor | None = None


def passthrough(h_prev: torch.Tensor, h_new: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """Eq. 5: h_i = f(h_{i-1}) where the token is active at iteration i, else h_{i-1}.

    h_prev, h_new: (B, T, H); active: (B, T) with values exactly 0 or 1, possibly carrying a
    straight-through gradient. The forward value is an exact copy (no a + (b - a) rounding), so a
    frozen token's state is bit-identical across later iterations.
    """
    out = torch.where(active.detach().unsqueeze(-1) > 0.5, h_new, h_prev)
    if active.requires_grad:
        out = out + ((active - active.detach()).unsqueeze(-1) * (h_new - h_prev)).to(out.dtype)
    return out


class _Packed(NamedTuple):
    """Tokens selected by a (B, T) mask: rows (B',) with any; order (B', a) their token indices first
    (in order); ok (B', a) marks real entries; every: the mask was all True (rows, order = identity);
    single: T = 1 (decoding), so a selected row's one token is simply x[row]."""

    rows: torch.Tensor
    order: torch.Tensor
    ok: torch.Tensor
    every: bool
    single: bool = False

    def take(self, x):
        """x (B, T, ...) -> the selected tokens (B', a, ...)."""
        if self.every:
            return x
        return x[self.rows] if self.single else x[self.rows.unsqueeze(1), self.order]

    def put(self, x, values):
        """x (B, T, ...) with values (B', a, ...) at the selected tokens (a new tensor; x is kept)."""
        if self.every:
            return values
        if self.single:
            return x.index_put((self.rows,), values)
        b, j = self.ok.nonzero(as_tuple=True)
        return x.index_put((self.rows[b], self.order[b, j]), values[b, j])


def _pack(mask: torch.Tensor) -> _Packed:
    """The tokens where mask (B, T) is True, packed to the left per row."""
    B, T = mask.shape
    if bool(mask.all()):
        return _Packed(torch.arange(B, device=mask.device), torch.arange(T, device=mask.device).expand(B, T),
                       mask, True)
    if T == 1:
        rows = mask[:, 0].nonzero().flatten()
        return _Packed(rows, rows.new_zeros(rows.numel(), 1), mask.new_ones(rows.numel(), 1), False, True)
    counts = mask.sum(1)
    rows = counts.nonzero().flatten()
    if rows.numel() == 0:
        return _Packed(rows, mask.new_zeros(0, 0, dtype=torch.long), mask.new_zeros(0, 0), False)
    a = int(counts[rows].max())
    order = torch.sort((~mask[rows]).to(torch.int8), dim=1, stable=True).indices[:, :a]
    ok = torch.arange(a, device=mask.device).unsqueeze(0) < counts[rows].unsqueeze(1)
    return _Packed(rows, order, ok, False)


class AniraPreTrainedModel(PreTrainedModel):
    config_class = AniraConfig
    config: AniraConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = False
    _no_split_modules = ["LlamaDecoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def _init_weights(self, module):
        super()._init_weights(module)
        if getattr(module, "is_decider_output", False) and self.config.initial_depth is not None:
            bias = bias_for_expected_depth(self.config.decider, self.config.max_depth, self.config.initial_depth)
            init.copy_(module.bias, bias)


class AniraModel(AniraPreTrainedModel):
    """Embeddings -> Prelude -> recurrent block with a depth decider -> Coda -> RMSNorm.

    Parameters: `core` holds the block's R layers (recurrent) or D·R untied layers (block i:
    core[(i-1)R : iR]); `injection` one adapter per block when `input_injection`. With R = 1 and no
    adapter the names are those of models saved before R existed."""

    def __init__(self, config: AniraConfig):
        super().__init__(config)
        P, R, D, C, H = (config.prelude_layers, config.recurrent_layers, config.max_depth, config.coda_layers,
                         config.hidden_size)
        blocks = 1 if config.recurrent else D
        self.embed_tokens = nn.Embedding(config.vocab_size, H, config.pad_token_id)
        self.prelude = nn.ModuleList(LlamaDecoderLayer(config, i) for i in range(P))
        self.core = nn.ModuleList(LlamaDecoderLayer(config, P + j) for j in range(blocks * R))
        self.injection = (nn.ModuleList(nn.Linear(2 * H, H, bias=False) for _ in range(blocks))
                          if config.input_injection else None)
        self.coda = nn.ModuleList(LlamaDecoderLayer(config, P + R * D + j) for j in range(C))
        self.norm = LlamaRMSNorm(H, eps=config.rms_norm_eps)
        self.rotary_emb = LlamaRotaryEmbedding(config=config)
        outputs = {"early": D, "online": 1}.get(config.decider)
        self.decider = DeciderFFN(H, config.decider_intermediate_size, outputs) if outputs else None
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    @torch.compiler.disable
    def embed(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, H) embeddings, always run eagerly: a compiled graph lowers the embedding's
        backward to an atomic scatter-add, so with several threads two identical compiled runs differ (1e-7)
        and a resumed run would drift from its uninterrupted twin; eager autograd's is deterministic."""
        return self.embed_tokens(input_ids)

    # -- the recurrent block -----------------------------------------------------------------
    def block(self, iteration: int):
        """(adapter or None, the R layers) run at recurrent iteration `iteration` (1-based)."""
        j = 0 if self.config.recurrent else iteration - 1
        R = self.config.recurrent_layers
        return (None if self.injection is None else self.injection[j]), self.core[j * R:(j + 1) * R]

    def initial_state(self, e: torch.Tensor) -> torch.Tensor:
        """h_0 (B, T, H) from the Prelude output e: e itself, zeros, or truncated-normal noise."""
        kind = self.config.initial_state
        if kind == "prelude":
            return e
        if kind == "zeros":
            return torch.zeros_like(e)
        std = (2.0 / (5.0 * e.shape[-1])) ** 0.5
        return nn.init.trunc_normal_(torch.empty_like(e), std=std, a=-3 * std, b=3 * std)

    def iterate(self, i, h, e, call, hold=None):
        """Iteration i of the block on states h (B', a, H) with Prelude outputs e: x <- W[x; e] if
        there is an adapter, then the R layers, each run as call(r, layer, x). `hold` (B', a), 0/1:
        tokens at 0 keep h, so an exited token presents its frozen state to every layer (Eq. 5);
        the last layer's output is left to the caller's passthrough."""
        adapter, layers = self.block(i)
        keep = None
        if hold is not None and (adapter is not None or len(layers) > 1):
            keep = hold.detach().unsqueeze(-1) > 0.5
        x = h
        if adapter is not None:
            x = adapter(torch.cat([x, e], dim=-1))
            x = x if keep is None else torch.where(keep, x, h)
        for r, layer in enumerate(layers):
            y = call(r, layer, x)
            x = y if keep is None or r == len(layers) - 1 else torch.where(keep, y, x)
        return x

    def recur(self, h, e, halting: HaltingPolicy, runner):
        """The D iterations from h_0 = h (Eqs. 5, 7): run the block where tokens are active, let the
        halting policy read the new state (ANIRA-O's a_i) and say who exits. Returns h_{d_t} (B, T, H)."""
        D = self.config.max_depth
        for i in range(1, (halting.last_iteration() if runner.skips_idle else D) + 1):
            h = runner.iteration(i, h, e, halting)
            halting.observe(i, runner.halt_logits(h) if halting.reads_state and i < D else None)
            runner.exited(i, h, halting)
        runner.finish(h, halting.depth)
        return h

    def core_pass(self, e, valid, runner, exit_depths, rule, tau):
        """Recurrent core on Prelude outputs e (B, T, H) -> (h (B, T, H), depths (B, T), log q (B, T, D)).
        ANIRA-O's "mode"/"mean" rules first probe every token at depth D for its whole q, pick the
        depths from it, run them, and report the probe's q (so depths and q agree)."""
        cfg = self.config
        h0 = self.initial_state(e)
        policy = lambda forced: halting_policy(  # noqa: E731
            cfg.decider, self.decider, cfg.max_depth, e, valid, training=self.training, exit_depths=forced,
            rule=rule, tau=tau, temperature=cfg.gumbel_temperature)
        if not needs_probe(cfg.decider, rule, exit_depths, self.training):
            halting = policy(exit_depths)
            return self.recur(h0, e, halting, runner), halting.depth, halting.log_q
        with torch.no_grad():
            probe = policy(torch.full(valid.shape, cfg.max_depth, dtype=torch.long, device=e.device))
            self.recur(h0, e, probe, runner)
        halting = policy(select_depth(probe.log_q, rule, tau))
        return self.recur(h0, e, halting, runner), halting.depth, probe.log_q

    # -- forward ----------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        exit_depths: torch.LongTensor | None = None,
        depth_rule: str | None = None,
        halt_threshold: float | None = None,
        past_key_values: AllocationCache | None = None,
        output_iterations: bool = False,
        **kwargs,
    ) -> AniraModelOutput:
        """input_ids (B, T) -> AniraModelOutput. `exit_depths` (B, T) in 1..D forces the depths.

        With `past_key_values` (an `AllocationCache`), runs the cached path: `attention_mask` then
        covers cached + new tokens (B, S + T), and each token runs only its own iterations.

        output_iterations (eval mode, uncached): also every token's view at every iteration i, as if it
        alone had exited at i while every other token keeps its own depth. Exact because a token's
        output depends only on its own depth and on the earlier tokens, which its depth does not touch:
        a second, "counterfactual" copy of each token keeps running past its exit, and it attends to
        the earlier tokens' real states and to itself (`counterfactual_mask`), in the block and in the Coda."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        if input_ids is not None:
            self._check_inputs(input_ids, attention_mask, cached=past_key_values is not None)
        h = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        B, T = h.shape[:2]
        D = self.config.max_depth
        if exit_depths is not None:
            exit_depths = exit_depths.to(h.device).long()
            if exit_depths.shape != (B, T):
                raise ValueError(f"exit_depths has shape {tuple(exit_depths.shape)}; expected (B, T) = {(B, T)}.")
            if exit_depths.numel() and (exit_depths.min() < 1 or exit_depths.max() > D):
                raise ValueError(f"exit_depths must lie in 1..D = 1..{D}.")
        check_depth_rule(depth_rule)
        rule = depth_rule or self.config.resolved_depth_rule
        tau = self.config.halt_threshold if halt_threshold is None else halt_threshold
        check_halt_threshold(tau)
        if past_key_values is not None:
            return self._forward_cached(h, attention_mask, position_ids, past_key_values, exit_depths, rule, tau)
        if position_ids is None:
            if attention_mask is not None:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
            else:
                position_ids = torch.arange(T, device=h.device).unsqueeze(0).expand(B, T)
        layer_kwargs = self._layer_kwargs(h, attention_mask, position_ids)
        for layer in self.prelude:
            h = layer(h, **layer_kwargs)
        valid = torch.ones(B, T, dtype=torch.bool, device=h.device)
        if output_iterations:
            return self._forward_iterations(h, attention_mask, position_ids, layer_kwargs, exit_depths, rule, tau)
        h, depth, log_q = self.core_pass(h, valid, EveryToken(self, layer_kwargs), exit_depths, rule, tau)
        for layer in self.coda:
            h = layer(h, **layer_kwargs)
        return AniraModelOutput(last_hidden_state=self.norm(h), exit_depths=depth, exit_log_probs=log_q)

    def _forward_iterations(self, e, attention_mask, position_ids, layer_kwargs, exit_depths, rule, tau):
        """The uncached forward from Prelude outputs e (B, T, H), with every token's view at every iteration."""
        if self.training:
            raise ValueError("output_iterations is an inference view: call model.eval() first.")
        if self.config._attn_implementation not in ("eager", "sdpa"):
            raise ValueError(f"output_iterations builds its own 4-D attention mask, which the "
                             f"{self.config._attn_implementation!r} attention cannot take; use attn_implementation "
                             "'sdpa' or 'eager'.")
        B, T = e.shape[:2]
        valid = torch.ones(B, T, dtype=torch.bool, device=e.device)
        keys = valid if attention_mask is None else attention_mask.to(e.device).bool()
        both = torch.cat([position_ids, position_ids], dim=1)
        pair_kwargs = dict(attention_mask=counterfactual_mask(keys, e.dtype), position_ids=both,
                           position_embeddings=self.rotary_emb(torch.cat([e, e], dim=1), position_ids=both))
        runner = EveryTokenAndItsContinuation(self, layer_kwargs, pair_kwargs)
        h, depth, log_q = self.core_pass(e, valid, runner, exit_depths, rule, tau)
        views = []
        for state in runner.states:  # the Coda on (real states, token t's h_i) pairs
            x = torch.cat([h, state], dim=1)
            for layer in self.coda:
                x = layer(x, **pair_kwargs)
            views.append(x[:, T:])
        for layer in self.coda:
            h = layer(h, **layer_kwargs)
        halt = None
        if self.config.decider == "online":
            lam = [torch.sigmoid(self.decider(s).squeeze(-1).float()) for s in runner.states[:-1]]
            halt = torch.stack([*lam, torch.ones_like(lam[0]) if lam else torch.ones(B, T, device=e.device)], -1)
        return AniraModelOutput(last_hidden_state=self.norm(h), exit_depths=depth, exit_log_probs=log_q,
                                iteration_states=torch.stack(runner.states, dim=2),
                                iteration_hidden=self.norm(torch.stack(views, dim=2)), iteration_halt_probs=halt)

    @torch.compiler.disable
    def _check_inputs(self, input_ids, attention_mask, cached: bool):
        """Shapes and the id range, each error naming the argument, its shape and the one expected. The
        range check reads two numbers back from the device, so a one-token decoding step skips it."""
        if input_ids.ndim != 2 or input_ids.shape[1] == 0:
            raise ValueError(f"input_ids must be (batch, tokens) with at least one token, got shape "
                             f"{tuple(input_ids.shape)}.")
        if attention_mask is not None and not cached and tuple(attention_mask.shape) != tuple(input_ids.shape):
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}; without a cache it must match "
                             f"input_ids, {tuple(input_ids.shape)}.")
        if cached and input_ids.shape[1] == 1:
            return
        low, high = int(input_ids.min()), int(input_ids.max())
        if low < 0 or high >= self.config.vocab_size:
            raise ValueError(f"input_ids must lie in 0..vocab_size-1 = 0..{self.config.vocab_size - 1}, got values "
                             f"from {low} to {high}.")

    @torch.compiler.disable
    def _layer_kwargs(self, h, attention_mask, position_ids):
        """The causal mask and RoPE (cos, sin) every layer of an uncached pass shares, computed once.

        Kept out of a compiled graph on purpose: inductor otherwise inlines both into each of the
        (P + D·R + C) layers' kernels, recomputing sin/cos and the mask per layer (on a CPU, a sixth
        of the compiled demo step)."""
        mask = create_causal_mask(config=self.config, inputs_embeds=h, attention_mask=attention_mask,
                                  past_key_values=None, position_ids=position_ids)
        return dict(attention_mask=mask, position_ids=position_ids,
                    position_embeddings=self.rotary_emb(h, position_ids=position_ids))

    def _forward_cached(self, h, attention_mask, position_ids, cache, exit_depths, rule, tau):
        """Prefill or decode T new tokens (B, T, H) against `cache`: one CacheStep, committed at the end."""
        B, T = h.shape[:2]
        S0 = cache.seen
        if needs_probe(self.config.decider, rule, exit_depths, self.training):
            raise NotImplementedError(f"ANIRA-O's '{rule}' rule needs every token's whole exit distribution, "
                                      "which cached decoding never computes; use depth_rule='median' or "
                                      "'threshold' with a cache, or use_cache=False.")
        if attention_mask is not None:
            if attention_mask.ndim != 2 or attention_mask.shape[1] != S0 + T:
                raise ValueError(f"with a cache, attention_mask must be 2-D (B, cached + new) = ({B}, {S0 + T}); "
                                 f"got {tuple(attention_mask.shape)}.")
            valid = attention_mask[:, -T:].bool()
        else:
            valid = torch.ones(B, T, dtype=torch.bool, device=h.device)
        if position_ids is None:
            if attention_mask is not None:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)[:, -T:]
            else:
                position_ids = torch.arange(S0, S0 + T, device=h.device).unsqueeze(0).expand(B, T)
        step = cache.open_step(valid, h.dtype, h.device)
        runner = RunningTokens(self, step, *self.rotary_emb(h, position_ids=position_ids))
        every_token = _pack(valid)
        h = runner.layers("prelude", self.prelude, h, every_token)
        h, depth, log_q = self.core_pass(h, valid, runner, exit_depths, rule, tau)
        h = runner.layers("coda", self.coda, h, every_token)
        step.commit(depth)
        return AniraModelOutput(last_hidden_state=self.norm(h), exit_depths=depth, exit_log_probs=log_q,
                                past_key_values=cache)


class EveryToken:
    """Runs the block on every token, uncached (training and uncached inference): exited tokens are
    held at their frozen state inside the block and by the passthrough after it (Eq. 5)."""

    skips_idle = False  # in training an inactive iteration still carries the straight-through gradient

    def __init__(self, model: AniraModel, layer_kwargs: dict):
        self.model, self.layer_kwargs = model, layer_kwargs

    def iteration(self, i, h, e, halting):
        active = halting.active(i)
        return passthrough(h, self.model.iterate(i, h, e, self.call, hold=active), active)

    def call(self, r, layer, x):
        return layer(x, **self.layer_kwargs)

    def halt_logits(self, h):
        return self.model.decider(h).squeeze(-1).float()

    def exited(self, i, h, halting):
        pass

    def finish(self, h, depth):
        pass


def counterfactual_mask(keys: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The additive attention mask (B, 1, 2T, 2T) of a sequence [real tokens; counterfactual copies].

    keys (B, T) bool: the real tokens (False at padding). A real token t attends to the real tokens
    s <= t, as in the ordinary forward; its copy attends to the real tokens s < t and to itself, so
    the copy's state is token t's own had it alone run another depth. A row with nothing to attend
    (left padding) attends to itself, so no softmax sees an empty row."""
    B, T = keys.shape
    idx = torch.arange(T, device=keys.device)
    causal = idx.unsqueeze(1) >= idx.unsqueeze(0)  # (T, T): s <= t
    eye = torch.eye(T, dtype=torch.bool, device=keys.device)
    k = keys.unsqueeze(1)  # (B, 1, T) over key positions s
    real = (causal & k) | eye  # (B, T, T)
    copy_to_real = causal & ~eye & k
    allowed = torch.cat([torch.cat([real, torch.zeros_like(real)], dim=2),
                         torch.cat([copy_to_real, eye.expand(B, T, T)], dim=2)], dim=1)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=keys.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min).unsqueeze(1)


class EveryTokenAndItsContinuation(EveryToken):
    """`EveryToken` on [real tokens; counterfactual copies] (`counterfactual_mask`): the real half
    is the ordinary forward (it attends to real tokens only); each copy starts from the same h_0 and
    keeps running every iteration, whatever its token's exit. `states` holds the copies' h_1..h_D."""

    def __init__(self, model: AniraModel, layer_kwargs: dict, pair_kwargs: dict):
        super().__init__(model, pair_kwargs)
        self.states, self.copy = [], None

    def iteration(self, i, h, e, halting):
        if i == 1:  # a new pass (ANIRA-O's mode/mean rules probe first, then run): start the copies again
            self.states, self.copy = [], h
        T = h.shape[1]
        active = halting.active(i)
        hold = torch.cat([active, torch.ones_like(active)], dim=1)
        x = self.model.iterate(i, torch.cat([h, self.copy], dim=1), torch.cat([e, e], dim=1), self.call, hold=hold)
        real, self.copy = x[:, :T], x[:, T:]
        self.states.append(self.copy)
        return passthrough(h, real, active)


class RunningTokens:
    """Runs each layer on the tokens that need it only, against one `CacheStep` (cached inference):
    at iteration i the running tokens are the only queries (rows with none skip the block), and each
    exit below D stores the token's frozen keys/values, one per block layer, from h_{d_t}.

    With one new token per row (decoding) no token of the call can see another row's frozen entry, so
    exits are frozen once, after the loop; with several, right after their iteration, since later
    tokens of the same call attend to them at deeper iterations (through the causal mask)."""

    skips_idle = True

    def __init__(self, model: AniraModel, step: CacheStep, cos, sin):
        self.model, self.step, self.cos, self.sin = model, step, cos, sin
        self.valid = step.valid
        self.sel = None
        self.halt = torch.zeros(step.valid.shape, device=step.valid.device)  # frozen tokens keep their last a_i

    def caller(self, part, sel, iteration=1):
        """call(j, layer, x): run `part`'s layer j on the selected tokens' states x (B', a, H)."""
        seq, positions = sel.take(self.step.seq), (sel.take(self.cos), sel.take(self.sin))

        def call(j, layer, x):
            view = self.step.layer_view(part, j, sel.rows, seq, sel.ok, iteration)
            return layer(x, attention_mask=view.mask, past_key_values=view, position_embeddings=positions)
        return call

    def layers(self, part, layers, h, sel):
        """Prelude or Coda on the selected tokens of h (B, T, H)."""
        call = self.caller(part, sel)
        for j, layer in enumerate(layers):
            h = sel.put(h, call(j, layer, sel.take(h)))
        return h

    def iteration(self, i, h, e, halting):
        sel = self.sel = _pack(halting.running(i))
        if sel.rows.numel() == 0:
            return h
        e = sel.take(e) if self.model.injection is not None else None
        return sel.put(h, self.model.iterate(i, sel.take(h), e, self.caller("core", sel, i)))

    def halt_logits(self, h):
        if self.sel.rows.numel():
            self.halt = self.sel.put(self.halt, self.model.decider(self.sel.take(h)).squeeze(-1).float())
        return self.halt

    def exited(self, i, h, halting):
        if not self.step.one_step and i < self.model.config.max_depth:
            self.freeze(h, halting.exits(i), i)

    def finish(self, h, depth):
        if self.step.one_step:
            self.freeze(h, self.valid & (depth < self.model.config.max_depth), depth)

    def freeze(self, h, exiting, depth):
        """Store the frozen keys/values of the `exiting` tokens (B, T), exit depth `depth` (int or (B, T)) < D."""
        if not bool(exiting.any()):
            return
        if not self.model.config.recurrent:
            raise NotImplementedError("cached decoding of the untied (non-recurrent) baseline supports full "
                                      "depth only: its frozen tokens would need keys per untied block.")
        sel = _pack(exiting)
        state, cos, sin = sel.take(h), sel.take(self.cos).unsqueeze(1), sel.take(self.sin).unsqueeze(1)
        seq, depth = sel.take(self.step.seq), depth if isinstance(depth, int) else sel.take(depth)
        for r, layer in enumerate(self.model.block(1)[1]):
            attn = layer.self_attn
            x = layer.input_layernorm(state)
            shape = (*state.shape[:2], -1, attn.head_dim)
            k = attn.k_proj(x).view(shape).transpose(1, 2)  # RoPE as apply_rotary_pos_emb does it, k only
            v = attn.v_proj(x).view(shape).transpose(1, 2)
            self.step.add_frozen(r, sel.rows, k * cos + rotate_half(k) * sin, v, seq, sel.ok, depth)


class AniraForCausalLM(AniraPreTrainedModel, GenerationMixin):
    """ANIRA language model: `AniraModel` + LM head, loss = CE(answer tokens) + β·mean_t KL (Eq. 3)."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: AniraConfig):
        super().__init__(config)
        self.model = AniraModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, value):
        self.lm_head = value

    def _allocation_cache(self, past_key_values) -> AllocationCache:
        """The cache to use: the caller's AllocationCache (checked against this model), or a fresh one in
        place of None / the empty DynamicCache that generate() builds by default."""
        if isinstance(past_key_values, AllocationCache):
            past_key_values.check_layout(self.config)
            return past_key_values
        if past_key_values is None or (isinstance(past_key_values, Cache) and past_key_values.get_seq_length() == 0
                                       and not getattr(past_key_values, "_is_user_defined", False)):
            return AllocationCache(self.config)
        raise ValueError(
            f"AniraForCausalLM caches keys/values per recurrent iteration and exit depth, so it cannot use a "
            f"{type(past_key_values).__name__}; pass no past_key_values (generate() then builds an "
            "AllocationCache) or pass anira_lib.AllocationCache(model.config).")

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        exit_depths: torch.LongTensor | None = None,
        depth_rule: str | None = None,
        halt_threshold: float | None = None,
        past_key_values=None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        output_iterations: bool | int = False,
        **kwargs,
    ) -> AniraCausalLMOutput:
        """labels (B, T) follow the transformers convention: same positions as input_ids, shifted
        here, IGNORE_INDEX (-100) where unsupervised. The KL term averages over every non-pad token.

        output_iterations: True adds iteration_logits (B, T, D, V), what each token would predict had it
        alone exited at iteration i (see `AniraModel.forward`); an int k keeps the top k per iteration
        instead (iteration_top_logits / iteration_top_ids, (B, T, D, k): for large vocabularies)."""
        if output_iterations is not False and (use_cache or past_key_values is not None):
            raise ValueError("output_iterations reads the uncached forward; pass use_cache=False and no past_key_values.")
        if not isinstance(output_iterations, bool) and (not isinstance(output_iterations, int) or output_iterations < 1):
            raise ValueError(f"output_iterations must be True, False or a top-k count >= 1, got {output_iterations!r}.")
        cache = self._allocation_cache(past_key_values) if (use_cache or past_key_values is not None) else None
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         inputs_embeds=inputs_embeds, exit_depths=exit_depths, depth_rule=depth_rule,
                         halt_threshold=halt_threshold, past_key_values=cache,
                         output_iterations=output_iterations is not False)
        h = out.last_hidden_state
        logits = self.lm_head(h if not logits_to_keep else h[:, -logits_to_keep:])
        log_q = out.exit_log_probs
        kl = None
        if self.config.decider != "none" and (cache is None or labels is not None):  # not per decoded token
            kl_t = kl_to_prior(log_q, self.config.prior_lambda)
            if attention_mask is not None:
                w = attention_mask[:, -kl_t.shape[1]:].to(kl_t.dtype)  # with a cache the mask also covers the past
                kl = (kl_t * w).sum() / w.sum().clamp_min(1.0)
            else:
                kl = kl_t.mean()
        loss = ce = None
        if labels is not None and input_ids is not None and tuple(labels.shape) != tuple(input_ids.shape):
            raise ValueError(f"labels has shape {tuple(labels.shape)}; it must match input_ids, {tuple(input_ids.shape)} "
                             "(same positions, IGNORE_INDEX where unsupervised).")
        if labels is not None:
            shift_logits = logits[:, :-1].float() if not logits_to_keep else None
            if shift_logits is None:
                raise ValueError("labels cannot be combined with logits_to_keep.")
            target = labels[:, 1:].to(logits.device)
            n = (target != IGNORE_INDEX).sum()
            ce = F.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]), target.reshape(-1),
                                 ignore_index=IGNORE_INDEX, reduction="sum") / n.clamp_min(1)
            loss = ce if kl is None else ce + self.config.kl_beta * kl
        probs = log_q.exp()
        depths = torch.arange(1, probs.shape[-1] + 1, device=probs.device, dtype=probs.dtype)
        views = {}
        if out.iteration_hidden is not None:
            if output_iterations is True:
                views["iteration_logits"] = self.lm_head(out.iteration_hidden)  # (B, T, D, V)
            else:  # one iteration at a time: never the whole (B, T, D, V) at a natural-language vocabulary
                k = min(int(output_iterations), self.config.vocab_size)
                tops = [self.lm_head(out.iteration_hidden[:, :, i]).topk(k, dim=-1)
                        for i in range(out.iteration_hidden.shape[2])]
                views.update(iteration_top_logits=torch.stack([t.values for t in tops], dim=2),
                             iteration_top_ids=torch.stack([t.indices for t in tops], dim=2))
        return AniraCausalLMOutput(loss=loss, logits=logits, ce_loss=ce, kl_loss=kl, past_key_values=cache,
                                   exit_depths=out.exit_depths, exit_probs=probs,
                                   expected_depth=(probs * depths).sum(-1), iteration_states=out.iteration_states,
                                   iteration_halt_probs=out.iteration_halt_probs, **views)


__all__ = ["AniraModel", "AniraForCausalLM", "AniraPreTrainedModel", "AniraCausalLMOutput",
           "AniraModelOutput", "passthrough", "IGNORE_INDEX"]
