# ---
# jupyter:
#   jupytext:
#     formats: py:percent
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
# The defaults are a CPU-sized version (small modulus and L); `configs/notebooks/01_mano_paper.yaml`
# holds the paper's Table 5 setting for a GPU.

# %% tags=["parameters"]
max_ops = 4              # L: training draws ℓ uniformly from 1..L
modulus = 5              # the paper uses 23
length_tag = False       # reference option: tell the model ℓ after BOS
max_depth = 6            # D
hidden_size = 64
intermediate_size = 256
num_attention_heads = 4
kl_beta = 0.1            # β
prior_lambda = 1.0       # λ
steps = 3000
batch_size = 128
lr = 1e-3
warmup_steps = 100
seed = 0
eval_per_knob = 500      # evaluation examples per ℓ
device = "auto"
out_dir = "runs/01_mano"
figure_dir = "figures"

# %%
from pathlib import Path

from IPython.display import display

from anira_lib.evaluate import depth_trend, evaluate_knobs
from anira_lib.io import atomic_write_json
from anira_lib.plots import plot_knob_curves
from anira_lib.run_config import TrainConfig
from anira_lib.train import train
from anira_lib.widgets import token_depth_view

VARIANTS = {"ANIRA-E": "early", "ANIRA-O": "online"}
knobs = list(range(1, max_ops + 1))
common = dict(task="mano", task_args={"max_ops": max_ops, "modulus": modulus, "length_tag": length_tag},
              max_depth=max_depth, hidden_size=hidden_size, intermediate_size=intermediate_size,
              num_attention_heads=num_attention_heads, kl_beta=kl_beta, prior_lambda=prior_lambda,
              steps=steps, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps, seed=seed, device=device)

# %% [markdown]
# ## Train both variants
# Each run writes metrics, checkpoints and the final model under `out_dir/<variant>`.

# %%
runs = {}
for name, decider in VARIANTS.items():
    cfg = TrainConfig.from_dict({**common, "decider": decider, "out_dir": f"{out_dir}/{decider}",
                                 "checkpoint_every": max(steps // 4, 1)})
    runs[name] = train(cfg)
    last = runs[name].metrics[-1]
    print(f"{name}: loss {last['loss']:.3f}, train answer acc {last['answer_acc']:.3f}, "
          f"answer depth {last['answer_depth']:.2f}, {last['elapsed_s']:.0f}s")

# %% [markdown]
# ## Accuracy and d̄ per ℓ
# Per-token allocations are dumped to `allocations_<variant>.jsonl` for the later analyses.

# %%
results, records = {}, {}
for name, run in runs.items():
    dump = Path(out_dir) / f"allocations_{VARIANTS[name]}.jsonl"
    results[name] = evaluate_knobs(run.model, run.task, knobs, n_per_knob=eval_per_knob, dump_path=dump)
summary = {name: {"rows": rows, "spearman_depth_vs_L": depth_trend(rows),
                  "min_accuracy": min(r["accuracy"] for r in rows)} for name, rows in results.items()}
atomic_write_json(Path(out_dir) / "results.json", summary)
print(f"{'ℓ':>3} " + " ".join(f"{n + ' acc':>12} {n + ' d̄':>11}" for n in results))
for i, k in enumerate(knobs):
    print(f"{k:>3} " + " ".join(f"{results[n][i]['accuracy']:>12.3f} {results[n][i]['mean_depth']:>11.2f}"
                               for n in results))
for name, s in summary.items():
    print(f"{name}: Spearman(ℓ, d̄) = {s['spearman_depth_vs_L']:.2f}, lowest accuracy {s['min_accuracy']:.3f}")

# %%
figure = plot_knob_curves(results, "number of operators ℓ", title=f"MANO (mod {modulus}, D={max_depth})",
                          path=Path(figure_dir) / "fig2_left_mano.png")
print("figure:", Path(figure_dir) / "fig2_left_mano.png")

# %% [markdown]
# ## One example, token by token
# Pick an example and a variant: bars are each token's exit depth (the answer is predicted at `<ans>`).

# %%
from anira_lib.io import read_jsonl

records = {name: read_jsonl(Path(out_dir) / f"allocations_{VARIANTS[name]}.jsonl") for name in VARIANTS}
view = token_depth_view(records, runs["ANIRA-E"].task.decode, max_depth)
display(view)
view.children[0].children[1].value = 1  # move the slider once: the callback must have re-rendered
assert view.state["index"] == 1 and len(view.state["table"]) == len(records["ANIRA-E"][1]["tokens"])
