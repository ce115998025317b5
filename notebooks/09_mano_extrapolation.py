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
# # 09 · MANO extrapolation: ANIRA against a fixed-depth and a non-recurrent Transformer
#
# Paper §6.3 (Fig. 9): four models trained with the same settings on ℓ ≤ L_train and evaluated up to
# 2·L_train: ANIRA-E, ANIRA-O, the fixed-depth recurrent baseline (every token runs D iterations) and
# the non-recurrent baseline (P + D + C untied layers). The paper finds ANIRA-O degrading most
# gracefully past L_train, with d̄ still rising with ℓ for the adaptive two. The paper trains its
# baselines at lr 1e-4 (`baseline_lr`); the CPU default keeps one learning rate for all four.
# A fifth model, fixed-1 (one iteration), says whether depth is needed inside the training range at
# all: where it is as accurate as the fixed-depth baseline, d̄ rising with ℓ is a habit, not a need.

# %% tags=["parameters"]
train_max = 4              # L_train (the paper: 16)
eval_max = 8               # evaluated on ℓ = 1..eval_max (at least 2·L_train)
modulus = 2                # the paper uses 23
max_depth = 4              # D
hidden_size = 64
intermediate_size = 256
kl_beta = 0.01
steps = 2500
batch_size = 64
lr = 2e-3
baseline_lr = None         # the baselines' learning rate (the paper: 1e-4); None: lr
seeds = [0]                # one run of each model per seed; figures show the min–max over seeds
eval_per_knob = 200
processes = 2
out_dir = "runs/09_mano_extrapolation"
figure_dir = ""         # "" = <out_dir>/figures; "figures" refreshes the committed figures

# %%
from IPython.display import display

from anira_lib.analysis.depth_necessity import depth_necessity
from anira_lib.studies.extrapolation import compare_extrapolation, past_training
from anira_lib.project import figure_folder, work_from_project_root

work_from_project_root()

settings = dict(task="mano", task_args={"modulus": modulus}, max_depth=max_depth, hidden_size=hidden_size,
                intermediate_size=intermediate_size, kl_beta=kl_beta, steps=steps, batch_size=batch_size, lr=lr,
                warmup_steps=100, checkpoint_every=max(steps // 4, 1))
figure_path = figure_folder(figure_dir, out_dir) / "fig9_mano_extrapolation.png"
comparison = compare_extrapolation(settings, train_max, eval_max, out_dir, baseline_lr=baseline_lr, seeds=seeds,
                                   eval_per_knob=eval_per_knob, figure_path=figure_path, processes=processes)
# comparison.frame: one row per seed × model × ℓ, unrounded (also results.csv); the table below is its summary
print(comparison.table())
print("figure:", figure_path)

# %% [markdown]
# ## Past L_train: which model degrades most gracefully?

# %%
past = past_training(comparison, train_max)
display(past.pivot_table(index="knob", columns="variant", values="accuracy").round(3))
print(past.groupby("variant")["mean_past"].first().sort_values(ascending=False).round(3).to_string())
# is depth needed inside the training range? fixed-depth (D iterations) against fixed-1, per ℓ ≤ L_train
inside = comparison.frame[comparison.frame["knob"] <= train_max]
display(depth_necessity(inside, deep="fixed-depth").round(3))
