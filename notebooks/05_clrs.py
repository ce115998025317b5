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
# # 05 · CLRS-Text: accuracy and compute per task and input size
#
# CLRS-Text (Markeeva et al. 2024) states classical algorithms' inputs as text and asks for their
# outputs. Without traces, the 30 algorithms are 24 tasks (sorting algorithms, for example, give the
# same question and answer). The knob is the input size n. We generate the data with the benchmark's
# own generator (dm-clrs 2.0.3, cached in `data/clrs/`), train one multitask ANIRA-E and one ANIRA-O
# with the answer-only loss, and report exact-match accuracy and answer-token d̄ per (task, size),
# marking training sizes (paper Fig. 3 and Fig. 7: d̄ tracks n; accuracy drops at unseen sizes).
#
# CPU defaults: a few tasks, small sizes, a small model; `configs/notebooks/05_clrs_paper.yaml`
# holds the paper's configuration (all 30 algorithms, dm-clrs's sizes, Table 5's model).

# %% tags=["parameters"]
algorithms = ["minimum", "binary_search", "insertion_sort", "find_maximum_subarray_kadane"]  # [] = all 30
train_sizes = {"minimum": [4, 5, 7], "binary_search": [4, 5, 7], "insertion_sort": [4, 5, 7],
               "find_maximum_subarray_kadane": [4, 5, 7]}  # {} = dm-clrs's training sizes
eval_sizes = {"minimum": [4, 5, 6, 7, 8, 9], "binary_search": [4, 5, 6, 7, 8, 9],
              "insertion_sort": [4, 5, 6, 7, 8, 9], "find_maximum_subarray_kadane": [4, 5, 6, 7, 8, 9]}
train_samples = 2000     # per (algorithm, size); dm-clrs: 10,000
eval_per_pair = 125      # per (algorithm, size); dm-clrs: 5 seeds x 125
max_depth = 4            # D (Table 5: 6)
hidden_size = 64
intermediate_size = 256
num_attention_heads = 4
kl_beta = 0.01           # β (Table 5: 1e-2)
prior_lambda = 2.0       # λ (Table 5: 2.0)
steps = 3000             # compiled: 11.6 min on 2 cores (1,500 eager steps took 550 s)
batch_size = 32
lr = 2e-3
warmup_steps = 100
seed = 0
device = "auto"
compile_training = True   # torch.compile the training step: 1.35x the eager step at this size (docs/lab_log.md)
depth_baselines = True   # also train fixed-1 and fixed-D: is depth needed at all? (about twice the time: training
                         #   unrolls all D iterations, so fixed-D costs what E costs; False: E and O only)
processes = 2
data_dir = "data/clrs"
out_dir = "runs/05_clrs"
figure_dir = ""         # "" = <out_dir>/figures; "figures" refreshes the committed figures

# %%
import pandas as pd
from IPython.display import display

from anira_lib.analysis.depth_necessity import DEPTH_BASELINES, depth_necessity, summarize_necessity
from anira_lib.studies.experiments import VARIANTS, evaluate_clrs, train_variants
from anira_lib.project import figure_folder, work_from_project_root
from anira_lib.tasks import get_task

work_from_project_root()

task_args = dict(algorithms=tuple(algorithms), train_sizes=train_sizes, eval_sizes=eval_sizes,
                 train_samples=train_samples, eval_samples=min(eval_per_pair, 125), data_dir=data_dir)  # 125 per eval seed
task = get_task("clrs", **task_args)  # generates and caches the data on first use
print(f"{len(task.train_pairs)} training pairs, {len(task.eval_pairs())} evaluation pairs, "
      f"{task.vocab_size} token ids, longest sequence {task.max_len}")

# %% [markdown]
# ## Train ANIRA-E and ANIRA-O on the mix (and fixed-1 / fixed-D: is depth needed?)

# %%
settings = dict(task="clrs", task_args=task_args, max_depth=max_depth, hidden_size=hidden_size,
                intermediate_size=intermediate_size, num_attention_heads=num_attention_heads, kl_beta=kl_beta,
                prior_lambda=prior_lambda, steps=steps, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps,
                seed=seed, device=device, compile=compile_training, checkpoint_every=max(steps // 4, 1))
runs = train_variants(settings, out_dir, processes=processes,
                      variants={**VARIANTS, **DEPTH_BASELINES} if depth_baselines else VARIANTS)
for name, run in runs.items():
    print(f"{name}: train loss {run.metrics[0]['loss']:.3f} -> {run.metrics[-1]['loss']:.3f}")

# %% [markdown]
# ## Accuracy and d̄ per (task, size)
# `train` marks training sizes; `overlap` is the share of evaluation questions that also occur in
# the training data (small sizes of some tasks repeat).

# %%
results = evaluate_clrs(runs, out_dir, n_per_pair=eval_per_pair,
                        figure_path=figure_folder(figure_dir, out_dir) / "fig3_clrs.png",
                        all_tasks_path=figure_folder(figure_dir, out_dir) / "fig7_clrs_all.png")
print(f"{'task':<30}{'n':>3} {'train':>5} {'overlap':>7} " + " ".join(f"{v + ' acc':>12} {v + ' d̄':>10}" for v in results))
first = next(iter(results.values()))
for i, r in enumerate(first):
    print(f"{r['algorithm']:<30}{r['size']:>3} {str(r['train']):>5} {r['overlap']:>7.2f} " +
          " ".join(f"{rows[i]['accuracy']:>12.3f} {rows[i]['mean_depth']:>10.2f}" for rows in results.values()))
print("figures:", figure_folder(figure_dir, out_dir) / "fig3_clrs.png", figure_folder(figure_dir, out_dir) / "fig7_clrs_all.png")
if depth_baselines:  # fixed-D − fixed-1 accuracy per (algorithm, size); one seed here, so every gap is 'unclear'
    necessity = depth_necessity(pd.DataFrame([{"variant": v, **r} for v, rows in results.items() for r in rows]),
                                by=("algorithm", "size"))
    print(summarize_necessity(necessity))
    display(necessity.round(3))
