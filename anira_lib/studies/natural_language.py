"""The natural-language experiment (paper §6.6, Table 3) in one call: convert a Llama into the
fixed-depth baseline, ANIRA-E and ANIRA-O, fine-tune each on packed local text, evaluate all three
on GSM-Symbolic Main / P1 / P2.

`natural_language_run` does the three steps for real folders (a local Llama with its tokenizer, a
corpus, a GSM-Symbolic copy, the few-shot file). `smoke_inputs` makes stand-ins for all four on the
spot, nothing downloaded: a tokenizer trained on a generated corpus of worked word problems, a tiny
random Llama, synthetic GSM-Symbolic-layout rows. Numbers from the stand-ins are a smoke run of the
pipeline, not a finding.
"""

from __future__ import annotations

import json
from pathlib import Path


from .gsm_symbolic import build_prompt, chain_of_thought, evaluate_gsm, synthetic_rows, write_synthetic
from ..files import atomic_write_text
from ..results import write_frame

VARIANTS = {"fixed-depth": "none", "ANIRA-E": "early", "ANIRA-O": "online"}


def worked_problem_corpus(n: int, seed: int = 0) -> list[str]:
    """Documents for the smoke run: synthetic word problems with 0-2 extra clauses, each written as the
    few-shot format shows them ("Q: … A: Let's think step by step. … The final answer is N.")."""
    rows = [r for extra in (0, 1, 2) for r in synthetic_rows(n // 3 + 1, extra, seed=seed + 100)][:n]
    return [f"Q: {r['question']}\nA: Let's think step by step. {chain_of_thought(r['answer'])}" for r in rows]


def train_tokenizer(texts: list[str], folder: str | Path | None = None, vocab_size: int = 512):
    """A byte-level BPE tokenizer trained on `texts`, saved to `folder` if given (transformers' format)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    if folder is not None:
        fast.save_pretrained(folder)
    return fast


def smoke_inputs(folder: str | Path, documents: int = 3000, layers: int = 6, hidden_size: int = 64,
                 gsm_rows: int = 30, seed: int = 0) -> dict[str, Path]:
    """Stand-ins for the four inputs under `folder`: corpus/ (JSONL documents), llama/ (a random
    `LlamaForCausalLM` of `layers` layers with its tokenizer), gsm/ (GSM-Symbolic layout) and
    gsm/shots.jsonl. Returns their paths (the keys natural_language_run takes)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    texts = worked_problem_corpus(documents, seed)
    atomic_write_text(folder / "corpus" / "train.jsonl", "".join(json.dumps({"text": t}) + "\n" for t in texts))
    tok = train_tokenizer(texts, folder / "llama")
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=4 * hidden_size,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=2048, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(folder / "llama")
    gsm = write_synthetic(folder / "gsm", n=gsm_rows, shots=8, seed=seed)
    return {"llama_dir": folder / "llama", "corpus": folder / "corpus", "gsm_dir": gsm, "shots": gsm / "shots.jsonl"}


def natural_language_run(llama_dir, corpus, gsm_dir, shots, out_dir, prelude: int, recurrent, coda: int,
                         max_depth: int, train: dict, variants: dict = VARIANTS, splits=("main", "p1", "p2"),
                         limit: int | None = None, max_new_tokens: int = 256, eval_batch_size: int = 8,
                         processes: int = 2, retrofitted: bool = False, progress: bool = True) -> dict:
    """Convert (`out_dir/<variant>/init`), fine-tune (`out_dir/<variant>/run`, resumable: a killed run
    continues where its checkpoint is), evaluate. `train`: TrainConfig fields for the fine-tuning
    (steps, batch_size, lr, kl_beta, prior_lambda, ...) plus `max_length`, the packed row length;
    steps=0 evaluates the converted models as they are. retrofitted: `llama_dir` is a retrofitted
    recurrence checkpoint in the fused layout (its own P / R / C and adapter; prelude, recurrent and
    coda are then ignored), read by `load_retrofitted`. Writes gsm_rows.csv and gsm_summary.csv
    (Table 3's values beside ours) in out_dir; returns {"rows", "summary", "runs"}."""
    from transformers import AutoTokenizer

    from ..modeling.model import AniraForCausalLM
    from ..modeling.retrofit import convert_llama, load_retrofitted
    from ..training.run_config import TrainConfig
    from ..training.parallel_training import train_parallel

    out_dir = Path(out_dir)
    train = dict(train)
    max_length = train.pop("max_length", 4096)
    steps = train.get("steps", 0)
    models, runs = {}, {}
    configs = []
    for name, decider in variants.items():
        init = out_dir / variant_folder(name) / "init"
        if not (init / "config.json").is_file():  # converted once; a re-run reuses it
            if retrofitted:
                load_retrofitted(llama_dir, max_depth, decider=decider).save_pretrained(init)
                AutoTokenizer.from_pretrained(llama_dir, local_files_only=True).save_pretrained(init)
            else:
                convert_llama(llama_dir, init, prelude, recurrent, coda, max_depth, decider=decider)
        if steps:
            task_args = {"data": str(corpus), "tokenizer": str(init), "max_length": max_length,
                         "cache_dir": str(out_dir / "data_cache")}
            configs.append(TrainConfig.from_dict({"log_every": 10, "checkpoint_every": max(1, steps // 4), **train,
                                                  "task": "packed_lm", "task_args": task_args, "init_from": str(init),
                                                  "decider": decider, "out_dir": str(out_dir / variant_folder(name) / "run")}))
        else:
            models[name] = AniraForCausalLM.from_pretrained(init)
    if configs:
        for name, result in zip(variants, train_parallel(configs, processes=processes, resume="auto")):
            models[name], runs[name] = result.model, result
    tokenizer = AutoTokenizer.from_pretrained(out_dir / variant_folder(next(iter(variants))) / "init")
    rows, summary = evaluate_gsm(models, tokenizer, gsm_dir, shots, splits=splits, limit=limit,
                                 max_new_tokens=max_new_tokens, batch_size=eval_batch_size, progress=progress)
    write_frame(rows, out_dir / "gsm_rows.csv")
    write_frame(summary, out_dir / "gsm_summary.csv")
    return {"rows": rows, "summary": summary, "runs": runs}


def plot_table3(summary, path=None, title: str = "GSM-Symbolic"):
    """Accuracy (left) and answer-token depth (right) per split, one bar per variant; the paper's
    Table 3 values as black ticks where it has them."""
    import matplotlib.pyplot as plt
    import numpy as np

    from ..display.plots import finish_figure

    splits = list(dict.fromkeys(summary["split"]))
    names = list(dict.fromkeys(summary["variant"]))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    width = 0.8 / len(names)
    for ax, (ours, paper, label) in zip(axes, (("accuracy", "paper_accuracy", "accuracy (%)"),
                                             ("depth", "paper_depth", "mean depth (answer tokens)"))):
        for j, name in enumerate(names):
            rows = summary[summary["variant"] == name].set_index("split").reindex(splits)
            x = np.arange(len(splits)) + (j - (len(names) - 1) / 2) * width
            ax.bar(x, rows[ours], width, label=name)
            if paper in rows:
                ax.plot(x, rows[paper].astype(float), "k_", ms=12, mew=2, label="paper" if j == 0 else None)
        ax.set(xticks=range(len(splits)), xticklabels=splits, ylabel=label)
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    return finish_figure(fig, path)


def variant_folder(name: str) -> str:
    """A variant's folder name: 'fixed-depth' -> 'fixed-depth', 'ANIRA-E' -> 'anira-e'."""
    return name.lower()


def prompt_example(gsm_dir, shots, split: str = "main") -> str:
    """The prompt of a split's first question, to show what the models read."""
    from .gsm_symbolic import read_rows, read_split

    return build_prompt(read_rows(shots), read_split(gsm_dir, split, limit=1)[0]["question"])


__all__ = ["natural_language_run", "plot_table3", "smoke_inputs", "worked_problem_corpus", "train_tokenizer", "VARIANTS",
           "prompt_example"]
