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
# # 07 · Inference savings: decode speed and KV memory vs d̄
#
# With the allocation-aware cache (`anira_lib.modeling.cache`), a token that exits after d iterations runs
# only those d iterations at decode time and keeps P + C + d (+1 frozen) keys/values instead of
# P + D + C. ANIRA-O's threshold τ sets how early tokens stop (Eq. 7 with u = τ): sweeping it trades
# compute for accuracy (paper Fig. 10). Here we measure what each τ buys: d̄ of the decoded tokens,
# decode tokens/s against the same model at full depth, the layer-count bound (P+D+C)/(P+d̄+C), and
# KV bytes held against the accounting in docs/cache_contract.md.
#
# The speed and memory depend only on the exit depths, so by default the model has random weights
# with a spread decider; point `model_dir` at a trained ANIRA-O (e.g. `runs/01_mano/online/model`).

# %% tags=["parameters"]
model_dir = ""           # a saved ANIRA-O folder; "" builds a random-weight model of the size below
hidden_size = 256
intermediate_size = 1024
num_attention_heads = 8
max_depth = 8
taus = [0.1, 0.3, 0.5, 0.7, 0.9]
batch_size = 1
prompt_len = 64
new_tokens = 64
seed = 0
out_dir = "runs/07_inference_savings"
figure_dir = ""         # "" = <out_dir>/figures; "figures" refreshes the committed figures

# %%
from pathlib import Path

from IPython.display import display
from transformers import AutoModelForCausalLM

import anira_lib  # noqa: F401  (registers the model with the Auto classes)
from anira_lib.files import atomic_write_json
from anira_lib.display.plots import plot_savings
from anira_lib.project import figure_folder, work_from_project_root
from anira_lib.evaluation.savings import decode_savings, random_adaptive_model
from anira_lib.display.widgets import savings_view

work_from_project_root()

if model_dir:
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
else:  # tokens exit at many different depths
    model = random_adaptive_model("online", hidden_size, intermediate_size, num_attention_heads, max_depth, seed=seed)
print(f"ANIRA-{'O' if model.config.decider == 'online' else 'E'}: P={model.config.prelude_layers} "
      f"D={model.config.max_depth} C={model.config.coda_layers}, H={model.config.hidden_size}")

# %%
rows = decode_savings(model, taus, batch_size=batch_size, prompt_len=prompt_len, new_tokens=new_tokens, seed=seed)
atomic_write_json(Path(out_dir) / "savings.json", rows)
print(f"{'setting':>11} {'d̄':>5} {'tok/s':>8} {'speedup':>8} {'bound':>6} {'KV held':>8} {'accounting':>10}")
for r in rows:
    print(f"{r['setting']:>11} {r['mean_depth']:5.2f} {r['tokens_per_s']:8.1f} {r['speedup']:8.2f} {r['bound']:6.2f} "
          f"{r['kv_held_over_fixed']:8.3f} {r['kv_accounting']:10.3f}")

# %% [markdown]
# ## Move τ
# The star marks the chosen τ on the measured speedup curve; the bars compare its KV bytes with the
# accounting and with full depth.

# %%
view = savings_view(rows)
display(view)
plot_savings(rows, figure_folder(figure_dir, out_dir) / "inference_savings.png")
print("figure:", figure_folder(figure_dir, out_dir) / "inference_savings.png")
