"""Converting a Llama into ANIRA: exact logits against the source (kept layers only), the fused
retrofitted-recurrence layout, save/load with the tokenizer, and cached generation."""

import json

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from anira_lib.modeling.retrofit import RetrofitError, convert_llama, from_llama, load_retrofitted, recurrent_indices

from .test_cache import cached_vs_full, left_padded_batch

VOCAB = 13  # test_cache's batches draw ids below 13


def tiny_llama(layers=6, seed=0, tie=False, vocab=VOCAB):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6,
                      tie_word_embeddings=tie, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    llama = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # random norms, so a norm copied to the wrong place shows
        for name, p in llama.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return llama


def batch(seed=3, B=2, T=11):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, VOCAB, (B, T), generator=g)


@torch.no_grad()
def uniform_depth_logits(model, ids):
    """The model's logits with every token forced to depth 1, and to depth D."""
    D = model.config.max_depth
    return [model(input_ids=ids, exit_depths=torch.full_like(ids, d)).logits for d in (1, D)]


@torch.no_grad()
def mixed_depth_logits(model, ids, seed=0):
    g = torch.Generator().manual_seed(seed)
    return model(input_ids=ids, exit_depths=torch.randint(1, model.config.max_depth + 1, ids.shape, generator=g)).logits


@pytest.mark.parametrize("decider", ["early", "online", "none"])
@pytest.mark.parametrize("tie", [False, True])
def test_no_layer_dropped_gives_the_source_logits_at_every_depth(decider, tie):
    llama = tiny_llama(tie=tie)
    ids = batch()
    with torch.no_grad():
        reference = llama(input_ids=ids).logits
    model = from_llama(llama, prelude=2, recurrent=2, coda=2, max_depth=3, decider=decider)
    assert model.config.input_injection and not model.config.tie_word_embeddings
    for logits in uniform_depth_logits(model, ids):
        assert (logits - reference).abs().max().item() < 1e-5
    # mixed depths are another model: exited tokens show deeper iterations their frozen state, not e
    assert (mixed_depth_logits(model, ids) - reference).abs().max().item() > 1e-4


def test_dropped_layers_give_the_llama_of_the_kept_layers():
    llama = tiny_llama(layers=8)
    keep = [0, 1, 3, 4, 6, 7]  # prelude 0-1, core 3-4 (chosen), coda 6-7; layers 2 and 5 dropped
    small_cfg = LlamaConfig(**{**llama.config.to_dict(), "num_hidden_layers": len(keep)})
    small = LlamaForCausalLM(small_cfg).eval()
    with torch.no_grad():
        small.model.embed_tokens.load_state_dict(llama.model.embed_tokens.state_dict())
        for mine, index in zip(small.model.layers, keep):
            mine.load_state_dict(llama.model.layers[index].state_dict())
        small.model.norm.load_state_dict(llama.model.norm.state_dict())
        small.lm_head.load_state_dict(llama.lm_head.state_dict())
        ids = batch()
        reference = small(input_ids=ids).logits
        assert (reference - llama(input_ids=ids).logits).abs().max() > 1e-2  # dropping layers matters
    model = from_llama(llama, prelude=2, recurrent=[3, 4], coda=2, max_depth=4, decider="online")
    for logits in uniform_depth_logits(model, ids):
        assert (logits - reference).abs().max().item() < 1e-5
    default = from_llama(llama, prelude=2, recurrent=2, coda=2, max_depth=2)  # R layers just before the Coda
    assert torch.equal(default.model.core[0].mlp.up_proj.weight, llama.model.layers[4].mlp.up_proj.weight)


def test_layer_choices_that_do_not_fit_are_refused():
    assert recurrent_indices(22, 4, 8, 4) == list(range(10, 18))  # TinyLlama's retrofit: core 10-17
    with pytest.raises(RetrofitError, match="do not fit between a Prelude of 2 and a Coda of 2 in 6 layers; use at most 2"):
        recurrent_indices(6, 2, 3, 2)
    with pytest.raises(RetrofitError, match=r"layers \[1\] are not between the Prelude"):
        recurrent_indices(6, 2, [1, 2], 2)
    with pytest.raises(RetrofitError, match="do not fit a Llama of 6 layers"):
        recurrent_indices(6, 4, 1, 3)
    with pytest.raises(RetrofitError, match="adapter_init='zero' is unknown"):
        from_llama(tiny_llama(), 2, 2, 2, 3, adapter_init="zero")


def fuse(layer) -> dict:
    """One LlamaDecoderLayer's weights in the fused layout, written here independently of the loader."""
    a, m = layer.self_attn, layer.mlp
    return {"norm_1.weight": layer.input_layernorm.weight,
            "attn.Wqkv.weight": torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]),
            "attn.proj.weight": a.o_proj.weight, "norm_2.weight": layer.post_attention_layernorm.weight,
            "mlp.fc.weight": torch.cat([m.gate_proj.weight, m.up_proj.weight]), "mlp.proj.weight": m.down_proj.weight}


def write_fused(model, folder, drop=None, add=None):
    m = model.model
    state = {"transformer.wte.weight": m.embed_tokens.weight, "transformer.adapter.weight": m.injection[0].weight,
             "transformer.ln_f.weight": m.norm.weight, "lm_head.weight": model.lm_head.weight,
             "transformer.freqs_cis": torch.zeros(4, 2)}  # a buffer the loader ignores
    for part, layers in (("prelude", m.prelude), ("core_block", m.core), ("coda", m.coda)):
        for i, layer in enumerate(layers):
            state.update({f"transformer.{part}.{i}.{k}": v for k, v in fuse(layer).items()})
    state.update(add or {})
    state = {k: v.detach().clone().contiguous() for k, v in state.items() if k != drop}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"n_embd": 32, "n_heads": 4, "n_kv_heads": 2, "rope_base": 10000.0,
                                                    "norm_eps": 1e-6, "block_size": 64}))


def test_a_fused_checkpoint_loads_to_the_logits_of_its_unfused_source(tmp_path):
    source = from_llama(tiny_llama(), prelude=1, recurrent=3, coda=2, max_depth=3, decider="none",
                        adapter_init="random")  # a trained-looking adapter: the state matters
    write_fused(source, tmp_path / "raven")
    loaded = load_retrofitted(tmp_path / "raven", max_depth=3, decider="none", initial_state="prelude")
    cfg = loaded.config
    assert (cfg.prelude_layers, cfg.recurrent_layers, cfg.coda_layers) == (1, 3, 2)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.intermediate_size) == (4, 2, 8, 48)
    ids = batch()
    mine, theirs = uniform_depth_logits(loaded, ids), uniform_depth_logits(source, ids)
    mine.append(mixed_depth_logits(loaded, ids))
    theirs.append(mixed_depth_logits(source, ids))
    for a, b in zip(mine, theirs):
        assert (a - b).abs().max().item() < 1e-5
    assert (mine[0] - mine[1]).abs().max() > 1e-3  # the adapter is not the identity: depth matters


def test_fused_checkpoints_it_cannot_read_are_named(tmp_path):
    source = from_llama(tiny_llama(), prelude=1, recurrent=3, coda=2, max_depth=3)
    write_fused(source, tmp_path / "a", drop="transformer.core_block.1.mlp.fc.weight")
    with pytest.raises(RetrofitError, match=r"core_block.1 has no \['mlp.fc.weight'\]"):
        load_retrofitted(tmp_path / "a", max_depth=3)
    write_fused(source, tmp_path / "b", drop="transformer.adapter.weight")
    with pytest.raises(RetrofitError, match=r"no tensor named \*adapter.weight"):
        load_retrofitted(tmp_path / "b", max_depth=3)
    write_fused(source, tmp_path / "d", add={"transformer.coda.0.norm_3.weight": torch.ones(32)})
    with pytest.raises(RetrofitError, match=r"coda.0 also holds \['norm_3.weight'\]"):
        load_retrofitted(tmp_path / "d", max_depth=3)
    write_fused(source, tmp_path / "c")
    with pytest.raises(RetrofitError, match="not a multiple of 5 query"):
        load_retrofitted(tmp_path / "c", max_depth=3, num_attention_heads=5, num_key_value_heads=5)
    (tmp_path / "c" / "config.json").write_text("{}")
    with pytest.raises(RetrofitError, match="gives no num_attention_heads.*pass num_attention_heads="):
        load_retrofitted(tmp_path / "c", max_depth=3)
    with pytest.raises(RetrofitError, match="is not a folder"):
        load_retrofitted(tmp_path / "nowhere", max_depth=3)


def trained_tokenizer():
    """A byte-level BPE tokenizer trained on the spot (nothing downloaded); decoding gives the text back."""
    from anira_lib.studies.natural_language import train_tokenizer

    corpus = ["two plus three is five", "one and one make two", "Q: how many? A: 4, 5.5 or -6."] * 20
    return train_tokenizer(corpus, vocab_size=300)


def test_convert_llama_folder_to_folder_keeps_the_tokenizer_and_auto_loads(tmp_path):
    llama = tiny_llama()
    llama.save_pretrained(tmp_path / "llama")
    tokenizer = trained_tokenizer()
    tokenizer.save_pretrained(tmp_path / "llama")
    convert_llama(tmp_path / "llama", tmp_path / "anira", prelude=2, recurrent=2, coda=2, max_depth=3, decider="online")
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(tmp_path / "anira").encode("two plus three") == tokenizer.encode("two plus three")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "anira").eval()
    assert type(loaded).__name__ == "AniraForCausalLM" and loaded.config.decider == "online"
    ids = batch()
    with torch.no_grad():
        depth_one = loaded(input_ids=ids, exit_depths=torch.ones_like(ids)).logits
        assert (depth_one - llama(input_ids=ids).logits).abs().max().item() < 1e-5
    with pytest.raises(RetrofitError, match="has no config.json"):
        convert_llama(tmp_path / "empty", tmp_path / "out", 2, 2, 2, 3)


@pytest.mark.parametrize("decider", ["early", "online"])
def test_cached_decoding_of_a_converted_model_equals_the_uncached_loop(decider):
    model = from_llama(tiny_llama(), prelude=1, recurrent=3, coda=2, max_depth=4, decider=decider,
                       adapter_init="random")
    with torch.no_grad():  # spread the decider so that tokens exit at many depths
        model.model.decider.down.weight.normal_(0, 4.0)
    logits_gap, probs_gap, same_depths, depths = cached_vs_full(model)
    assert logits_gap < 1e-4 and probs_gap < 1e-5 and same_depths and len(set(depths.tolist())) >= 3
    ids, mask = left_padded_batch()
    kw = dict(attention_mask=mask, max_new_tokens=6, pad_token_id=0)
    assert torch.equal(model.generate(ids, **kw), model.generate(ids, **kw, use_cache=False))
