# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 13 · Natural language: ANIRA on a retrofitted recurrent Llama, GSM-Symbolic (Table 3)
#
# Paper §6.6: a pretrained Llama made depth-recurrent (Prelude = its first P layers, a recurrent block
# of R of its layers with an input-injection adapter, Coda = its last C layers), given ANIRA-E or
# ANIRA-O, fine-tuned on packed math text, and evaluated on GSM-Symbolic Main / P1 / P2 (P1 and P2 add
# one and two clauses) with an 8-shot chain-of-thought prompt and last-number scoring. The paper finds
# no more depth on the harder splits, and a small accuracy loss for a large compute saving (Table 3).
#
# Every input is read from a local folder (nothing is downloaded). **With the defaults below
# (`llama_dir = None`) the inputs are stand-ins made on the spot**: a tiny random Llama, a tokenizer
# trained on a generated corpus of worked word problems, and synthetic rows in GSM-Symbolic's layout.
# Those numbers are a smoke run of the pipeline, not a replication. For the real thing, point the
# parameters at a local Llama (or a retrofitted checkpoint converted with `load_retrofitted`), the
# corpus (Nemotron-CC-Math-v1-4plus as parquet / JSONL) and a local copy of apple/ml-gsm-symbolic;
# `configs/notebooks/13_natural_language_paper.yaml` is that file.

# %% tags=["parameters"]
llama_dir = None       # a local LlamaForCausalLM folder with its tokenizer; None: a tiny random one
retrofitted = False    # llama_dir is a retrofitted-recurrence checkpoint (fused layout, its own P/R/C)
corpus = None          # local parquet / JSON(L) / Arrow text (field "text"); None: generated worked problems
gsm_dir = None         # a local apple/ml-gsm-symbolic copy (generated_data/GSM_*.jsonl); None: synthetic rows
shots = None           # JSONL of 8 question / answer rows for the prompt; None: synthetic
prelude = 2            # P: the Llama's first P layers
recurrent = 2          # R: the R layers before the Coda form the recurrent block
coda = 2               # C: its last C layers
max_depth = 4          # D
steps = 300            # fine-tuning steps per variant (0: evaluate the converted models as they are)
batch_size = 16
max_length = 256       # packed row length (the paper: 4096)
lr = 1e-3
kl_beta = 0.05
prior_lambda = 1.0
splits = ["main", "p1", "p2"]
limit = 24             # questions per split (None: all)
max_new_tokens = 64
documents = 3000       # stand-in corpus size
out_dir = "runs/13_natural_language"
figure_dir = ""         # "" = <out_dir>/figures; "figures" refreshes the committed figures

# %%
from pathlib import Path

from IPython.display import display

from anira_lib.studies.natural_language import natural_language_run, plot_table3, prompt_example, smoke_inputs
from anira_lib.project import figure_folder, work_from_project_root

work_from_project_root()

inputs = dict(llama_dir=llama_dir, corpus=corpus, gsm_dir=gsm_dir, shots=shots)
if any(v is None for v in inputs.values()):
    made = smoke_inputs(Path(out_dir) / "inputs", documents=documents)
    inputs = {k: v if v is not None else made[k] for k, v in inputs.items()}
    print("SMOKE RUN: stand-ins made for", [k for k, v in dict(llama_dir=llama_dir, corpus=corpus, gsm_dir=gsm_dir,
                                                                     shots=shots).items() if v is None])
print(prompt_example(inputs["gsm_dir"], inputs["shots"])[-400:])

# %% [markdown]
# ## Convert, fine-tune, evaluate

# %%
train = dict(steps=steps, batch_size=batch_size, lr=lr, kl_beta=kl_beta, prior_lambda=prior_lambda,
             max_length=max_length, warmup_steps=min(50, max(1, steps // 10)))
result = natural_language_run(**inputs, out_dir=out_dir, prelude=prelude, recurrent=recurrent, coda=coda,
                              max_depth=max_depth, train=train, splits=splits, limit=limit,
                              max_new_tokens=max_new_tokens, retrofitted=retrofitted)
summary = result["summary"]
display(summary.round(3))

# %% [markdown]
# ## Does depth rise on the harder splits? (the paper: no)
# Accuracy and mean answer-token depth per split; the paper's Table 3 beside ours.

# %%
display(summary.pivot(index="variant", columns="split", values=["accuracy", "depth"]).round(3))
smoke = llama_dir is None or corpus is None or gsm_dir is None or shots is None
figure_path = figure_folder(figure_dir, out_dir) / "table3_gsm_symbolic.png"
plot_table3(summary, figure_path, title="GSM-Symbolic" + (" (SMOKE RUN: stand-in model and data)" if smoke else ""))
print("figure:", figure_path)
for name, run in result["runs"].items():
    last = run.metrics[-1] if run.metrics else {}
    print(f"{name}: final training loss {last.get('loss', float('nan')):.3f}, mean depth {last.get('mean_depth', float('nan')):.2f}")
