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
# # 11 · MANO question tokens: does ANIRA compute while it reads the question?
#
# Paper §6.5 (Fig. 6, Eq. 8): over correctly answered MANO examples, a stack parser gives each
# question token its parse state: the operator-stack depth s_t, the operands r_t the top operator
# still owes (the root operator: r_t = 0, our convention), and c_t, the operators of the subtree(s)
# completed at the previous token. The paper finds that ANIRA-E spends the most compute on operator
# tokens at one value of r_t, and more there the larger the subtree just completed. Eq. 8's
# piecewise model was lost in extraction; ours gives each (token type, r_t) cell its own intercept
# and slopes in c_t and s_t, and its R² stands beside token type alone and type + r_t.
#
# By default this reads the runs `01_mano` leaves (`run_dir`); with none there it trains a tiny pair.

# %% tags=["parameters"]
run_dir = "runs/01_mano"   # a MANO run directory with allocations_<decider>.jsonl
steps = 600                # the tiny pair trained when run_dir has no dumps
eval_per_knob = 100
out_dir = "runs/11_mano_question_tokens"
figure_dir = ""         # "" = <out_dir>/figures; "figures" refreshes the committed figures

# %%
from pathlib import Path

import pandas as pd

from anira_lib.studies.experiments import compare_deciders
from anira_lib.evaluation.explorer import find_runs, load_allocations
from anira_lib.files import atomic_write_text
from anira_lib.display.plots import plot_question_tokens
from anira_lib.project import figure_folder, work_from_project_root
from anira_lib.analysis.question_tokens import depth_by_cell, fit_parse_models, question_token_table

work_from_project_root()

source = Path(run_dir)
if not find_runs([source]):
    settings = dict(task="mano", task_args={"max_ops": 4, "modulus": 2}, max_depth=4, hidden_size=32,
                    intermediate_size=64, num_attention_heads=4, steps=steps, batch_size=32, lr=2e-3,
                    warmup_steps=20, checkpoint_every=steps)
    compare_deciders(settings, [1, 2, 3, 4], out_dir, eval_per_knob=eval_per_knob)
    source = Path(out_dir)
dumps = load_allocations(source, variants=("ANIRA-E", "ANIRA-O"))  # the adaptive two (fixed depths are constant)
tables = {name: question_token_table(recs) for name, recs in dumps.items()}
print(f"{source}: " + ", ".join(f"{n} {len(t)} question tokens from {t.groupby(['knob', 'example']).ngroups} correct examples"
                                for n, t in tables.items()))

# %% [markdown]
# ## Compute per parse state (Fig. 6)

# %%
panels = {name: depth_by_cell(t) for name, t in tables.items()}
figure_path = figure_folder(figure_dir, out_dir) / "fig6_mano_question_tokens.png"
plot_question_tokens(panels, figure_path, title=f"MANO question tokens ({source.name})")
for name, (per_r, per_c) in panels.items():
    print(name, "— operator tokens per r_t:")
    print(per_r.round(3).to_string(index=False))
    print(f"most compute at r_t = {int(per_r.loc[per_r['top'], 'r'].iloc[0])}; operators with r_t = 1, per c_t:")
    print(per_c.round(3).to_string(index=False))
print("figure:", figure_path)

# %% [markdown]
# ## How much of the variation does parse state explain?

# %%
fits = pd.concat([fit_parse_models(t).assign(variant=name) for name, t in tables.items()], ignore_index=True)
print(fits[["variant", "model", "r2", "parameters", "n"]].round(4).to_string(index=False))
fits_path = Path(out_dir) / "question_token_fits.csv"
fits_path.parent.mkdir(parents=True, exist_ok=True)
atomic_write_text(fits_path, fits.to_csv(index=False))
print("table:", fits_path)
