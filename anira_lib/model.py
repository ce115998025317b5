"""ANIRA: Prelude -> shared recurrent core (<= D iterations, per-token exit) -> Coda (paper §3).

Read top to bottom: `passthrough` (Eq. 5), the two decider loops (`_run_early`, `_run_online`),
`AniraModel.forward`, then `AniraForCausalLM.forward` with the loss (Eqs. 3-4).

Blocks are transformers' `LlamaDecoderLayer` (attention through its SDPA/eager interface, RMSNorm,
SwiGLU), positions are `LlamaRotaryEmbedding`, masks are `create_causal_mask`: nothing here
re-implements attention. Layer slots, used by KV caches and FLOP counts: prelude 0..P-1,
recurrent iteration i (1-based) P+i-1, coda P+D..P+D+C-1.

Training unrolls all D iterations for every token (a static graph); a token that has exited keeps
presenting its frozen state to deeper iterations (passthrough), so the Coda reads h_{d_t}.
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
    apply_rotary_pos_emb,
)
from transformers.utils import ModelOutput

from .cache import AllocationCache, cache_signature
from .configuration import AniraConfig
from .deciders import (
    DeciderFFN,
    bias_for_expected_depth,
    depth_from_cdf,
    early_log_q,
    kl_to_prior,
    select_depth,
    straight_through_gumbel,
    survival_from_one_hot,
)

IGNORE_INDEX = -100


@dataclass
class AniraModelOutput(ModelOutput):
    """Hidden states after the Coda and the depth decisions.

    last_hidden_state: (B, T, H). exit_depths: (B, T) long in 1..D, the iterations each token ran.
    exit_log_probs: (B, T, D) log q(d | x_t) (one-hot at D for the fixed-depth baseline).
    """

    last_hidden_state: torch.Tensor | None = None
    exit_depths: torch.LongTensor | None = None
    exit_log_probs: torch.Tensor | None = None
    past_key_values: object | None = None


@dataclass
class AniraCausalLMOutput(ModelOutput):
    """loss = ce_loss + β·kl_loss (Eq. 3). exit_probs: (B, T, D); expected_depth: (B, T) Σ_d d·q(d)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    past_key_values: object | None = None
    ce_loss: torch.Tensor | None = None
    kl_loss: torch.Tensor | None = None
    exit_depths: torch.LongTensor | None = None
    exit_probs: torch.Tensor | None = None
    expected_depth: torch.Tensor | None = None


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


def _halt_level(rule: str, tau: float) -> float:
    """ANIRA-O stops at the first iteration whose CDF reaches this level (2.0: never, i.e. depth D)."""
    return {"median": 0.5, "full": 2.0}.get(rule, tau)


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
        """Write values (B', a, ...) back into x (B, T, ...) at the selected tokens."""
        if self.every:
            x[:] = values
        elif self.single:
            x[self.rows] = values
        else:
            b, j = self.ok.nonzero(as_tuple=True)
            x[self.rows[b], self.order[b, j]] = values[b, j]


def _pack(mask: torch.Tensor) -> _Packed:
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
    """Embeddings -> Prelude -> recurrent core with a depth decider -> Coda -> RMSNorm."""

    def __init__(self, config: AniraConfig):
        super().__init__(config)
        P, D, C = config.prelude_layers, config.max_depth, config.coda_layers
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.prelude = nn.ModuleList(LlamaDecoderLayer(config, i) for i in range(P))
        n_core = 1 if config.recurrent else D
        self.core = nn.ModuleList(LlamaDecoderLayer(config, P + j) for j in range(n_core))
        self.coda = nn.ModuleList(LlamaDecoderLayer(config, P + D + j) for j in range(C))
        self.norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = LlamaRotaryEmbedding(config=config)
        if config.decider == "early":
            self.decider = DeciderFFN(config.hidden_size, config.decider_intermediate_size, D)
        elif config.decider == "online":
            self.decider = DeciderFFN(config.hidden_size, config.decider_intermediate_size, 1)
        else:
            self.decider = None
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    def core_block(self, iteration: int) -> nn.Module:
        """The block run at recurrent iteration `iteration` (1-based): shared, or untied baseline."""
        return self.core[0] if self.config.recurrent else self.core[iteration - 1]

    # -- the recurrent core -----------------------------------------------------------------
    def _iterate(self, h, i, layer_kwargs):
        return self.core_block(i)(h, **layer_kwargs)

    def _run_fixed(self, h, depth, layer_kwargs):
        """Run D iterations with given per-token exit depths (B, T); no decider involved."""
        for i in range(1, self.config.max_depth + 1):
            h = passthrough(h, self._iterate(h, i, layer_kwargs), (depth >= i).to(h.dtype))
        return h

    def _run_early(self, h, layer_kwargs, exit_depths, rule, tau):
        """ANIRA-E: q from the Prelude output; sample (training, Eq. 6) or pick by `rule`."""
        log_q = early_log_q(self.decider(h))
        if exit_depths is not None:
            depth, y = exit_depths, None
        elif self.training:
            y = straight_through_gumbel(log_q, self.config.gumbel_temperature)
            depth = y.detach().argmax(dim=-1) + 1
        else:
            depth, y = select_depth(log_q, rule, tau), None
        if y is None:
            return self._run_fixed(h, depth, layer_kwargs), depth, log_q
        active = survival_from_one_hot(y)
        for i in range(1, self.config.max_depth + 1):
            h = passthrough(h, self._iterate(h, i, layer_kwargs), active[..., i - 1])
        return h, depth, log_q

    def _run_online(self, h, layer_kwargs, exit_depths, rule, tau):
        """ANIRA-O: halting prob. after each iteration; exit once CDF(i) >= u (Eq. 7).

        u ~ U(0,1) in training (straight through the one-hot exit), u = τ at inference. For the
        "mode"/"mean" rules, which need the whole distribution, a first pass runs every token to
        depth D to read q, and a second pass runs the chosen depths.
        """
        D = self.config.max_depth
        if exit_depths is None and not self.training and rule in ("mode", "mean"):
            with torch.no_grad():
                full = torch.full(h.shape[:2], D, dtype=torch.long, device=h.device)
                _, _, probe_log_q = self._run_online(h, layer_kwargs, full, "threshold", tau)
            exit_depths = select_depth(probe_log_q, rule, tau)
        if exit_depths is not None:
            u = None
        elif self.training:
            u = torch.rand(h.shape[:2], device=h.device)
        else:
            u = torch.full(h.shape[:2], _halt_level(rule, tau), device=h.device)

        B, T = h.shape[:2]
        active = torch.ones(B, T, device=h.device)
        log_survive = torch.zeros(B, T, device=h.device)
        cdf = torch.zeros(B, T, device=h.device)
        exited = torch.zeros(B, T, dtype=torch.bool, device=h.device)
        depth = torch.full((B, T), D, dtype=torch.long, device=h.device)
        log_q = []
        for i in range(1, D + 1):
            h = passthrough(h, self._iterate(h, i, layer_kwargs), active)
            if i < D:
                a = self.decider(h).squeeze(-1).float()
                log_p = F.logsigmoid(a) + log_survive
                log_survive = log_survive + F.logsigmoid(-a)
            else:
                log_p = log_survive
            log_q.append(log_p)
            p = log_p.exp()
            cdf = cdf + p
            if u is None:
                stop_now = exit_depths == i
            else:
                stop_now = ((cdf >= u) | (i == D)) & ~exited
            depth = torch.where(stop_now & ~exited, torch.full_like(depth, i), depth)
            exited = exited | stop_now
            y_i = stop_now.float()
            if self.training and u is not None:
                y_i = y_i + p - p.detach()
            active = active - y_i
        return h, depth, torch.stack(log_q, dim=-1)

    # -- cached path: each token runs only its own iterations (paper §3.2.4) --------------------
    def _frozen_kv(self, h, cos, sin):
        """Keys/values (B', kv_heads, a, hd) that tokens frozen in state h (B', a, H) present to every
        later iteration: the shared block's projections of h, with RoPE."""
        attn = self.core[0].self_attn
        x = self.core[0].input_layernorm(h)
        shape = (*h.shape[:2], -1, attn.head_dim)
        k = attn.k_proj(x).view(shape).transpose(1, 2)
        v = attn.v_proj(x).view(shape).transpose(1, 2)
        _, k = apply_rotary_pos_emb(k, k, cos, sin)
        return k, v

    def _forward_cached(self, h, attention_mask, position_ids, cache, exit_depths, rule, tau):
        """Prefill or decode T new tokens against `cache`. At recurrent iteration i only the tokens
        still running are queries (rows with none skip the block); keys are the cached slot-i
        entries plus the frozen keys/values of tokens that exited before i (Eq. 5)."""
        cfg = self.config
        B, T = h.shape[:2]
        P, D = cfg.prelude_layers, cfg.max_depth
        dev = h.device
        S0 = cache.seen
        if cache.batch_size not in (-1, B):
            raise ValueError(f"the cache holds {cache.batch_size} sequences but {B} were passed.")
        if attention_mask is not None:
            if attention_mask.ndim != 2 or attention_mask.shape[1] != S0 + T:
                raise ValueError(f"with a cache, attention_mask must be 2-D (B, cached + new) = ({B}, {S0 + T}); "
                                 f"got {tuple(attention_mask.shape)}.")
            valid = attention_mask[:, -T:].bool()
        else:
            valid = torch.ones(B, T, dtype=torch.bool, device=dev)
        if position_ids is None:
            if attention_mask is not None:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)[:, -T:]
            else:
                position_ids = torch.arange(S0, S0 + T, device=dev).unsqueeze(0).expand(B, T)
        if cfg.decider == "online" and exit_depths is None and rule not in ("median", "threshold", "full"):
            raise NotImplementedError(f"ANIRA-O's '{rule}' rule needs every token's whole exit distribution, "
                                      "which cached decoding never computes; use depth_rule='median' or "
                                      "'threshold' with a cache, or use_cache=False.")
        kv_heads = cfg.num_key_value_heads
        head_dim = cfg.head_dim
        cache.initialise(B, kv_heads, head_dim, h.dtype, dev)
        cos, sin = self.rotary_emb(h, position_ids=position_ids)
        seq = torch.arange(S0, S0 + T, device=dev).unsqueeze(0).expand(B, T)
        h = h.clone()

        def run(layer, slot, sel: _Packed) -> int:
            """Run `layer` on the selected tokens only; returns how many ran."""
            if sel.rows.numel() == 0:
                return 0
            attn_mask = cache.begin(slot, sel.rows, sel.take(seq), sel.ok, h.dtype)
            sel.put(h, layer(sel.take(h), attention_mask=attn_mask, past_key_values=cache,
                             position_embeddings=(sel.take(cos), sel.take(sin))))
            return int(sel.ok.sum())

        # One query per row (decoding): no token of this call can see another row's frozen entry, so
        # every token that exits early is frozen once, after the loop, from its final state h_{d_t}.
        defer = T == 1

        def freeze(exiting):
            """Store the frozen K/V of the `exiting` tokens (B, T), whose exit depth is < D."""
            if not bool(exiting.any()):
                return
            if not cfg.recurrent:
                raise NotImplementedError("cached decoding of the untied (non-recurrent) baseline supports "
                                          "full depth only: its frozen tokens would need per-layer keys.")
            sel = _pack(exiting)
            k, v = self._frozen_kv(sel.take(h), sel.take(cos), sel.take(sin))
            cache.add_frozen(sel.rows, k, v, sel.take(seq), sel.ok, sel.take(depth))

        every_token = _pack(valid)
        for slot, layer in enumerate(self.prelude):
            run(layer, slot, every_token)

        calls = 0
        if cfg.decider == "online":  # forced exit_depths still report the decider's distribution
            u = _halt_level(rule, tau)
            log_survive = torch.zeros(B, T, device=dev)
            cdf = torch.zeros(B, T, device=dev)
            halt_logit = torch.zeros(B, T, device=dev)
            exited = ~valid
            depth = torch.full((B, T), D, dtype=torch.long, device=dev)
            log_q = []
            for i in range(1, D + 1):
                running = valid & ~exited
                sel = _pack(running)
                calls += run(self.core_block(i), P + i - 1, sel)
                if i < D:
                    if sel.rows.numel():  # frozen tokens keep their last halting logit
                        sel.put(halt_logit, self.decider(sel.take(h)).squeeze(-1).float())
                    log_p = F.logsigmoid(halt_logit) + log_survive
                    log_survive = log_survive + F.logsigmoid(-halt_logit)
                else:
                    log_p = log_survive
                log_q.append(log_p)
                cdf = cdf + log_p.exp()
                stop = running & ((exit_depths == i) if exit_depths is not None else (cdf >= u) | (i == D))
                depth = torch.where(stop, torch.full_like(depth, i), depth)
                exited = exited | stop
                if not defer and i < D:
                    freeze(stop)
            log_q = torch.stack(log_q, dim=-1)
        else:
            if cfg.decider == "early":
                log_q = early_log_q(self.decider(h))
                depth = exit_depths if exit_depths is not None else select_depth(log_q, rule, tau)
            else:
                depth = exit_depths if exit_depths is not None else torch.full((B, T), D, device=dev)
                log_q = torch.log(F.one_hot(depth - 1, D).float())
            deepest = int(depth[valid].max()) if bool(valid.any()) else 0
            for i in range(1, deepest + 1):  # iterations no token reaches are skipped outright
                calls += run(self.core_block(i), P + i - 1, _pack(valid & (depth >= i)))
                if not defer and i < D:
                    freeze(valid & (depth == i))
        if defer:
            freeze(valid & (depth < D))

        for j, layer in enumerate(self.coda):
            run(layer, P + D + j, every_token)
        cache.exit_depths = torch.cat([cache.exit_depths, torch.where(valid, depth, 0)], dim=1)
        cache.seen += T
        cache.block_calls += calls
        return AniraModelOutput(last_hidden_state=self.norm(h), exit_depths=depth, exit_log_probs=log_q,
                                past_key_values=cache)

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
        **kwargs,
    ) -> AniraModelOutput:
        """input_ids (B, T) -> AniraModelOutput. `exit_depths` (B, T) in 1..D forces the depths.

        With `past_key_values` (an `AllocationCache`), runs the cached path: `attention_mask` then
        covers cached + new tokens (B, S + T), and each token runs only its own iterations."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        h = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        B, T = h.shape[:2]
        D = self.config.max_depth
        if exit_depths is not None:
            exit_depths = exit_depths.to(h.device).long()
            if exit_depths.shape != (B, T):
                raise ValueError(f"exit_depths has shape {tuple(exit_depths.shape)}; expected (B, T) = {(B, T)}.")
            if exit_depths.numel() and (exit_depths.min() < 1 or exit_depths.max() > D):
                raise ValueError(f"exit_depths must lie in 1..D = 1..{D}.")
        rule = depth_rule or self.config.resolved_depth_rule
        tau = self.config.halt_threshold if halt_threshold is None else halt_threshold
        if past_key_values is not None:
            return self._forward_cached(h, attention_mask, position_ids, past_key_values, exit_depths, rule, tau)
        if position_ids is None:
            if attention_mask is not None:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
            else:
                position_ids = torch.arange(T, device=h.device).unsqueeze(0).expand(B, T)
        mask = create_causal_mask(config=self.config, inputs_embeds=h, attention_mask=attention_mask,
                                  past_key_values=None, position_ids=position_ids)
        layer_kwargs = dict(attention_mask=mask, position_ids=position_ids,
                            position_embeddings=self.rotary_emb(h, position_ids=position_ids))

        for layer in self.prelude:
            h = layer(h, **layer_kwargs)

        if self.config.decider == "early":
            h, depth, log_q = self._run_early(h, layer_kwargs, exit_depths, rule, tau)
        elif self.config.decider == "online":
            h, depth, log_q = self._run_online(h, layer_kwargs, exit_depths, rule, tau)
        else:
            depth = exit_depths if exit_depths is not None else torch.full((B, T), D, device=h.device)
            h = self._run_fixed(h, depth, layer_kwargs)
            log_q = torch.log(F.one_hot(depth - 1, D).float())

        for layer in self.coda:
            h = layer(h, **layer_kwargs)
        return AniraModelOutput(last_hidden_state=self.norm(h), exit_depths=depth, exit_log_probs=log_q)


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
            if past_key_values.signature != cache_signature(self.config):
                raise ValueError(
                    f"this AllocationCache was built for (P, D, C, kv_heads, head_dim) = {past_key_values.signature}, "
                    f"but this model has {cache_signature(self.config)}; pass AllocationCache(model.config) or no cache.")
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
        **kwargs,
    ) -> AniraCausalLMOutput:
        """labels (B, T) follow the transformers convention: same positions as input_ids, shifted
        here, IGNORE_INDEX (-100) where unsupervised. The KL term averages over every non-pad token."""
        cache = self._allocation_cache(past_key_values) if (use_cache or past_key_values is not None) else None
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         inputs_embeds=inputs_embeds, exit_depths=exit_depths, depth_rule=depth_rule,
                         halt_threshold=halt_threshold, past_key_values=cache)
        h = out.last_hidden_state
        logits = self.lm_head(h if not logits_to_keep else h[:, -logits_to_keep:])
        log_q = out.exit_log_probs
        kl = None
        if self.config.decider != "none":
            kl_t = kl_to_prior(log_q, self.config.prior_lambda)
            if attention_mask is not None:
                w = attention_mask[:, -kl_t.shape[1]:].to(kl_t.dtype)  # with a cache the mask also covers the past
                kl = (kl_t * w).sum() / w.sum().clamp_min(1.0)
            else:
                kl = kl_t.mean()
        loss = ce = None
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
        return AniraCausalLMOutput(loss=loss, logits=logits, ce_loss=ce, kl_loss=kl, past_key_values=cache,
                                   exit_depths=out.exit_depths, exit_probs=probs,
                                   expected_depth=(probs * depths).sum(-1))


__all__ = ["AniraModel", "AniraForCausalLM", "AniraPreTrainedModel", "AniraCausalLMOutput",
           "AniraModelOutput", "passthrough", "IGNORE_INDEX"]
