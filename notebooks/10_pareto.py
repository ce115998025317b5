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
# # 10 · ANIRA-O's accuracy–compute frontier
#
# Paper §6.4 (Fig. 10): one trained ANIRA-O, evaluated with the mode, median and mean rules and with
# the threshold rule at each τ (stop at the first iteration whose halting CDF reaches τ). The paper
# finds the three rules close together on the frontier, and τ trading accuracy for compute smoothly.
# Every answer is scored by the task's checker. Beyond the paper: each setting's decode speed and KV
# memory through the allocation-aware cache, as ratios to full depth measured in the same rounds.
#
# By default it reads the ANIRA-O runs of `02_brevo` and `01_mano` (`run_dirs`); a task whose run is
# missing gets a small one trained here.

# %% tags=["parameters"]
run_dirs = {"brevo": "runs/02_brevo/online", "mano": "runs/01_mano/online"}  # a run, or a list (one per seed)
steps = {"brevo": 1500, "mano": 3000}   # the small runs trained where a run is missing
seeds = [0]                             # their training seeds; several: per-seed rows, mean and min–max drawn
taus = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
eval_per_knob = 200
decode_rounds = 5
out_dir = "runs/10_pareto"
figure_dir = ""         # "" = <out_dir>/figures; "figures" refreshes the committed figures

# %%
from pathlib import Path

import pandas as pd
from IPython.display import display

from anira_lib.analysis.pareto import pareto_over_seeds, pareto_sweep, plot_pareto
from anira_lib.project import figure_folder, work_from_project_root
from anira_lib.results import write_frame
from anira_lib.training.run_config import TrainConfig
from anira_lib.training.parallel_training import train_parallel
from anira_lib.training.train import load_run

work_from_project_root()

small = {"mano": dict(task="mano", task_args={"max_ops": 4, "modulus": 2}, max_depth=4, kl_beta=0.01, lr=2e-3,
                      batch_size=64),
         "brevo": dict(task="brevo", task_args={"max_nodes": 6}, max_depth=6, lr=1e-3, batch_size=32)}


def given(paths):
    return [Path(p) for p in ([paths] if isinstance(paths, str) else paths)]


found = {task: given(paths) for task, paths in run_dirs.items() if all((p / "model").is_dir() for p in given(paths))}
missing = [task for task in run_dirs if task not in found]
for task in missing:
    print(f"{run_dirs[task]}: no finished run; a small ANIRA-O for {task} is trained in {out_dir}/{task}")
configs = [TrainConfig.from_dict({**small[task], "decider": "online", "steps": steps[task], "hidden_size": 64,
                                  "intermediate_size": 256, "seed": seed,
                                  "out_dir": str(Path(out_dir) / task / (f"seed_{seed}" if len(seeds) > 1 else ""))})
           for task in missing for seed in seeds]
runs = list(zip(configs, train_parallel(configs, processes=2, resume="auto"))) if configs else []
for task, paths in found.items():
    for path in paths:
        cfg = TrainConfig.load(path / "train_config.yaml")
        assert cfg.task == task, f"{path} is a {cfg.task} run, not {task}: fix run_dirs[{task!r}]"
        runs.append((cfg, load_run(cfg)))

# %%
frames = []
for cfg, run in runs:
    task = cfg.task
    frame = pareto_sweep(run.model, run.task, run.task.train_knobs, taus=taus, n_per_knob=eval_per_knob,
                         decode_rounds=decode_rounds)
    frame.insert(0, "task", task)
    frame.insert(1, "seed", cfg.seed)
    frames.append(frame)
frame = pd.concat(frames, ignore_index=True)
write_frame(frame, Path(out_dir) / "pareto.csv")
display(frame.round(3))
if frame.groupby("task")["seed"].nunique().max() > 1:
    over_seeds = pareto_over_seeds(frame)
    write_frame(over_seeds, Path(out_dir) / "pareto_over_seeds.csv")
    display(over_seeds.round(3))

# %% [markdown]
# ## The frontier (Fig. 10)

# %%
for task in dict.fromkeys(cfg.task for cfg, _ in runs):
    figure_path = figure_folder(figure_dir, out_dir) / f"fig10_pareto_{task}.png"
    plot_pareto(frame[frame["task"] == task], figure_path, title=f"ANIRA-O on {task.upper()}: accuracy vs d̄")
    print("figure:", figure_path)

# %% [markdown]
# ## Do the three rules differ little?
# The spread of accuracy and d̄ across mode / median / mean, per task and seed.

# %%
rules = frame[frame["rule"] != "threshold"]
display(rules.groupby(["task", "seed"])[["accuracy", "mean_depth"]].agg(lambda v: v.max() - v.min()).rename(
    columns={"accuracy": "accuracy range", "mean_depth": "d̄ range"}).round(3))
