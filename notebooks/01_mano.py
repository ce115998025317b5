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
# # 01 · MANO: does compute track the number of operators?
#
# MANO asks for the value of a prefix expression with ℓ operators modulo a prime. Evaluating it
# takes ℓ reductions, so ℓ is a known difficulty knob (paper §5.1). We train **ANIRA-E** (depth
# chosen once from the Prelude output) and **ANIRA-O** (halting after each iteration) on ℓ uniform
# in 1..L, then measure, per ℓ, answer accuracy and the mean depth d̄ spent on the answer token
# under the inference rule (mode for E, median for O). The paper's finding (Fig. 2, left): d̄ rises
# with ℓ, and O uses fewer iterations than E at similar accuracy.
#
# The defaults are a CPU-sized version (small modulus and L; see the README for what they reach);
# `configs/notebooks/01_mano_paper.yaml` holds the paper's Table 5 setting for a GPU.

# %% tags=["parameters"]
max_ops = 4              # L: training draws ℓ uniformly from 1..L
modulus = 2              # the paper uses 23 (CPU default: see docs/calibration.md)
length_tag = False       # reference option: tell the model ℓ after BOS
max_depth = 4            # D (Table 5: 14)
hidden_size = 64
intermediate_size = 256
num_attention_heads = 4
kl_beta = 0.01           # β
prior_lambda = 1.0       # λ
steps = 3500             # with fixed-1 and fixed-D beside E and O, 6,000 steps took over 10 min on 2 cores (make demo)
batch_size = 64
lr = 2e-3
warmup_steps = 100
seed = 0
checkpoint_every = 0      # steps between checkpoints (0: a quarter of the run)
keep_checkpoints = False  # keep a model snapshot per checkpoint (notebook 08 evaluates them)
eval_per_knob = 500      # evaluation examples per ℓ
device = "auto"
compile_training = True  # torch.compile the training step: ~1 min of compiling, then ~2x the steps/s (CPU)
depth_baselines = True   # also train fixed-1 and fixed-D (decider none): is depth needed at all?
processes = 2            # CPU processes training the variants side by side (1: one after the other)
out_dir = "runs/01_mano"
figure_dir = ""         # "" = <out_dir>/figures; "figures" refreshes the committed figures

# %%
from IPython.display import display

from anira_lib.analysis.depth_necessity import DEPTH_BASELINES, depth_necessity, summarize_necessity
from anira_lib.studies.experiments import VARIANTS, compare_deciders
from anira_lib.project import figure_folder, work_from_project_root
from anira_lib.display.widgets import explore

work_from_project_root()

settings = dict(task="mano", task_args={"max_ops": max_ops, "modulus": modulus, "length_tag": length_tag},
                max_depth=max_depth, hidden_size=hidden_size, intermediate_size=intermediate_size,
                num_attention_heads=num_attention_heads, kl_beta=kl_beta, prior_lambda=prior_lambda,
                steps=steps, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps, seed=seed, device=device,
                compile=compile_training, checkpoint_every=checkpoint_every or max(steps // 4, 1),
                keep_checkpoints=keep_checkpoints)
figure_path = figure_folder(figure_dir, out_dir) / "fig2_left_mano.png"

# %% [markdown]
# ## Train the variants, then evaluate per ℓ
# Beside E and O, two fixed-depth baselines of the same settings: **fixed-1** (one iteration of the
# block) and **fixed-D** (all D). Where fixed-1 is as accurate as fixed-D, the task does not need the
# depth, and a d̄ that rises with ℓ says how a model spends compute, not what the task needs; the
# depth-necessity table below says which ℓ need it (with one seed every gap is "unclear": `make
# findings` runs three). Runs land in `out_dir/<variant>/` (early, online, fixed-1, fixed-d);
# per-token allocations in `out_dir/allocations_<variant>.jsonl` (read by the later analyses); the
# summary in `out_dir/results.json`.

# %%
comparison = compare_deciders(settings, range(1, max_ops + 1), out_dir, eval_per_knob=eval_per_knob,
                              knob_label="number of operators ℓ", figure_path=figure_path,
                              title=f"MANO (mod {modulus}, D={max_depth})", processes=processes,
                              variants={**VARIANTS, **DEPTH_BASELINES} if depth_baselines else VARIANTS)
for name, run in comparison.runs.items():
    last = run.metrics[-1]
    print(f"{name}: final train loss {last['loss']:.3f}, {last['elapsed_s']:.0f}s of training")
# comparison.frame: one row per variant × knob, unrounded (also results.csv); the table below is its summary
print(comparison.table())
print("figure:", figure_path)
if depth_baselines:  # fixed-D − fixed-1 accuracy per knob: the condition the d̄ trend is measured under
    necessity = depth_necessity(comparison.frame)
    print(summarize_necessity(necessity), "(one seed here: every gap is 'unclear'; make findings runs three)")
    display(necessity.round(3))

# %% [markdown]
# ## One example, token by token
# The allocation explorer (notebook 14 opens any run): pick a knob, right or wrong answers and an
# example; each token is coloured by its exit depth (the answer is predicted at `<ans>`), and the
# token slider shows q(d) for E and O on the same example.

# %%
view = explore(out_dir)
display(view)
