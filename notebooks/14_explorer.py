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
# # 14 · The allocation explorer
#
# Every notebook that evaluates a trained pair leaves per-token allocation dumps behind
# (`out_dir/allocations_<decider>.jsonl`: each token's exit depth under the inference rule, its
# exit distribution q(d), whether the answer was right). This notebook opens them, for any task:
# pick the variants, a knob value, right or wrong answers and an example; the strip colours each
# token by the depth it exited at (answer tokens underlined), the token slider shows that token's
# q(d) for ANIRA-E and ANIRA-O on the same example, and the heat maps give each variant's
# answer-token depths per knob.
#
# Open it in JupyterLab (`make lab`) to move the controls. Headless, it opens the first run the
# other notebooks left behind (`run_dirs`), or trains a tiny MANO pair of its own.

# %% tags=["parameters"]
run_dir = ""             # a run directory or one dump to explore; "" = the first of run_dirs with dumps
run_dirs = ["runs/01_mano", "runs/02_brevo", "runs/03_depo", "runs/05_clrs"]
steps = 400              # the tiny run trained when nothing is found
eval_per_knob = 50
out_dir = "runs/14_explorer"
figure_dir = ""         # "" = <out_dir>/figures; "figures" refreshes the committed figures

# %%
from pathlib import Path

from IPython.display import display

from anira_lib.studies.experiments import compare_deciders
from anira_lib.evaluation.explorer import depth_histogram, find_runs, knob_label, load_allocations
from anira_lib.display.plots import plot_depth_histograms
from anira_lib.project import figure_folder, work_from_project_root
from anira_lib.display.widgets import explore

work_from_project_root()

found = [Path(run_dir)] if run_dir else find_runs(run_dirs)
if not found:  # nothing to open yet: a tiny MANO pair (about a minute on 2 cores)
    settings = dict(task="mano", task_args={"max_ops": 3, "modulus": 2}, max_depth=4, hidden_size=32,
                    intermediate_size=64, num_attention_heads=4, steps=steps, batch_size=32, lr=2e-3,
                    warmup_steps=20, checkpoint_every=steps)
    compare_deciders(settings, [1, 2, 3], out_dir, eval_per_knob=eval_per_knob)
    found = [Path(out_dir)]
source = found[0]
data = load_allocations(source)
print(f"exploring {source}: task {next(iter(data.values()))[0]['task']}, variants {list(data)}, "
      f"{sum(len(r) for r in data.values())} examples")

# %% [markdown]
# ## The explorer

# %%
view = explore(source)
display(view)

# %% [markdown]
# ## Answer-token depth per knob, every variant

# %%
histograms = {name: depth_histogram(recs) for name, recs in data.items()}
figure_path = figure_folder(figure_dir, out_dir) / "explorer_depth_histograms.png"
task_name = next(iter(data.values()))[0]["task"]
plot_depth_histograms(histograms, figure_path, title=f"{source.name}: answer-token exit depth per knob",
                      knob_label=knob_label(task_name))
for name, hist in histograms.items():
    print(name)
    print(hist.round(2).to_string())
print("figure:", figure_path)
