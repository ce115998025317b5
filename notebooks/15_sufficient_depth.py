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
# # 15 · Sufficient depth: did each token get the depth it needed?
#
# The paper correlates d̄ with task knobs and parser proxies. Here we ask the token-level question
# directly. With passthrough, a token that exits at iteration i hands h_i to the Coda, and its own
# output depends only on its depth and on the earlier tokens, which its depth does not touch; so the
# model can say, exactly, what every answer token would have predicted had it exited at each
# iteration (`output_iterations` on the forward). Teacher-forced, a token's **sufficient depth** is
# the first iteration from which its prediction stays correct through D (`rule = "stable"`; `"first"`:
# the first correct iteration). We compare it with the depth the model chose:
#
# - does the mean sufficient depth rise with the knob (does the task need depth at all)? fixed-D's
#   own sufficient depths answer that for the model family;
# - does ANIRA-E's / ANIRA-O's chosen depth track it (Spearman over tokens);
# - where do they under-allocate (chosen < sufficient: accuracy lost) or over-allocate
#   (iterations spent beyond need)?
#
# It reads the runs of notebooks 01, 02 and 03 (their allocation dumps; a dump written before the
# per-iteration fields is re-evaluated from the saved model). A task without a run gets a small one
# trained here when `train_missing` is set.

# %% tags=["parameters"]
run_dirs = {"mano": "runs/01_mano", "brevo": "runs/02_brevo", "depo": "runs/03_depo"}
train_missing = True     # train a small E / O / fixed-D run where a folder has no dumps (a few minutes per task)
steps = 1500             # steps of those small runs
eval_per_knob = 100
rule = "stable"          # sufficient depth: "stable" (correct from there through D) or "first"
processes = 2
out_dir = "runs/15_sufficient_depth"
figure_dir = ""         # "" = <out_dir>/figures; "figures" refreshes the committed figures

# %%
from IPython.display import display

from anira_lib.studies.experiments import sufficient_depth_study
from anira_lib.project import figure_folder, work_from_project_root

work_from_project_root()

study = sufficient_depth_study(run_dirs, out_dir, train_missing=train_missing, steps=steps,
                               eval_per_knob=eval_per_knob, rule=rule, processes=processes,
                               figure_path=figure_folder(figure_dir, out_dir) / "sufficient_depth.png")
for task, folder in study["folders"].items():
    print(f"{task}: read {folder}")

# %% [markdown]
# ## The efficiency table
# Per task, variant and knob: `solved` (share of answer tokens correct from some iteration through D),
# `oracle_depth` (their mean sufficient depth), `chosen_depth` (their mean exit depth), `spearman`
# (chosen vs sufficient over those tokens), the shares `under` / `exact` / `over`, `accuracy_lost`
# (share of all answer tokens wrong at the chosen depth that a deeper exit would have got right) and
# `excess_iterations` (iterations spent beyond need, per solved token).

# %%
display(study["table"].round(3))

# %% [markdown]
# ## Sufficient against chosen depth
# Solid: the depth each variant chose; dashed: the depth its own answer tokens needed.

# %%
print("figure:", study["figure"])
