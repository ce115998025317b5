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
# # 04 · LANO: language modelling on the PCFG cfg3b
#
# LANO has no single difficulty knob: every token of a cfg3b sentence is predicted, and how hard
# the next token is depends on the parse state (paper §5.2). We train ANIRA-E and ANIRA-O with the
# LM loss on windows of sentences that start at a sentence boundary, then measure on held-out windows:
#
# - the per-token expected depth Σ_d d·q(d) (the quantity Table 1 correlates with parser proxies),
# - KL(exact ‖ model) of the next-token distribution, the exact one from the prefix parser,
# - generation validity: the share of sampled sentences that the grammar derives.
#
# `notebooks/06_lano_proxies` reads `out_dir/lano_eval.npz` for Table 1. CPU defaults use a small
# model, small batches and a few hundred steps; `configs/notebooks/04_lano_paper.yaml` is Table 5's setting.

# %% tags=["parameters"]
window = 512             # tokens per training window (Table 5); sentences are 138-432 tokens
max_depth = 4            # D (Table 5: 6)
hidden_size = 64
intermediate_size = 256
num_attention_heads = 4
kl_beta = 0.01           # β
prior_lambda = 1.0       # λ
steps = 3000             # compiled: 9.5 min with evaluation on 2 cores (600 eager steps took 443 s)
batch_size = 4
lr = 2e-3
warmup_steps = 50
seed = 0
eval_windows = 32        # held-out windows for depth and KL
generations = 16         # sampled sentences for validity
device = "auto"
compile_training = True  # torch.compile the training step: 1.33-1.38x the eager step at this size (docs/lab_log.md)
depth_baselines = False  # also train fixed-1 and fixed-D: does depth lower the KL? (~16 min instead of 9.5)
processes = 2
out_dir = "runs/04_lano"
proxy_cache = "data/lano_proxies"  # parser proxies, computed once per window set
figure_dir = ""         # "" = <out_dir>/figures; "figures" refreshes the committed figures

# %%
import numpy as np
import pandas as pd
from IPython.display import display

from anira_lib.analysis.depth_necessity import DEPTH_BASELINES, depth_necessity
from anira_lib.studies.experiments import VARIANTS, evaluate_lano, train_variants
from anira_lib.display.plots import plot_sentence_proxies
from anira_lib.project import figure_folder, work_from_project_root

work_from_project_root()

settings = dict(task="lano", task_args={"window": window}, max_depth=max_depth, hidden_size=hidden_size,
                intermediate_size=intermediate_size, num_attention_heads=num_attention_heads, kl_beta=kl_beta,
                prior_lambda=prior_lambda, steps=steps, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps,
                seed=seed, device=device, compile=compile_training, checkpoint_every=max(steps // 4, 1))

# %% [markdown]
# ## Train both variants

# %%
runs = train_variants(settings, out_dir, processes=processes,
                      variants={**VARIANTS, **DEPTH_BASELINES} if depth_baselines else VARIANTS)
for name, run in runs.items():
    first, last = run.metrics[0], run.metrics[-1]
    print(f"{name}: train loss {first['loss']:.3f} -> {last['loss']:.3f} in {last['elapsed_s']:.0f}s")

# %% [markdown]
# ## Held-out evaluation
# The exact next-token distribution has entropy well above zero (cfg3b is ambiguous until late in a
# constituent), so the KL, not the accuracy, says how close a model is to the grammar.

# %%
report = evaluate_lano(runs, eval_windows, out_dir, generations=generations, proxy_cache=proxy_cache)
for name, s in report["summary"].items():
    print(f"{name}: mean E[depth] {s['mean_expected_depth']:.2f}, KL(exact‖model) {s['kl_to_exact_nats']:.3f} "
          f"nats/token, valid generations {100 * s['generation_validity']:.0f}% of {s['generations']}")
if depth_baselines:  # KL(fixed-1) − KL(fixed-D): what running all D iterations saves (one seed: 'unclear')
    kl = pd.DataFrame([{"variant": name, "kl_to_exact_nats": s["kl_to_exact_nats"]}
                       for name, s in report["summary"].items()])
    display(depth_necessity(kl, by=(), value="kl_to_exact_nats", lower_is_better=True, min_gap=0.05).round(3))

# %% [markdown]
# ## Expected depth along one window
# Depth of both variants over the first held-out window; sentence ends (EOS) are marked in the
# bottom panel, where the KL of ANIRA-E shows which tokens the model still finds hard.

# %%
arrays = report["arrays"]
tokens = arrays["windows"][0]
depths = {name: arrays[f"expected_depth_{name}"][0] for name in VARIANTS}
figure_path = figure_folder(figure_dir, out_dir) / "lano_depth_along_window.png"
plot_sentence_proxies(tokens, depths, {"KL ANIRA-E": arrays["kl_ANIRA-E"][0],
                                       "EOS": (np.asarray(tokens) == 4).astype(float)},
                      path=figure_path, title="LANO: per-token expected depth (held-out window)")
print("figure:", figure_path)
