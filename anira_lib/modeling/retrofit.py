"""ANIRA on a pretrained Llama (paper §6.6): retrofitted recurrence, then a depth decider.

`from_llama` turns a `LlamaForCausalLM` with L layers into an `AniraForCausalLM`: the Prelude is its
first P layers, the recurrent block R of its layers (by default the R just before the Coda, as
retrofitted recurrence does), the Coda its last C layers; the layers in between are dropped.
Embeddings, final norm and LM head are copied (untied), an input-injection adapter x <- W [x; e]
(W: H x 2H) is added before each iteration, and the decider ("early", "online" or "none") starts fresh.

`adapter_init="input"` sets W = [0 | I], so every iteration starts from the Prelude output e: the
block then computes the same thing at every iteration, and when every token runs the same number of
iterations (1 or D) the logits equal those of a Llama made of exactly the kept layers. Mixed depths
differ: an exited token presents its frozen state, not e, to deeper iterations (Eq. 5).

`load_retrofitted` reads a retrofitted-recurrence checkpoint in its fused ("Raven") layout from a local
folder (`config.json` + safetensors): `attn.Wqkv` is split into q, k, v by head counts, `mlp.fc`
into gate and up (gate first); `attn.proj`, `mlp.proj`, `norm_1`, `norm_2` are o_proj, down_proj and
the input / post-attention norms (docs/natural_language.md). `convert_llama` does the folder-to-folder
job: a Llama (and its tokenizer) in, an ANIRA model that `AutoModelForCausalLM` loads, tokenizer beside it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import torch

from .configuration import AniraConfig
from .model import AniraForCausalLM

ADAPTER_INITS = ("input", "state", "random")

# the Llama config fields an ANIRA config copies as they are
LLAMA_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
                "head_dim", "hidden_act", "max_position_embeddings", "rms_norm_eps", "rope_parameters",
                "attention_bias", "attention_dropout", "mlp_bias", "pad_token_id", "bos_token_id", "eos_token_id",
                "initializer_range")


class RetrofitError(ValueError):
    """A conversion that cannot be done as asked; the message names the problem and the fix."""


def recurrent_indices(n_layers: int, prelude: int, recurrent: int | Sequence[int], coda: int) -> list[int]:
    """Source layer indices of the recurrent block: R (an int) means the R layers just before the Coda;
    a sequence names them. Refuses overlaps with the Prelude or Coda and indices out of range."""
    if prelude < 0 or coda < 0 or prelude + coda > n_layers:
        raise RetrofitError(f"prelude={prelude} and coda={coda} do not fit a Llama of {n_layers} layers.")
    first_coda = n_layers - coda
    if isinstance(recurrent, int):
        if recurrent < 1 or prelude + recurrent > first_coda:
            raise RetrofitError(f"recurrent={recurrent} layers do not fit between a Prelude of {prelude} and a "
                                f"Coda of {coda} in {n_layers} layers; use at most {first_coda - prelude}.")
        return list(range(first_coda - recurrent, first_coda))
    indices = [int(i) for i in recurrent]
    if not indices or len(set(indices)) != len(indices):
        raise RetrofitError(f"recurrent={list(recurrent)} must name distinct layers, at least one.")
    outside = [i for i in indices if not prelude <= i < first_coda]
    if outside:
        raise RetrofitError(f"recurrent layers {outside} are not between the Prelude (layers 0..{prelude - 1}) and "
                            f"the Coda (layers {first_coda}..{n_layers - 1}).")
    return indices


def anira_config_from_llama(llama_config, prelude: int, recurrent_layers: int, coda: int, max_depth: int,
                            decider: str = "early", **overrides) -> AniraConfig:
    """An AniraConfig with the Llama's sizes, RoPE and token ids, input injection on, embeddings untied."""
    fields = {name: getattr(llama_config, name) for name in LLAMA_FIELDS if getattr(llama_config, name, None) is not None}
    fields.update(prelude_layers=prelude, recurrent_layers=recurrent_layers, coda_layers=coda, max_depth=max_depth,
                  decider=decider, input_injection=True, tie_word_embeddings=False)
    fields.update(overrides)
    return AniraConfig(**fields)


@torch.no_grad()
def init_adapter(weight: torch.Tensor, kind: str = "input") -> None:
    """W (H, 2H) acting on [x; e]: "input" [0 | I] (x <- e), "state" [I | 0] (x <- x), "random" left as is."""
    if kind not in ADAPTER_INITS:
        raise RetrofitError(f"adapter_init={kind!r} is unknown; use one of {ADAPTER_INITS}.")
    if kind == "random":
        return
    H = weight.shape[0]
    weight.zero_()
    eye = torch.eye(H, dtype=weight.dtype, device=weight.device)
    weight[:, H:] = eye if kind == "input" else 0
    weight[:, :H] = eye if kind == "state" else 0


@torch.no_grad()
def from_llama(llama, prelude: int, recurrent: int | Sequence[int], coda: int, max_depth: int,
               decider: str = "early", adapter_init: str = "input", **overrides) -> AniraForCausalLM:
    """A `LlamaForCausalLM` as an ANIRA model (module docstring). `overrides`: further AniraConfig
    fields (kl_beta, prior_lambda, initial_state, ...). The result has the source's dtype, on the CPU."""
    if adapter_init not in ADAPTER_INITS:
        raise RetrofitError(f"adapter_init={adapter_init!r} is unknown; use one of {ADAPTER_INITS}.")
    layers = llama.model.layers
    core = recurrent_indices(len(layers), prelude, recurrent, coda)
    config = anira_config_from_llama(llama.config, prelude, len(core), coda, max_depth, decider, **overrides)
    model = AniraForCausalLM(config).to(dtype=next(llama.parameters()).dtype)
    m = model.model
    m.embed_tokens.load_state_dict(llama.model.embed_tokens.state_dict())
    for mine, theirs in zip(m.prelude, layers[:prelude]):
        mine.load_state_dict(theirs.state_dict())
    for mine, index in zip(m.core, core):
        mine.load_state_dict(layers[index].state_dict())
    for mine, theirs in zip(m.coda, layers[len(layers) - coda:]):
        mine.load_state_dict(theirs.state_dict())
    m.norm.load_state_dict(llama.model.norm.state_dict())
    model.lm_head.weight.copy_(llama.get_output_embeddings().weight)  # a tied source is untied here
    for adapter in m.injection:
        init_adapter(adapter.weight, adapter_init)
    return model.eval()


# ----------------------------------------------------------------------------- the fused ("Raven") layout

BLOCK_PARTS = ("prelude", "core_block", "coda")
_BLOCK_KEY = re.compile(r"^(?:.*\.)?(prelude|core_block|coda)\.(\d+)\.(.+)$")

# config.json keys of a retrofitted checkpoint, with the Llama-style names first
CONFIG_KEYS = {"hidden_size": ("hidden_size", "n_embd"), "num_attention_heads": ("num_attention_heads", "n_heads"),
               "num_key_value_heads": ("num_key_value_heads", "n_kv_heads", "num_kv_heads"),
               "rms_norm_eps": ("rms_norm_eps", "norm_eps"), "rope_theta": ("rope_theta", "rope_base"),
               "max_position_embeddings": ("max_position_embeddings", "block_size")}


def read_state_dict(folder: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint folder: its *.safetensors files (or pytorch_model.bin, weights only)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not folder.is_dir():
        raise RetrofitError(f"{folder} is not a folder; pass the local folder of the checkpoint "
                            "(nothing is downloaded).")
    shards = sorted(folder.glob("*.safetensors"))
    if shards:
        state = {}
        for shard in shards:
            state.update(load_file(str(shard)))
        return state
    if (folder / "pytorch_model.bin").is_file():
        return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise RetrofitError(f"{folder} holds no *.safetensors and no pytorch_model.bin.")


def _lookup(config: dict, name: str):
    """config.json's value for `name` under any of its known keys (None if absent)."""
    return next((config[k] for k in CONFIG_KEYS.get(name, (name,)) if config.get(k) is not None), None)


def _required(config: dict, name: str, given, path: Path):
    value = given if given is not None else _lookup(config, name)
    if value is None:
        raise RetrofitError(f"{path} gives no {name} (looked for {list(CONFIG_KEYS.get(name, (name,)))}); pass "
                            f"{name}=... to load_retrofitted.")
    return value


def split_fused_block(parts: dict[str, torch.Tensor], n_heads: int, n_kv_heads: int, where: str) -> dict[str, torch.Tensor]:
    """One fused block's tensors (names after the block index) as a `LlamaDecoderLayer` state dict."""
    need = ("norm_1.weight", "attn.Wqkv.weight", "attn.proj.weight", "norm_2.weight", "mlp.fc.weight", "mlp.proj.weight")
    missing = [n for n in need if n not in parts]
    if missing:
        raise RetrofitError(f"{where} has no {missing}; a retrofitted block holds {list(need)}.")
    extra = sorted(set(parts) - set(need))
    if extra:  # e.g. Huginn's sandwich norms (norm_3, norm_4): a Llama block has no place for them
        raise RetrofitError(f"{where} also holds {extra}, which a Llama block has no place for; this loader reads "
                            "retrofitted Llama checkpoints (pre-norm blocks), not other recurrent-depth models.")
    wqkv, fc = parts["attn.Wqkv.weight"], parts["mlp.fc.weight"]
    H = wqkv.shape[1]
    if (n_heads + 2 * n_kv_heads) * (wqkv.shape[0] // (n_heads + 2 * n_kv_heads)) != wqkv.shape[0]:
        raise RetrofitError(f"{where}.attn.Wqkv has {wqkv.shape[0]} rows, not a multiple of {n_heads} query + "
                            f"2 x {n_kv_heads} key/value heads; check num_attention_heads / num_key_value_heads.")
    head_dim = wqkv.shape[0] // (n_heads + 2 * n_kv_heads)
    q, k, v = wqkv.split([n_heads * head_dim, n_kv_heads * head_dim, n_kv_heads * head_dim])
    if fc.shape[0] % 2:
        raise RetrofitError(f"{where}.mlp.fc has {fc.shape[0]} rows; gate and up fused need an even number.")
    gate, up = fc.chunk(2)
    out = {"input_layernorm.weight": parts["norm_1.weight"], "self_attn.q_proj.weight": q,
           "self_attn.k_proj.weight": k, "self_attn.v_proj.weight": v, "self_attn.o_proj.weight": parts["attn.proj.weight"],
           "post_attention_layernorm.weight": parts["norm_2.weight"], "mlp.gate_proj.weight": gate,
           "mlp.up_proj.weight": up, "mlp.down_proj.weight": parts["mlp.proj.weight"]}
    if out["self_attn.o_proj.weight"].shape != (H, n_heads * head_dim):
        raise RetrofitError(f"{where}.attn.proj has shape {tuple(out['self_attn.o_proj.weight'].shape)}; expected "
                            f"{(H, n_heads * head_dim)} for {n_heads} heads of {head_dim}.")
    return out


def load_retrofitted(folder: str | Path, max_depth: int, decider: str = "early", num_attention_heads: int | None = None,
                     num_key_value_heads: int | None = None, initial_state: str = "random", **overrides) -> AniraForCausalLM:
    """A retrofitted recurrent Llama checkpoint (fused layout, local folder) as an ANIRA model.

    Layer counts and sizes come from the tensors; head counts, norm eps and RoPE base from config.json
    (or the arguments). Names: `*wte.weight`, `*{prelude,core_block,coda}.<i>.<part>`, `*adapter.weight`,
    `*ln_f.weight`, `lm_head.weight` (any common prefix, e.g. `transformer.`). initial_state: "random"
    (retrofitted recurrence's truncated-normal state; "prelude" or "zeros" for reproducible logits)."""
    folder = Path(folder)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    state = read_state_dict(folder)
    blocks: dict[str, dict[int, dict[str, torch.Tensor]]] = {part: {} for part in BLOCK_PARTS}
    single = {}
    for key, tensor in state.items():
        match = _BLOCK_KEY.match(key)
        if match:
            blocks[match[1]].setdefault(int(match[2]), {})[match[3]] = tensor
        else:  # wte.weight, adapter.weight, ln_f.weight, lm_head.weight: the last two name parts
            single[".".join(key.split(".")[-2:])] = tensor
    for name in ("wte.weight", "adapter.weight", "ln_f.weight", "lm_head.weight"):
        if name not in single:
            raise RetrofitError(f"{folder} has no tensor named *{name}; is it a retrofitted recurrence checkpoint "
                                "in the fused layout? (A plain Llama folder converts with from_llama / convert_llama.)")
    if not blocks["core_block"]:
        raise RetrofitError(f"{folder} has no core_block.<i> tensors: no recurrent block to iterate.")
    for part, found in blocks.items():
        if sorted(found) != list(range(len(found))):
            raise RetrofitError(f"{folder}: {part} blocks {sorted(found)} are not numbered 0..{len(found) - 1}.")
    n_heads = int(_required(config, "num_attention_heads", num_attention_heads, config_path))
    n_kv = int(num_key_value_heads or _lookup(config, "num_key_value_heads") or n_heads)  # absent: one per head
    embed, adapter = single["wte.weight"], single["adapter.weight"]
    H = embed.shape[1]
    if adapter.shape != (H, 2 * H):
        raise RetrofitError(f"{folder}: adapter.weight has shape {tuple(adapter.shape)}; expected {(H, 2 * H)}.")
    layers = {part: [split_fused_block(found[i], n_heads, n_kv, f"{part}.{i}") for i in range(len(found))]
              for part, found in blocks.items()}
    first = layers["core_block"][0]
    rope = overrides.pop("rope_parameters", None) or config.get("rope_parameters") or {
        "rope_type": "default", "rope_theta": float(_required(config, "rope_theta", overrides.pop("rope_theta", None),
                                                              config_path))}
    fields = dict(vocab_size=embed.shape[0], hidden_size=H, intermediate_size=first["mlp.gate_proj.weight"].shape[0],
                  num_attention_heads=n_heads, num_key_value_heads=n_kv,
                  head_dim=first["self_attn.q_proj.weight"].shape[0] // n_heads,
                  rms_norm_eps=float(_lookup(config, "rms_norm_eps") or 1e-5), rope_parameters=rope,
                  max_position_embeddings=int(_lookup(config, "max_position_embeddings") or 4096),
                  prelude_layers=len(layers["prelude"]), recurrent_layers=len(layers["core_block"]),
                  coda_layers=len(layers["coda"]), max_depth=max_depth, decider=decider, input_injection=True,
                  initial_state=initial_state, tie_word_embeddings=False)
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        if key in config:
            fields[key] = config[key]
    fields.update(overrides)
    model = AniraForCausalLM(AniraConfig(**fields)).to(dtype=embed.dtype)
    m = model.model
    with torch.no_grad():
        m.embed_tokens.weight.copy_(embed)
        for mine, theirs in zip((*m.prelude, *m.core, *m.coda),
                                (*layers["prelude"], *layers["core_block"], *layers["coda"])):
            mine.load_state_dict(theirs)
        m.injection[0].weight.copy_(adapter)
        m.norm.weight.copy_(single["ln_f.weight"])
        model.lm_head.weight.copy_(single["lm_head.weight"])
    return model.eval()


def convert_llama(source: str | Path, out_dir: str | Path, prelude: int, recurrent: int | Sequence[int], coda: int,
                  max_depth: int, decider: str = "early", adapter_init: str = "input", **overrides) -> AniraForCausalLM:
    """Folder to folder: the Llama in `source` (`from_pretrained`, local only) converted by `from_llama`,
    saved with `save_pretrained` to `out_dir`, its tokenizer (if `source` has one) saved beside it."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    source = Path(source)
    if not (source / "config.json").is_file():
        raise RetrofitError(f"{source} has no config.json; pass the local folder of a LlamaForCausalLM "
                            "(save_pretrained writes one; nothing is downloaded).")
    llama = LlamaForCausalLM.from_pretrained(source, local_files_only=True)
    model = from_llama(llama, prelude, recurrent, coda, max_depth, decider, adapter_init, **overrides)
    model.save_pretrained(out_dir)
    if any((source / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        AutoTokenizer.from_pretrained(source, local_files_only=True).save_pretrained(out_dir)
    return model


__all__ = ["from_llama", "load_retrofitted", "convert_llama", "recurrent_indices", "init_adapter",
           "split_fused_block", "read_state_dict", "RetrofitError", "ADAPTER_INITS"]
