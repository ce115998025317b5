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
# # 08 · Training dynamics: easy before hard, then less compute
#
# Paper §6.2 (Figs. 4–5): evaluated at every checkpoint, accuracy rises first on the easy knob values
# (small ℓ for MANO, small n for BREVO), and d̄ climbs while the task is learnt, peaks, then falls
# while accuracy holds: a learning phase, then a compute-reduction phase. Here ANIRA-E and ANIRA-O are
# trained on MANO and BREVO with a model snapshot kept every `checkpoint_every` steps, and every
# snapshot is evaluated (`anira evaluate --checkpoints RUN_DIR` does the same from a shell,
# resumably). Given `run_dirs` (runs trained with `keep_checkpoints=true`), it analyses those instead.

# %% tags=["parameters"]
run_dirs = []              # existing runs with kept checkpoints; empty: train the four below
mano_steps = 3000          # CPU default (the paper: Table 5)
brevo_steps = 1500
checkpoint_every = 250
eval_per_knob = 100        # evaluation examples per knob value and checkpoint
level = 0.9                # "reached": accuracy at least this
seeds = [0]                # training seeds; with several, tables keep a row per seed and figures a band
processes = 2
out_dir = "runs/08_training_dynamics"
figure_dir = ""         # "" = <out_dir>/figures; "figures" refreshes the committed figures

# %%
from pathlib import Path

from IPython.display import display

from anira_lib.analysis.dynamics import plot_progression, training_dynamics
from anira_lib.studies.experiments import train_variants
from anira_lib.project import figure_folder, work_from_project_root
from anira_lib.results import write_frame

work_from_project_root()

common = dict(hidden_size=64, intermediate_size=256, num_attention_heads=4, batch_size=64, lr=2e-3, warmup_steps=100,
              keep_checkpoints=True, checkpoint_every=checkpoint_every)
tasks = {"mano": dict(task="mano", task_args={"max_ops": 4, "modulus": 2}, max_depth=4, kl_beta=0.01, steps=mano_steps),
         "brevo": dict(task="brevo", task_args={"max_nodes": 6}, max_depth=6, kl_beta=0.1, batch_size=32, lr=1e-3,
                       steps=brevo_steps)}
names = {}
if not run_dirs:
    for task, settings in tasks.items():
        for seed in seeds:  # one seed keeps the old layout, out_dir/<task>/<variant>
            base = Path(out_dir) / task / (f"seed_{seed}" if len(seeds) > 1 else "")
            runs = train_variants({**common, **settings, "seed": seed}, base, processes=processes)
            names.update({str(run.out_dir): f"{task} {variant}" for variant, run in runs.items()})
    run_dirs = list(names)
result = training_dynamics(run_dirs, level=level, n_per_knob=eval_per_knob)
frame = result["frame"]
print(f"{frame['run'].nunique()} runs, {len(frame)} rows (run × step × knob)")
display(frame.head())

# %% [markdown]
# ## Accuracy and d̄ per knob against the step (Figs. 4–5)

# %%
figure_path = figure_folder(figure_dir, out_dir) / "fig4_5_training_dynamics.png"
plot_progression(frame, figure_path, title="Training dynamics (darker = harder knob)", names=names)
print("figure:", figure_path)

# %% [markdown]
# ## Easy to hard: the first step reaching the accuracy level, per knob
# The paper's finding holds where `first_step` rises with the knob (Spearman near 1). NaN: never reached.

# %%
first = result["first_steps"]
display(first.pivot(index="knob", columns="run", values="first_step"))
print(first.groupby("run")["spearman"].first().round(2).to_string())
if first["run"].nunique() > first.groupby(["task", "decider"]).ngroups:  # several seeds: mean and min–max
    display(result["first_steps_over_seeds"])

# %% [markdown]
# ## Two phases: the step where d̄ peaks, and what follows
# A compute-reduction phase shows as `depth_drop` > 0 with `accuracy_at_end` no lower than at the peak.

# %%
phases = result["phases"]
display(phases.round(3))
if phases["run"].nunique() > phases.groupby(["task", "decider"]).ngroups:
    display(result["phases_over_seeds"].round(3))
write_frame(first, Path(out_dir) / "first_steps.csv")
write_frame(phases, Path(out_dir) / "phases.csv")
write_frame(result["first_steps_over_seeds"], Path(out_dir) / "first_steps_over_seeds.csv")
write_frame(result["phases_over_seeds"], Path(out_dir) / "phases_over_seeds.csv")
