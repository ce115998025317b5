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
# # 02 · BREVO: does compute track the size of the graph?
#
# BREVO lists every node a query depends on in a DAG, in DFS post-order (paper §5.1). A traversal
# costs O(n) for n nodes, so n is the difficulty knob. We train ANIRA-E and ANIRA-O and measure,
# per n, exact-match accuracy of the whole answer (teacher-forced argmax at every answer token,
# which equals greedy decoding's exact match) and d̄ on the answer tokens. Paper (Fig. 2, right):
# d̄ rises with n; O below E at similar accuracy. Generations with per-token exit distributions are
# dumped to `out_dir/allocations_<decider>.jsonl` for the Table 2 analysis.
#
# CPU defaults use tiny graphs; `configs/notebooks/02_brevo_paper.yaml` is Table 5's setting. The
# learning rate is Table 5's (1e-3): at 2e-3, ANIRA-O's d̄ came out as high as ANIRA-E's, while
# at 1e-3 it sits below it at every n with similar accuracy.

# %% tags=["parameters"]
max_nodes = 8            # N: training n from 3..N with P(n) ∝ 1/(n + √N)
max_depth = 6            # D
hidden_size = 64
intermediate_size = 256
num_attention_heads = 4
kl_beta = 0.01           # β (paper: 0.1)
prior_lambda = 2.0       # λ
steps = 4000             # compiled: 13 min on 2 cores (3,000 eager steps took 721 s)
batch_size = 64
lr = 1e-3                # Table 5
warmup_steps = 100
seed = 0
checkpoint_every = 0      # steps between checkpoints (0: a quarter of the run)
keep_checkpoints = False  # keep a model snapshot per checkpoint (notebook 08 evaluates them)
eval_per_knob = 200
device = "auto"
compile_training = True   # torch.compile the training step: 1.5x the eager step at this size (docs/lab_log.md)
depth_baselines = True   # also train fixed-1 and fixed-D: is depth needed at all? (about twice the time: training
                         #   unrolls all D iterations, so fixed-D costs what E costs; False: E and O only)
processes = 2
out_dir = "runs/02_brevo"
figure_dir = ""         # "" = <out_dir>/figures; "figures" refreshes the committed figures

# %%
from IPython.display import display

from anira_lib.analysis.depth_necessity import DEPTH_BASELINES, depth_necessity, summarize_necessity
from anira_lib.studies.experiments import VARIANTS, compare_deciders
from anira_lib.project import figure_folder, work_from_project_root

work_from_project_root()

settings = dict(task="brevo", task_args={"max_nodes": max_nodes}, max_depth=max_depth, hidden_size=hidden_size,
                intermediate_size=intermediate_size, num_attention_heads=num_attention_heads, kl_beta=kl_beta,
                prior_lambda=prior_lambda, steps=steps, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps,
                seed=seed, device=device, compile=compile_training, checkpoint_every=checkpoint_every or max(steps // 4, 1),
                keep_checkpoints=keep_checkpoints)
figure_path = figure_folder(figure_dir, out_dir) / "fig2_right_brevo.png"

# %%
comparison = compare_deciders(settings, range(3, max_nodes + 1), out_dir, eval_per_knob=eval_per_knob,
                              knob_label="number of nodes n", figure_path=figure_path,
                              title=f"BREVO (N={max_nodes}, D={max_depth})", processes=processes,
                              variants={**VARIANTS, **DEPTH_BASELINES} if depth_baselines else VARIANTS)
# comparison.frame: one row per variant × knob, unrounded (also results.csv); the table below is its summary
print(comparison.table())
print("figure:", figure_path)
if depth_baselines:  # fixed-D − fixed-1 accuracy per knob: the condition the d̄ trend is measured under
    necessity = depth_necessity(comparison.frame)
    print(summarize_necessity(necessity), "(one seed here: every gap is 'unclear'; make findings runs three)")
    display(necessity.round(3))
