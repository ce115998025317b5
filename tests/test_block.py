"""The generalised recurrent block: R Llama layers per iteration, optional input injection
x <- W[x; e], an initial state other than the Prelude output (retrofitted recurrence,
docs/natural_language.md). R = 1 without an adapter is the paper's block, bit for bit."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

import anira_lib  # noqa: F401  (registers the auto classes)
from anira_lib import AllocationCache, AniraConfig, AniraForCausalLM
from anira_lib.training.run_config import TrainConfig

from .conftest import tiny_config, tiny_model

REFERENCE = Path(__file__).parent / "data" / "pre_r_models"


@pytest.mark.parametrize("decider", ["early", "online", "none"])
def test_models_saved_before_the_generalisation_give_the_same_outputs(decider):
    """tests/data/make_reference_models.py ran at commit aa3af82, before R and the adapter existed.

    Bit for bit on the machine that wrote the reference; another CPU's float kernels round
    differently by about an ulp (3e-8 seen on an AVX-512 AMD EPYC, with the old code too), so
    values get 1e-6 and exit depths must be equal."""
    ref = load_file(REFERENCE / "outputs.safetensors")
    model = AutoModelForCausalLM.from_pretrained(REFERENCE / decider).eval()
    assert model.config.recurrent_layers == 1 and not model.config.input_injection
    with torch.no_grad():
        out = model(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"], use_cache=False)
    torch.testing.assert_close(out.logits, ref[f"{decider}.logits"], rtol=0, atol=1e-6)
    assert torch.equal(out.exit_depths, ref[f"{decider}.exit_depths"])
    torch.testing.assert_close(out.exit_probs, ref[f"{decider}.exit_probs"], rtol=0, atol=1e-6)


def record_layer_inputs(model):
    inputs = []
    for r, layer in enumerate(model.model.core):
        layer.register_forward_pre_hook(lambda mod, args, r=r: inputs.append((r, args[0].detach().clone())))
    return inputs


@pytest.mark.parametrize("block", [dict(recurrent_layers=2), dict(recurrent_layers=3, input_injection=True)])
def test_an_exited_token_presents_its_frozen_state_to_every_layer_of_deeper_iterations(block, batch):
    ids, _ = batch
    model = tiny_model(decider="none", max_depth=4, **block).eval()
    R = block["recurrent_layers"]
    depths = torch.randint(1, 5, ids.shape, generator=torch.Generator().manual_seed(2))
    inputs = record_layer_inputs(model)
    coda_in = []
    model.model.coda[0].register_forward_pre_hook(lambda mod, args: coda_in.append(args[0].detach()))
    model(ids, exit_depths=depths)
    assert [r for r, _ in inputs] == list(range(R)) * 4
    x = torch.stack([x for _, x in inputs]).view(4, R, *ids.shape, -1)  # (iteration, layer, B, T, H)
    for b, t in torch.cartesian_prod(torch.arange(ids.shape[0]), torch.arange(ids.shape[1])).tolist():
        d = int(depths[b, t])
        for i in range(d, 4):  # iterations d+1..D (0-based i), every layer: the frozen state h_d
            for r in range(R):
                assert torch.equal(x[i, r, b, t], coda_in[0][b, t])
        if d < 4:  # and h_d is what the token's last active iteration produced, not a deeper one's
            assert not torch.equal(x[d - 1, 0, b, t], coda_in[0][b, t])


@pytest.mark.parametrize("decider", ["early", "online"])
def test_deep_block_with_adapter_trains_every_part(decider, batch):
    ids, labels = batch
    model = tiny_model(decider=decider, recurrent_layers=2, input_injection=True, initial_state="zeros").train()
    assert len(model.model.core) == 2 and len(model.model.injection) == 1
    assert model.model.injection[0].weight.shape == (32, 64) and model.model.injection[0].bias is None
    torch.manual_seed(0)
    model(ids, labels=labels).loss.backward()
    for name in ("model.core.0.mlp.down_proj.weight", "model.core.1.mlp.down_proj.weight",
                 "model.injection.0.weight", "model.decider.down.weight", "model.prelude.0.mlp.down_proj.weight"):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_untied_baseline_with_r_layers_equals_the_recurrent_block_when_weights_match(batch):
    ids, _ = batch
    kw = dict(decider="none", max_depth=3, recurrent_layers=2, input_injection=True)
    rec = tiny_model(**kw).eval()
    untied = AniraForCausalLM(tiny_config(recurrent=False, **kw)).eval()
    assert len(untied.model.core) == 6 and len(untied.model.injection) == 3
    state = rec.state_dict()
    new = {}
    for k in untied.state_dict():
        if ".core." in k:
            j = int(k.split(".core.")[1].split(".")[0])
            k_src = k.replace(f".core.{j}.", f".core.{j % 2}.")
        elif ".injection." in k:
            k_src = "model.injection.0." + k.split(".injection.")[1].split(".", 1)[1]
        else:
            k_src = k
        new[k] = state[k_src]
    untied.load_state_dict(new)
    torch.testing.assert_close(untied(ids).logits, rec(ids).logits, atol=0, rtol=0)
    cache = AllocationCache(untied.config)  # full depth: no frozen keys needed, cached equals uncached
    out = untied(ids, past_key_values=cache)
    torch.testing.assert_close(out.logits, rec(ids).logits, atol=1e-5, rtol=0)


def test_save_load_round_trip_of_a_deep_block(tmp_path, batch):
    ids, _ = batch
    model = tiny_model(decider="online", recurrent_layers=2, input_injection=True, initial_state="zeros").eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert (loaded.config.recurrent_layers, loaded.config.input_injection, loaded.config.initial_state) == (2, True, "zeros")
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=0, rtol=0)


def test_random_initial_state_is_truncated_normal_and_drawn_per_call(batch):
    ids, _ = batch
    model = tiny_model(decider="none", input_injection=True, initial_state="random").eval()
    e = torch.zeros(64, 128, 32)
    h0 = model.model.initial_state(e)
    std = (2 / (5 * 32)) ** 0.5
    assert h0.std().item() == pytest.approx(std * 0.9866, rel=0.02)  # a normal cut at ±3σ keeps 0.9866σ
    assert h0.abs().max().item() <= 3 * std + 1e-6
    assert not torch.equal(model(ids).logits, model(ids).logits)


def test_memory_accounting_counts_every_block_layer(batch):
    ids, _ = batch
    model = tiny_model(decider="none", max_depth=4, recurrent_layers=2).eval()
    depths = torch.randint(1, 5, ids.shape, generator=torch.Generator().manual_seed(3))
    cache = AllocationCache(model.config)
    model(ids, exit_depths=depths, past_key_values=cache)
    d = depths.float()
    per_token = 1 + 1 + 2 * (d + (d < 4).float())  # P + C + R·(d + [d < D])
    report = cache.memory_report()
    assert report["bytes_used"] / report["bytes_fixed_depth"] == pytest.approx(per_token.mean().item() / (1 + 2 * 4 + 1))
    assert report["used_over_fixed"] == pytest.approx(report["predicted_over_fixed"], rel=1e-6)
    assert cache.block_calls == int(depths.sum())
    assert all(pool.n == int(depths.sum() + (depths < 4).sum()) for pool in cache.core_pools)


@pytest.mark.parametrize("kw,match", [
    (dict(recurrent_layers=0), r"recurrent_layers \(R\) must be >= 1, got 0"),
    (dict(initial_state="noise"), r"initial_state='noise' is unknown; use one of \('prelude', 'zeros', 'random'\)"),
    (dict(initial_state="zeros"), r"initial_state='zeros' needs input_injection=True"),
])
def test_bad_block_configs_name_the_field_and_the_fix(kw, match):
    with pytest.raises(Exception, match=match):
        AniraConfig(**kw)
    with pytest.raises(Exception, match=match):
        TrainConfig(**kw)


def test_a_cache_built_for_another_block_is_refused_by_name(batch):
    ids, _ = batch
    model = tiny_model(recurrent_layers=2).eval()
    with pytest.raises(ValueError, match=r"built for another model: recurrent_layers=1 \(model: 2\); "
                                         r"pass AllocationCache\(model.config\)"):
        model(ids, past_key_values=AllocationCache(tiny_config()))
