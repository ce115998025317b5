"""Model contracts: passthrough (Eq. 5), gradient paths, baselines, loss, save/load, generate."""

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

import anira_lib  # noqa: F401  (registers the auto classes)
from anira_lib import AniraConfig, AniraForCausalLM
from anira_lib.modeling.deciders import kl_to_prior
from anira_lib.modeling.model import passthrough

from .conftest import tiny_config, tiny_model


def record_iterations(model, monkeypatch):
    """Store the state after every recurrent iteration and the Coda's input during one forward."""
    import anira_lib.modeling.model as m

    states, coda_in = [], []
    real = m.passthrough

    def spy(*args):
        out = real(*args)
        states.append(out.detach().clone())
        return out

    monkeypatch.setattr(m, "passthrough", spy)
    model.model.coda[0].register_forward_pre_hook(lambda mod, args: coda_in.append(args[0].detach().clone()))
    return states, coda_in


@pytest.mark.parametrize("decider", ["early", "online"])
@pytest.mark.parametrize("training", [True, False])
def test_exited_state_frozen_and_coda_reads_exit_state(decider, training, batch, monkeypatch):
    ids, labels = batch
    model = tiny_model(decider=decider, max_depth=5)
    model.train(training)
    torch.manual_seed(3)
    states, coda_in = record_iterations(model, monkeypatch)
    out = model(ids, labels=labels)
    assert len(states) == 5
    depth = out.exit_depths
    assert depth.min() >= 1 and depth.max() <= 5
    H = torch.stack(states, dim=2)  # (B, T, D, hidden)
    for b in range(ids.shape[0]):
        for t in range(ids.shape[1]):
            d = depth[b, t].item()
            for i in range(d, 5):  # states after iterations d+1..D equal h_d bit for bit
                assert torch.equal(H[b, t, i], H[b, t, d - 1])
            assert torch.equal(coda_in[0][b, t], H[b, t, d - 1])
    if training:
        assert depth.unique().numel() > 1  # mixed depths, so the test saw real freezing


def test_frozen_token_presents_frozen_state_to_others():
    """A later token attending at iteration i > d_j sees j's frozen state: changing what j would
    have computed beyond its exit (by forcing j deeper) changes later tokens' outputs."""
    model = tiny_model(decider="none", max_depth=4).eval()
    ids = torch.randint(3, 40, (1, 6))
    shallow = torch.full((1, 6), 4)
    shallow[0, 2] = 1
    out_full = model(ids, exit_depths=torch.full((1, 6), 4)).logits
    out_shallow = model(ids, exit_depths=shallow).logits
    torch.testing.assert_close(out_full[0, :2], out_shallow[0, :2])  # causal: earlier tokens unaffected
    assert not torch.allclose(out_full[0, 3:], out_shallow[0, 3:])


@pytest.mark.parametrize("decider", ["early", "online"])
def test_gradients_reach_decider_through_straight_through_estimator(decider, batch):
    ids, labels = batch
    model = tiny_model(decider=decider, kl_beta=0.0).train()  # β = 0: only the ST path is left
    torch.manual_seed(0)
    model(ids, labels=labels).loss.backward()
    grads = [p.grad for p in model.model.decider.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum().item() for g in grads) > 0


@pytest.mark.parametrize("decider", ["early", "online"])
@pytest.mark.parametrize("d", [1, 2, 4])
def test_forced_depth_equals_fixed_depth_baseline(decider, d, batch):
    ids, _ = batch
    adaptive = tiny_model(decider=decider, max_depth=4).eval()
    fixed = AniraForCausalLM(tiny_config(decider="none", max_depth=d)).eval()
    state = {k: v for k, v in adaptive.state_dict().items() if ".decider." not in k}
    missing, unexpected = fixed.load_state_dict(state, strict=False)
    assert not missing and not unexpected
    forced = adaptive(ids, exit_depths=torch.full(ids.shape, d)).logits
    torch.testing.assert_close(forced, fixed(ids).logits, atol=1e-6, rtol=1e-6)


def test_untied_baseline_with_equal_blocks_equals_recurrent(batch):
    ids, _ = batch
    rec = tiny_model(decider="none", max_depth=3).eval()
    untied = AniraForCausalLM(tiny_config(decider="none", max_depth=3, recurrent=False)).eval()
    assert len(untied.model.core) == 3
    state = rec.state_dict()
    new = {}
    for k, v in untied.state_dict().items():
        src = k.replace(f"core.{k.split('core.')[1].split('.')[0]}.", "core.0.") if "core." in k else k
        new[k] = state[src]
    untied.load_state_dict(new)
    torch.testing.assert_close(untied(ids).logits, rec(ids).logits)
    n_rec = sum(p.numel() for p in rec.parameters())
    n_untied = sum(p.numel() for p in untied.parameters())
    assert n_untied > n_rec


@pytest.mark.parametrize("decider", ["early", "online"])
def test_loss_is_answer_ce_plus_beta_kl_over_all_tokens(decider, batch):
    ids, labels = batch
    model = tiny_model(decider=decider, kl_beta=0.3, prior_lambda=1.5).eval()
    mask = torch.ones_like(ids)
    mask[0, -1] = 0
    out = model(ids, attention_mask=mask, labels=labels)
    logits = out.logits[:, :-1]
    target = labels[:, 1:]
    sup = target != -100
    ce = torch.nn.functional.cross_entropy(logits[sup], target[sup])
    kl_t = kl_to_prior(out.exit_probs.log(), 1.5)
    kl = kl_t[mask.bool()].mean()
    torch.testing.assert_close(out.ce_loss, ce)
    torch.testing.assert_close(out.kl_loss, kl)
    torch.testing.assert_close(out.loss, ce + 0.3 * kl)
    torch.testing.assert_close(out.exit_probs.sum(-1), torch.ones(ids.shape))
    d = torch.arange(1, 5, dtype=torch.float32)
    torch.testing.assert_close(out.expected_depth, (out.exit_probs * d).sum(-1))


@pytest.mark.parametrize("decider,rule", [("early", "mode"), ("early", "mean"), ("online", "median"),
                                          ("online", "threshold"), ("online", "mode"), ("online", "mean")])
def test_inference_depth_rules_are_deterministic(decider, rule, batch):
    ids, _ = batch
    model = tiny_model(decider=decider, depth_rule=rule, halt_threshold=0.3).eval()
    torch.manual_seed(0)
    a = model(ids)
    torch.manual_seed(1)
    b = model(ids)
    assert torch.equal(a.exit_depths, b.exit_depths)
    assert torch.equal(a.logits, b.logits)


def test_online_threshold_rule_stops_at_first_crossing(batch):
    """ANIRA-O at inference: exit depth = first i with CDF(i) >= τ of its own exit distribution."""
    ids, _ = batch
    for tau in (0.2, 0.5, 0.9):
        model = tiny_model(decider="online", max_depth=6, depth_rule="threshold", halt_threshold=tau).eval()
        out = model(ids)
        cdf = out.exit_probs.cumsum(-1)
        crossed = (cdf >= tau).float()
        crossed[..., -1] = 1
        expected = crossed.argmax(-1) + 1
        assert torch.equal(out.exit_depths, expected)


def test_save_load_round_trip(tmp_path, batch):
    ids, _ = batch
    for decider in ("early", "online", "none"):
        model = tiny_model(decider=decider).eval()
        model.save_pretrained(tmp_path / decider)
        assert (tmp_path / decider / "model.safetensors").is_file()
        loaded = AutoModelForCausalLM.from_pretrained(tmp_path / decider).eval()
        assert isinstance(loaded, AniraForCausalLM)
        assert AutoConfig.from_pretrained(tmp_path / decider).decider == decider
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=0, rtol=0)


def test_generate_without_cache_matches_manual_greedy():
    model = tiny_model(decider="online").eval()
    prompt = torch.randint(3, 40, (2, 5))
    gen = model.generate(prompt, max_new_tokens=4, do_sample=False, pad_token_id=0, eos_token_id=None)
    seq = prompt
    for _ in range(4):
        nxt = model(seq).logits[:, -1].argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], 1)
    assert torch.equal(gen, seq)


@pytest.mark.parametrize("kw,match", [
    (dict(decider="ponder"), "decider='ponder' is unknown"),
    (dict(max_depth=0), "max_depth"),
    (dict(kl_beta=-0.1), "kl_beta"),
    (dict(prior_lambda=-1.0), "prior_lambda"),
    (dict(depth_rule="max"), "depth_rule"),
    (dict(halt_threshold=1.5), "halt_threshold"),
])
def test_bad_model_config_names_the_field(kw, match):
    with pytest.raises(Exception, match=match):
        AniraConfig(**kw)


def test_bad_forced_depths(batch):
    ids, _ = batch
    model = tiny_model().eval()
    with pytest.raises(ValueError, match="1..D"):
        model(ids, exit_depths=torch.full(ids.shape, 5))
    with pytest.raises(ValueError, match="shape"):
        model(ids, exit_depths=torch.ones(1, 2, dtype=torch.long))


@pytest.mark.parametrize("decider", ["early", "online"])
def test_initial_depth_sets_starting_exit_distribution(decider, batch):
    ids, _ = batch
    model = tiny_model(decider=decider, max_depth=6, initial_depth=5.0).eval()
    assert model(ids).expected_depth.mean().item() == pytest.approx(5.0, abs=0.15)
    with pytest.raises(Exception, match="initial_depth"):
        AniraConfig(max_depth=4, initial_depth=4.0)


@pytest.mark.parametrize("rule", ["mode", "mean"])
def test_online_probe_rules_report_the_distribution_their_depths_come_from(rule):
    """ANIRA-O's mode/mean pick depths from q at full depth; exit_probs must be that q, so that
    exit_depths == rule(exit_probs) for every token (the forced pass's q differs from it)."""
    from anira_lib.modeling.deciders import select_depth

    tokens = 0
    for seed in range(4):
        model = tiny_model(seed=seed, decider="online", max_depth=6, depth_rule=rule).eval()
        with torch.no_grad():
            model.model.decider.down.weight.normal_(0, 2.0)
        ids = torch.randint(3, 40, (4, 16), generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            out = model(ids)
        probs = out.exit_probs.double()
        assert torch.equal(out.exit_depths, select_depth(probs.log(), rule))
        tokens += ids.numel()
    assert tokens == 256
