"""The decider math: distributions, prior, KL (Eq. 4), samplers (Eqs. 6-7), inference rules."""

import math

import pytest
import torch

from anira_lib.modeling.deciders import (
    depth_from_cdf,
    early_log_q,
    expected_depth,
    kl_to_prior,
    log_prior,
    online_log_q,
    select_depth,
    straight_through_gumbel,
    survival_from_one_hot,
)


@pytest.mark.parametrize("D,rate", [(1, 1.0), (4, 0.0), (6, 2.0), (14, 1.25)])
def test_prior_sums_to_one_and_decays(D, rate):
    p = log_prior(D, rate).exp()
    assert p.sum().item() == pytest.approx(1.0, abs=1e-6)
    if D > 1 and rate > 0:
        assert torch.all(p[1:] < p[:-1])  # p(d) ∝ exp(-λ d): strictly decreasing
        assert (p[1] / p[0]).item() == pytest.approx(math.exp(-rate), rel=1e-5)


@pytest.mark.parametrize("rate", [0.0, 0.7, 2.0])
def test_kl_matches_closed_form(rate):
    """KL(q || p_λ) = λ E_q[d] - H(q) + log Z, Z = Σ_{d=1}^D exp(-λ d) (Eq. 4, direction q -> prior)."""
    D = 6
    log_q = torch.log_softmax(torch.randn(5, 7, D, generator=torch.Generator().manual_seed(1)), -1)
    q = log_q.exp()
    entropy = -(q * log_q).sum(-1)
    log_z = torch.logsumexp(-rate * torch.arange(1, D + 1, dtype=torch.float32), 0)
    closed = rate * expected_depth(log_q) - entropy + log_z
    torch.testing.assert_close(kl_to_prior(log_q, rate), closed, atol=1e-5, rtol=1e-5)
    # KL is zero exactly at the prior and positive elsewhere
    prior = log_prior(D, rate).expand(2, 3, D)
    assert kl_to_prior(prior, rate).abs().max() < 1e-6
    assert (kl_to_prior(log_q, rate) > 0).all()


def test_early_distribution_sums_to_one_and_ignores_shift():
    logits = torch.randn(2, 3, 5)
    lq = early_log_q(logits)
    torch.testing.assert_close(lq.exp().sum(-1), torch.ones(2, 3))
    torch.testing.assert_close(early_log_q(logits + 7.0), lq)  # centred logits


def test_online_distribution_matches_product_formula():
    a = torch.randn(2, 3, 4)  # D = 5
    lam = torch.sigmoid(a)
    q = online_log_q(a).exp()
    torch.testing.assert_close(q.sum(-1), torch.ones(2, 3))
    survive = torch.ones(2, 3)
    for i in range(4):
        torch.testing.assert_close(q[..., i], lam[..., i] * survive)
        survive = survive * (1 - lam[..., i])
    torch.testing.assert_close(q[..., 4], survive)
    # extreme logits lose no mass (log space)
    q_ext = online_log_q(torch.tensor([[[-80.0, -80.0, 80.0]]])).exp()
    assert q_ext.sum().item() == pytest.approx(1.0, abs=1e-6)


def test_inverse_cdf_rule_on_known_distribution():
    q = torch.tensor([[[0.1, 0.3, 0.4, 0.2]]])
    lq = q.log()
    assert depth_from_cdf(lq, 0.05).item() == 1
    assert depth_from_cdf(lq, 0.39).item() == 2  # CDF(2) = 0.4 >= 0.39
    assert depth_from_cdf(lq, 0.41).item() == 3
    assert depth_from_cdf(lq, 1.0).item() == 4
    assert select_depth(lq, "mode").item() == 3
    assert select_depth(lq, "median").item() == 3  # CDF: .1 .4 .8 1
    assert select_depth(lq, "threshold", 0.09).item() == 1
    assert select_depth(lq, "mean").item() == round(0.1 + 0.6 + 1.2 + 0.8)
    with pytest.raises(ValueError, match="unknown"):
        select_depth(lq, "max")


def test_never_crossed_threshold_defaults_to_D():
    q = torch.tensor([[[0.25, 0.25, 0.25, 0.25 - 1e-3]]])  # sums to < 1 numerically
    assert depth_from_cdf(q.log(), 1.0).item() == 4


def test_samplers_follow_their_distribution():
    torch.manual_seed(0)
    q = torch.tensor([0.1, 0.5, 0.15, 0.25])
    lq = q.log().expand(20000, 1, 4).contiguous()
    gumbel = straight_through_gumbel(lq).argmax(-1).flatten()
    inverse_cdf = depth_from_cdf(lq, torch.rand(20000, 1)).flatten() - 1
    for samples in (gumbel, inverse_cdf):
        freq = torch.bincount(samples, minlength=4).float() / samples.numel()
        torch.testing.assert_close(freq, q, atol=0.015, rtol=0)


def test_straight_through_values_are_one_hot_with_soft_gradient():
    logits = torch.randn(4, 5, requires_grad=True)
    y = straight_through_gumbel(torch.log_softmax(logits, -1).unsqueeze(0))
    assert torch.equal(y.detach().sum(-1), torch.ones(1, 4))
    assert set(y.detach().unique().tolist()) <= {0.0, 1.0}
    (y * torch.arange(5.0)).sum().backward()
    assert logits.grad.abs().sum() > 0


def test_survival_mask():
    y = torch.tensor([[[0.0, 0.0, 1.0, 0.0]]])
    assert survival_from_one_hot(y).tolist() == [[[1.0, 1.0, 1.0, 0.0]]]


@pytest.mark.parametrize("decider", ["early", "online"])
@pytest.mark.parametrize("target", [1.5, 3.0, 5.5])
def test_bias_for_expected_depth(decider, target):
    from anira_lib.modeling.deciders import bias_for_expected_depth

    b = bias_for_expected_depth(decider, 6, target)
    lq = early_log_q(b) if decider == "early" else online_log_q(b.expand(5))
    assert expected_depth(lq).item() == pytest.approx(target, abs=1e-4)
