"""`AniraConfig`: one config class for ANIRA-E, ANIRA-O and both baselines.

The model is Prelude (P Llama layers) -> one shared recurrent block (R Llama layers, optionally
preceded by an input-injection adapter) applied up to D times -> Coda (C Llama layers) -> RMSNorm ->
LM head (paper §3.1, Eqs. 1-2; the block's generalisation follows retrofitted recurrence,
docs/natural_language.md). The fields Llama's own modules
read (`hidden_size`, `num_attention_heads`, `rope_parameters`, ...) keep Llama's names, so
`LlamaDecoderLayer` and `LlamaRotaryEmbedding` are built straight from this config.
"""

from __future__ import annotations

import difflib

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

DECIDERS = ("early", "online", "none")
DEPTH_RULES = ("mode", "median", "threshold", "mean", "full")
INITIAL_STATES = ("prelude", "zeros", "random")


def check_depth_rule(rule) -> None:
    """Refuse an unknown inference depth rule (None means the decider's default)."""
    if rule is not None and rule not in DEPTH_RULES:
        close = difflib.get_close_matches(str(rule), DEPTH_RULES, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"depth_rule={rule!r} is unknown; {hint}use one of {DEPTH_RULES}, or None for the "
                         "decider's default.")


def check_halt_threshold(tau) -> None:
    """τ is a CDF level: a number in (0, 1]."""
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not 0.0 < tau <= 1.0:
        raise ValueError(f"halt_threshold (τ) must be a number in (0, 1], got {tau!r}; τ is the CDF level at "
                         "which ANIRA-O stops (0.5 = the median rule).")


@strict
class AniraConfig(PreTrainedConfig):
    r"""Configuration of an ANIRA model (Table 5 names in brackets).

    decider: "early" (ANIRA-E: depth distribution from the Prelude output), "online" (ANIRA-O:
        halting probability after each iteration) or "none" (fixed depth D baseline).
    recurrent: False gives the non-recurrent baseline: D untied blocks instead of one shared block.
    max_depth [D]: iterations of the recurrent block (or untied blocks when recurrent=False).
    recurrent_layers [R]: Llama layers in the recurrent block (1 in the paper's synthetic tasks; a
        retrofitted recurrent Llama has several). An exited token presents its frozen state to every
        layer of every deeper iteration.
    input_injection: each iteration first maps x <- W [x; e], W: Linear(2H -> H, no bias), e the
        Prelude output (retrofitted recurrence's adapter).
    initial_state: the state entering iteration 1: "prelude" (the Prelude output, the paper's choice),
        "zeros", or "random" (truncated normal, std sqrt(2/(5H)), clipped at ±3σ, drawn afresh per
        call, as in retrofitted recurrence). Anything but "prelude" needs input_injection, or the
        recurrent block would never see the input.
    prelude_layers [P], coda_layers [C]: Llama layers before and after the recurrent core.
    decider_intermediate_size: width I of the decider FFN (defaults to `intermediate_size`).
    kl_beta [β], prior_lambda [λ]: weight of KL(q_t || p_λ) and rate of the truncated exponential
        prior p_λ(d) ∝ exp(-λ d), d = 1..D (Eqs. 3-4).
    gumbel_temperature: temperature of the straight-through Gumbel-softmax (ANIRA-E, Eq. 6).
    depth_rule: inference depth rule, one of "mode", "median", "threshold" (CDF >= halt_threshold,
        Eq. 7 with u = τ), "mean" (rounded expected depth), "full" (every token runs D: the same
        model at fixed depth, for speed comparisons). None picks the paper's choice:
        "mode" for ANIRA-E, "median" for ANIRA-O.
    halt_threshold [τ]: CDF threshold of the "threshold" rule.
    initial_depth: if set, the decider's output bias starts the exit distribution at this expected
        depth (E: q(d) ∝ exp(s·d); O: one constant halting probability). Not in the paper; a way to
        begin where its training dynamics go first (§6.3: compute rises towards D, then falls).
    """

    model_type = "anira"
    keys_to_ignore_at_inference = ["past_key_values"]

    vocab_size: int = 64
    hidden_size: int = 64
    intermediate_size: int = 256
    num_attention_heads: int = 4
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    prelude_layers: int = 1
    max_depth: int = 4
    coda_layers: int = 1
    recurrent_layers: int = 1
    input_injection: bool = False
    initial_state: str = "prelude"
    recurrent: bool = True
    decider: str = "early"
    decider_intermediate_size: int | None = None
    kl_beta: float = 0.1
    prior_lambda: float = 1.0
    gumbel_temperature: float = 1.0
    depth_rule: str | None = None
    halt_threshold: float = 0.5
    initial_depth: float | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 512
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6
    rope_parameters: dict | None = None
    attention_bias: bool = False
    attention_dropout: float = 0.0
    mlp_bias: bool = False
    use_cache: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    tie_word_embeddings: bool = False

    def __setattr__(self, name, value):
        if name == "depth_rule":  # inference knobs are checked wherever they enter, assignment included
            check_depth_rule(value)
        elif name == "halt_threshold":
            check_halt_threshold(value)
        super().__setattr__(name, value)

    def __post_init__(self, **kwargs):
        if self.head_dim is None and self.num_attention_heads:
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.decider_intermediate_size is None:
            self.decider_intermediate_size = self.intermediate_size
        if self.rope_parameters is None:
            self.rope_parameters = {"rope_type": "default", "rope_theta": 10000.0}
        super().__post_init__(**kwargs)

    # -- derived sizes -------------------------------------------------------------------------
    @property
    def num_hidden_layers(self) -> int:
        """Layer calls of one full-depth forward pass: P + R·D + C (FLOP count, layer indices)."""
        return self.prelude_layers + self.recurrent_layers * self.max_depth + self.coda_layers

    @property
    def resolved_depth_rule(self) -> str:
        if self.depth_rule is not None:
            return self.depth_rule
        return "median" if self.decider == "online" else "mode"

    def validate_architecture(self):
        """Reject knobs outside their range with a message that names the field and the fix."""
        if self.decider not in DECIDERS:
            raise ValueError(f"decider={self.decider!r} is unknown; use one of {DECIDERS} "
                             "('early' = ANIRA-E, 'online' = ANIRA-O, 'none' = fixed depth).")
        if self.max_depth < 1:
            raise ValueError(f"max_depth (D) must be >= 1, got {self.max_depth}.")
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_attention_heads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        for name in ("prelude_layers", "coda_layers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if self.recurrent_layers < 1:
            raise ValueError(f"recurrent_layers (R) must be >= 1, got {self.recurrent_layers}; "
                             "R = 1 is the paper's single shared layer.")
        if self.initial_state not in INITIAL_STATES:
            raise ValueError(f"initial_state={self.initial_state!r} is unknown; use one of {INITIAL_STATES}.")
        if self.initial_state != "prelude" and not self.input_injection:
            raise ValueError(f"initial_state={self.initial_state!r} needs input_injection=True: without the "
                             "adapter the recurrent block would never see the Prelude output.")
        if self.kl_beta < 0:
            raise ValueError(f"kl_beta (β) must be >= 0, got {self.kl_beta}; β=0 disables the KL term.")
        if self.prior_lambda < 0:
            raise ValueError(f"prior_lambda (λ) must be >= 0, got {self.prior_lambda}; λ=0 is a uniform prior.")
        if self.gumbel_temperature <= 0:
            raise ValueError(f"gumbel_temperature must be > 0, got {self.gumbel_temperature}.")
        check_depth_rule(self.depth_rule)
        check_halt_threshold(self.halt_threshold)
        if self.initial_depth is not None and not 1.0 < self.initial_depth < self.max_depth:
            raise ValueError(f"initial_depth must lie strictly between 1 and max_depth={self.max_depth}, "
                             f"got {self.initial_depth}; None keeps the plain initialisation.")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(f"hidden_size={self.hidden_size} is not a multiple of "
                             f"num_attention_heads={self.num_attention_heads}.")


__all__ = ["AniraConfig", "DECIDERS", "DEPTH_RULES", "INITIAL_STATES", "check_depth_rule", "check_halt_threshold"]
