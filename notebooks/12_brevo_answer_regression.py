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
# # 12 · BREVO answer tokens: structure or execution state?
#
# Paper §6.4 (Table 2) and A.8 (Tables 6–10): over correctly solved BREVO instances, each answer
# token's expected depth is regressed on graph structure (N, hub out-degree, in-degree, remaining
# subtree), on the state of the DFS that writes the answer (depth, frontier, newly enabled nodes,
# distance to the query) and on READ-style predecessor compute, in four stages: correlation and VIF
# filters, ΔR² ablation, selection, and a refit with N categorical. The paper finds that E is
# explained by structure (N, hub) and O by execution state, and that O's importances survive N
# categorical. Thresholds are ours (the paper's were lost): |r| > 0.8, VIF > 5, ΔR² ≥ 0.5%.
#
# By default this reads the runs `02_brevo` leaves (`run_dir`); with none there it trains a tiny pair.

# %% tags=["parameters"]
run_dir = "runs/02_brevo"   # a BREVO run directory with allocations_<decider>.jsonl
steps = 600                 # the tiny pair trained when run_dir has no dumps
eval_per_knob = 50
corr_threshold = 0.8
vif_threshold = 5.0
delta_r2_threshold = 0.005
correct_only = True         # the paper's data: correctly solved instances only
out_dir = "runs/12_brevo_answer_regression"
figure_dir = ""         # "" = <out_dir>/figures; "figures" refreshes the committed figures

# %%
from pathlib import Path

import pandas as pd

from anira_lib.analysis.answer_regression import answer_regression, compare_with_paper
from anira_lib.studies.experiments import compare_deciders
from anira_lib.evaluation.explorer import find_runs, load_allocations
from anira_lib.files import atomic_write_text
from anira_lib.display.plots import plot_delta_r2
from anira_lib.project import figure_folder, work_from_project_root

work_from_project_root()

source = Path(run_dir)
if not find_runs([source]):
    settings = dict(task="brevo", task_args={"max_nodes": 6}, max_depth=4, hidden_size=32, intermediate_size=64,
                    num_attention_heads=4, steps=steps, batch_size=32, lr=1e-3, warmup_steps=20,
                    checkpoint_every=steps)
    compare_deciders(settings, range(3, 7), out_dir, eval_per_knob=eval_per_knob)
    source = Path(out_dir)
dumps = load_allocations(source, variants=("ANIRA-E", "ANIRA-O"))  # the adaptive two (fixed depths are constant)
thresholds = dict(corr_threshold=corr_threshold, vif_threshold=vif_threshold, delta_r2_threshold=delta_r2_threshold)
fits = {name: answer_regression(recs, correct_only, **thresholds) for name, recs in dumps.items()}
for name, (table, _) in fits.items():
    print(f"{name}: {len(table)} answer tokens from {table.groupby(['knob', 'example']).ngroups} "
          f"{'correct ' if correct_only else ''}examples")

# %% [markdown]
# ## The four stages, per variant

# %%
for name, (_, res) in fits.items():
    print(f"===== {name}")
    print("stage 1, correlation filter (dropped):")
    print(res.correlation.round(3).to_string(index=False) if len(res.correlation) else "  none")
    print("stage 1, VIF:")
    print(res.vif.round(2).to_string(index=False))
    print("stage 2, ablation ΔR²:")
    print(res.ablation.round(4).to_string(index=False))
    print(f"stage 3, selected {res.selected}, R² {res.r2:.4f}:")
    print(res.final.round(4).to_string(index=False))
    if res.categorical is not None:
        print(f"stage 4, N categorical, R² {res.r2_categorical:.4f}:")
        print(res.categorical.round(4).to_string(index=False))

# %% [markdown]
# ## Beside the paper (Tables 2, 6–9)

# %%
comparison = pd.concat([compare_with_paper(res, name) for name, (_, res) in fits.items()], ignore_index=True)
print(comparison.round(4).to_string(index=False))
out = Path(out_dir)
out.mkdir(parents=True, exist_ok=True)
atomic_write_text(out / "regression_vs_paper.csv", comparison.to_csv(index=False))
figure_path = figure_folder(figure_dir, out_dir) / "table2_brevo_answer_regression.png"
plot_delta_r2(comparison, figure_path, title=f"BREVO answer tokens ({source.name}): ΔR², ours vs paper")
print("table:", out / "regression_vs_paper.csv")
print("figure:", figure_path)
