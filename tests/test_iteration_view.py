"""output_iterations: every token's logits at every iteration equal a forward in which that token alone
exits there, checked exhaustively (every token × every depth) over deciders, R, input injection and padding."""

import itertools

import pytest
import torch

from anira_lib.modeling.model import counterfactual_mask

from .conftest import tiny_model

D = 3
CONFIGS = list(itertools.product(("early", "online", "none"), (1, 2), (False, True), (False, True)))


def inputs(pad: bool):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 40, (2, 6), generator=g)
    mask = torch.ones_like(ids)
    if pad:  # left padding in the second row
        mask[1, :2] = 0
        ids[1, :2] = 0
    return ids, mask


@pytest.mark.parametrize("decider,R,injection,pad", CONFIGS)
def test_each_iteration_row_is_the_forward_where_that_token_alone_exits_there(decider, R, injection, pad):
    model = tiny_model(seed=3, decider=decider, max_depth=D, recurrent_layers=R, input_injection=injection,
                       initial_depth=2.0 if decider != "none" else None).double().eval()
    ids, mask = inputs(pad)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_iterations=True)
        B, T = ids.shape
        assert out.iteration_logits.shape == (B, T, D, 40) and out.iteration_states.shape == (B, T, D, 32)
        real = mask.bool()
        # the row at a token's own exit depth is the ordinary logits
        own = out.iteration_logits.gather(2, (out.exit_depths - 1)[..., None, None].expand(B, T, 1, 40)).squeeze(2)
        torch.testing.assert_close(own[real], out.logits[real], rtol=0, atol=1e-10)
        for b, t, i in itertools.product(range(B), range(T), range(1, D + 1)):
            if not real[b, t]:
                continue
            forced = out.exit_depths.clone()
            forced[b, t] = i
            ref = model(input_ids=ids, attention_mask=mask, exit_depths=forced).logits[b, t]
            torch.testing.assert_close(out.iteration_logits[b, t, i - 1], ref, rtol=0, atol=1e-10,
                                       msg=f"token ({b}, {t}) forced to exit at {i}")
    if decider == "online":  # λ_i read from h_i gives the exit distribution up to each token's own exit
        lam = out.iteration_halt_probs
        assert lam.shape == (B, T, D) and torch.all(lam[..., -1] == 1)
        survive = torch.cumprod(torch.cat([torch.ones_like(lam[..., :1]), 1 - lam[..., :-1]], -1), -1)
        q = lam * survive
        upto = torch.arange(1, D + 1) <= out.exit_depths[..., None]
        torch.testing.assert_close(q[upto & real[..., None]].float(), out.exit_probs[upto & real[..., None]].float(),
                                   rtol=0, atol=1e-6)
    else:
        assert out.iteration_halt_probs is None


def test_top_k_form_matches_the_full_logits():
    model = tiny_model(seed=0, decider="online", max_depth=D).eval()
    ids, mask = inputs(True)
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask, output_iterations=True).iteration_logits
        top = model(input_ids=ids, attention_mask=mask, output_iterations=5)
    assert top.iteration_top_ids.shape == (2, 6, D, 5) and top.iteration_logits is None
    torch.testing.assert_close(top.iteration_top_logits, full.topk(5, dim=-1).values)
    torch.testing.assert_close(full.gather(-1, top.iteration_top_ids), top.iteration_top_logits)


def test_iteration_view_refuses_what_it_cannot_be():
    model = tiny_model(decider="early", max_depth=D)
    ids, mask = inputs(False)
    with pytest.raises(ValueError, match="inference view: call model.eval"):
        model(input_ids=ids, output_iterations=True)
    model.eval()
    with pytest.raises(ValueError, match="uncached forward"):
        model(input_ids=ids, output_iterations=True, use_cache=True)
    with pytest.raises(ValueError, match="top-k count >= 1"):
        model(input_ids=ids, output_iterations=0)


def test_counterfactual_mask_by_hand():
    keys = torch.tensor([[False, True, True]])
    allowed = counterfactual_mask(keys, torch.float32)[0, 0] == 0
    expected = torch.tensor([
        # real 0..2            copies 0..2
        [1, 0, 0, 0, 0, 0],    # real 0 (padding): itself only
        [0, 1, 0, 0, 0, 0],    # real 1: real s <= 1 that are tokens
        [0, 1, 1, 0, 0, 0],    # real 2
        [0, 0, 0, 1, 0, 0],    # copy 0: earlier real tokens (none) and itself
        [0, 0, 0, 0, 1, 0],    # copy 1: real 0 is padding, so itself only
        [0, 1, 0, 0, 0, 1],    # copy 2: real 1 and itself, never its own real state
    ], dtype=torch.bool)
    assert torch.equal(allowed, expected)
