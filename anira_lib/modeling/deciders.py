"""Depth deciders and the math around them (paper §3.1-3.2, Eqs. 3-7).

Shapes: B batch, T tokens, D max depth. Depths are 1-based (1..D) everywhere in this library.
A "distribution" is `log_q` of shape (B, T, D), log q(d | x_t) for d = 1..D.

- `DeciderFFN`: LayerNorm -> Linear(H->I, no bias) -> SiLU -> Linear(I->out, bias) (§3.1 footnote).
- ANIRA-E: `early_log_q` turns D logits (centred) into log q. Training samples with
  `straight_through_gumbel` (Eq. 6); inference takes the mode.
- ANIRA-O: halting logits a_i after iteration i give λ_i = σ(a_i) and
  q(i) = λ_i Π_{j<i} (1-λ_j), the rest of the mass on D (`online_log_q`). Training samples by
  inverse CDF, d = min{d : CDF(d) >= u}, u ~ U(0,1), straight through (Eq. 7); inference uses u = τ.
- `kl_to_prior`: KL(q_t || p_λ) with p_λ(d) ∝ exp(-λ d) normalised over d = 1..D (Eq. 4).
- `halting_policy`: the one place the per-token exit decisions are made during a forward pass
  (`PresetHalting` for ANIRA-E and fixed depth, `OnlineHalting` for ANIRA-O's survival/CDF
  recursion); the training loop, uncached inference and cached decoding all drive it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DeciderFFN(nn.Module):
    """FFN decider head: (..., H) -> (..., out). Same shape as the model's FFNs (width I)."""

    def __init__(self, hidden_size: int, intermediate_size: int, out_features: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size, elementwise_affine=True)
        self.up = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.act = nn.SiLU()
        self.down = nn.Linear(intermediate_size, out_features, bias=True)
        self.down.is_decider_output = True  # AniraPreTrainedModel._init_weights may set its bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.up(self.norm(x))))


# ---------------------------------------------------------------------------------------------
# distributions
# ---------------------------------------------------------------------------------------------
def early_log_q(logits: torch.Tensor) -> torch.Tensor:
    """ANIRA-E: (B, T, D) logits -> (B, T, D) log q, logits centred by their mean first (§3.1)."""
    centred = logits - logits.mean(dim=-1, keepdim=True)
    return torch.log_softmax(centred.float(), dim=-1)


def online_log_q(halt_logits: torch.Tensor) -> torch.Tensor:
    """ANIRA-O: (B, T, D-1) halting logits a_1..a_{D-1} -> (B, T, D) log q (§3.1).

    log q(i) = log σ(a_i) + Σ_{j<i} log σ(-a_j) for i < D, and log q(D) = Σ_{j<D} log σ(-a_j).
    Computed in log space, so no mass is lost to underflow.
    """
    a = halt_logits.float()
    log_halt = F.logsigmoid(a)
    log_go_on = F.logsigmoid(-a)
    survive_before = torch.cumsum(log_go_on, dim=-1) - log_go_on  # Σ_{j<i} log(1-λ_j)
    last = log_go_on.sum(dim=-1, keepdim=True)
    return torch.cat([log_halt + survive_before, last], dim=-1)


def log_prior(max_depth: int, rate: float, device=None) -> torch.Tensor:
    """(D,) log p_λ(d) for d = 1..D, p_λ(d) ∝ exp(-λ d), normalised over the truncated support."""
    d = torch.arange(1, max_depth + 1, dtype=torch.float32, device=device)
    return torch.log_softmax(-rate * d, dim=0)


def kl_to_prior(log_q: torch.Tensor, rate: float) -> torch.Tensor:
    """(B, T, D) log q -> (B, T) KL(q_t || p_λ) = Σ_d q(d) [log q(d) - log p_λ(d)] (Eq. 4)."""
    lp = log_prior(log_q.shape[-1], rate, device=log_q.device)
    q = log_q.exp()
    return (q * (log_q - lp)).sum(dim=-1)


def expected_depth(log_q: torch.Tensor) -> torch.Tensor:
    """(B, T, D) log q -> (B, T) E_q[d] = Σ_d d q(d)."""
    d = torch.arange(1, log_q.shape[-1] + 1, dtype=log_q.dtype, device=log_q.device)
    return (log_q.exp() * d).sum(dim=-1)


# ---------------------------------------------------------------------------------------------
# depth choice
# ---------------------------------------------------------------------------------------------
def straight_through_gumbel(log_q: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Eq. 6: (B, T, D) log q -> (B, T, D) one-hot sample with the Gumbel-softmax gradient
    (PyTorch's `gumbel_softmax(hard=True)`, i.e. one_hot + soft - soft.detach())."""
    return F.gumbel_softmax(log_q, tau=temperature, hard=True, dim=-1)


def depth_from_cdf(log_q: torch.Tensor, u: torch.Tensor | float) -> torch.Tensor:
    """Eq. 7: d = min{d : CDF(d) >= u}, D if never crossed. (B, T, D), u (B, T) or float -> (B, T) long."""
    cdf = torch.cumsum(log_q.exp(), dim=-1)
    if not torch.is_tensor(u):
        u = torch.full(cdf.shape[:-1], float(u), device=cdf.device, dtype=cdf.dtype)
    crossed = cdf >= u.unsqueeze(-1)
    crossed[..., -1] = True
    return crossed.float().argmax(dim=-1) + 1


def straight_through_one_hot(depth: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """One-hot of (B, T) depths with the gradient of q (straight-through estimator, Bengio 2013)."""
    q = log_q.exp()
    hard = F.one_hot(depth - 1, log_q.shape[-1]).to(q.dtype)
    return hard + q - q.detach()


def select_depth(log_q: torch.Tensor, rule: str, threshold: float = 0.5) -> torch.Tensor:
    """Deterministic inference depth, (B, T, D) log q -> (B, T) long in 1..D (§3.2.3, A.5)."""
    if rule == "mode":
        return log_q.argmax(dim=-1) + 1
    if rule == "median":
        return depth_from_cdf(log_q, 0.5)
    if rule == "threshold":
        return depth_from_cdf(log_q, threshold)
    if rule == "mean":
        return expected_depth(log_q).round().long().clamp(1, log_q.shape[-1])
    if rule == "full":  # every token runs D iterations: the same model at fixed depth, for comparisons
        return torch.full(log_q.shape[:-1], log_q.shape[-1], dtype=torch.long, device=log_q.device)
    raise ValueError(f"depth rule {rule!r} is unknown; use 'mode', 'median', 'threshold', 'mean' or 'full'.")


def bias_for_expected_depth(decider: str, max_depth: int, target: float) -> torch.Tensor:
    """Output bias of the decider FFN whose exit distribution has E[d] = target (bisection).

    "early": D logits s·d for d = 1..D. "online": one halting logit a, the same after every iteration.
    """
    def mean_depth(x: float) -> float:
        if decider == "early":
            lq = early_log_q(x * torch.arange(1, max_depth + 1, dtype=torch.float64))
        else:
            lq = online_log_q(torch.full((max_depth - 1,), x, dtype=torch.float64))
        return expected_depth(lq).item()

    lo, hi = -30.0, 30.0  # E[d] rises with s (early), falls with a (online)
    for _ in range(100):
        mid = (lo + hi) / 2
        too_deep = mean_depth(mid) > target
        if (decider == "early") == too_deep:
            hi = mid
        else:
            lo = mid
    x = (lo + hi) / 2
    if decider == "early":
        return x * torch.arange(1, max_depth + 1, dtype=torch.float32)
    return torch.tensor([x], dtype=torch.float32)


def survival_from_one_hot(y: torch.Tensor) -> torch.Tensor:
    """(B, T, D) (straight-through) one-hot of the exit depth -> (B, T, D) m_i = Σ_{d>=i} y_d.

    m_i = 1 iff the token is still active at iteration i (Eq. 5); gradients flow to y.
    """
    return torch.flip(torch.cumsum(torch.flip(y, dims=[-1]), dim=-1), dims=[-1])


# ---------------------------------------------------------------------------------------------
# halting policies: who runs iteration i, who exits after it
# ---------------------------------------------------------------------------------------------
PROBE_RULES = ("mode", "mean")  # ANIRA-O rules that need the whole exit distribution first


def halt_level(rule: str, tau: float) -> float:
    """ANIRA-O at inference stops at the first iteration whose CDF reaches this level (Eq. 7 with
    u = τ); 2.0 never does, so "full" runs every token to D."""
    levels = {"median": 0.5, "threshold": tau, "full": 2.0}
    if rule not in levels:
        raise ValueError(f"ANIRA-O decides online with the 'median', 'threshold' or 'full' rule, not {rule!r}; "
                         f"{PROBE_RULES} first need the whole exit distribution (a probe pass at depth D).")
    return levels[rule]


def needs_probe(decider: str, rule: str, forced, training: bool) -> bool:
    """True when ANIRA-O's inference rule needs q over all D iterations before any depth is chosen."""
    return decider == "online" and forced is None and not training and rule in PROBE_RULES


class HaltingPolicy:
    """Per-token exits over one forward pass of D iterations, for tokens (B, T).

    Drive it as: for i = 1..D, run the block where `active(i)` (float, exactly 0/1, with a straight-
    through gradient in training) or `running(i)` (bool, padding excluded) says; then `observe(i, a)`
    with ANIRA-O's halting logits a_i (B, T) after the block (None when `reads_state` is False or
    i = D); `exits(i)` (B, T) bool: the tokens whose exit depth is i. After the loop: `depth` (B, T)
    long in 1..D and `log_q` (B, T, D). `last_iteration()`: the deepest iteration any real token runs.
    """

    reads_state = False
    depth: torch.Tensor
    log_q: torch.Tensor

    def active(self, i: int) -> torch.Tensor:
        raise NotImplementedError

    def running(self, i: int) -> torch.Tensor:
        raise NotImplementedError

    def observe(self, i: int, halt_logits: torch.Tensor | None):
        pass

    def exits(self, i: int) -> torch.Tensor:
        raise NotImplementedError

    def last_iteration(self) -> int:
        raise NotImplementedError


class PresetHalting(HaltingPolicy):
    """Depths fixed before the loop: ANIRA-E (from q, Eq. 6 in training), fixed depth, forced depths.
    `one_hot` (B, T, D), a straight-through sample in training, gives the active masks' gradient."""

    def __init__(self, depth, log_q, valid, one_hot=None):
        self.depth, self.log_q, self.valid = depth, log_q, valid
        self.survival = None if one_hot is None else survival_from_one_hot(one_hot)

    def active(self, i):
        return (self.depth >= i).float() if self.survival is None else self.survival[..., i - 1]

    def running(self, i):
        return self.valid & (self.depth >= i)

    def exits(self, i):
        return self.valid & (self.depth == i)

    def last_iteration(self):
        return int(self.depth[self.valid].max()) if bool(self.valid.any()) else 0


class OnlineHalting(HaltingPolicy):
    """ANIRA-O: after iteration i < D, λ_i = σ(a_i), q(i) = λ_i Π_{j<i}(1 - λ_j), the rest on D; a token
    exits at the first i with CDF(i) >= u (Eq. 7): u ~ U(0, 1) in training (straight through the one-
    hot exit), u = `level` at inference, or at its `forced` depth. An exited token's a_i is read from
    its frozen state, so the caller may pass its last logit again."""

    reads_state = True

    def __init__(self, max_depth, valid, training=False, forced=None, level=0.5):
        B, T = valid.shape
        dev = valid.device
        self.D, self.forced = max_depth, forced
        self.u = None if forced is not None else (torch.rand(B, T, device=dev) if training else level)
        self.straight_through = training and forced is None
        self.active_now = torch.ones(B, T, device=dev) if self.straight_through else None
        self.log_survive = torch.zeros(B, T, device=dev)
        self.cdf = torch.zeros(B, T, device=dev)
        self.alive = valid  # running: real and not yet exited
        self.depth = torch.full((B, T), max_depth, dtype=torch.long, device=dev)
        self.stop = None
        self.steps = []

    def active(self, i):
        return self.active_now if self.straight_through else self.alive.float()

    def running(self, i):
        return self.alive

    def observe(self, i, halt_logits=None):
        if i < self.D:
            log_p = F.logsigmoid(halt_logits) + self.log_survive
            self.log_survive = self.log_survive + F.logsigmoid(-halt_logits)
        else:
            log_p = self.log_survive
        self.steps.append(log_p)
        p = log_p.exp()
        self.cdf = self.cdf + p
        if i == self.D:
            stop = self.alive
        elif self.u is None:
            stop = self.alive & (self.forced == i)
        else:
            stop = self.alive & (self.cdf >= self.u)
        self.stop = stop
        self.depth = self.depth.masked_fill(stop, i)
        self.alive = self.alive ^ stop
        if self.straight_through:
            self.active_now = self.active_now - (stop.float() + p - p.detach())

    def exits(self, i):
        return self.stop

    def last_iteration(self):
        return self.D  # every iteration adds to q, even once all tokens have exited

    @property
    def log_q(self):
        return torch.stack(self.steps, dim=-1)


def halting_policy(decider: str, decider_net, max_depth: int, prelude_out, valid, *, training: bool,
                   exit_depths=None, rule: str = "mode", tau: float = 0.5,
                   temperature: float = 1.0) -> HaltingPolicy:
    """The policy for one forward pass: decider "early" (ANIRA-E reads q from the Prelude output
    (B, T, H)), "online" (ANIRA-O) or "none" (fixed depth D). `exit_depths` (B, T) forces the depths;
    `valid` (B, T) bool marks real tokens."""
    D = max_depth
    if decider == "online":
        level = 0.5 if exit_depths is not None or training else halt_level(rule, tau)
        return OnlineHalting(D, valid, training, exit_depths, level)
    if decider == "early":
        log_q = early_log_q(decider_net(prelude_out))
        if exit_depths is not None:
            return PresetHalting(exit_depths, log_q, valid)
        if training:
            y = straight_through_gumbel(log_q, temperature)
            return PresetHalting(y.detach().argmax(dim=-1) + 1, log_q, valid, one_hot=y)
        return PresetHalting(select_depth(log_q, rule, tau), log_q, valid)
    depth = exit_depths if exit_depths is not None else torch.full(valid.shape, D, dtype=torch.long,
                                                                     device=valid.device)
    return PresetHalting(depth, torch.log(F.one_hot(depth - 1, D).float()), valid)


__all__ = [
    "PROBE_RULES", "halt_level", "needs_probe", "HaltingPolicy", "PresetHalting", "OnlineHalting",
    "halting_policy",
    "DeciderFFN", "early_log_q", "online_log_q", "log_prior", "kl_to_prior", "expected_depth",
    "straight_through_gumbel", "depth_from_cdf", "straight_through_one_hot", "select_depth",
    "survival_from_one_hot", "bias_for_expected_depth",
]
