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
# # 06 · LANO: does compute track syntactic difficulty? (Table 1)
#
# An incremental prefix parser (Nowak & Cotterell 2023) reads each held-out sentence one token at a
# time; after token k its charts give four proxies of how much parsing work token k causes
# (`anira_lib.analysis.prefix_parser`, docs/prefix_parser.md):
#
# | proxy | chart quantity | reading |
# |---|---|---|
# | expansion | #{(i,X,Z): γ(i,k∣X,Z) > 0} | how many open constituents wait at the new split point |
# | convergence | #{(i,X): β(i,k∣X) > 0} | how many complete constituents end at k |
# | additions / multiplications | nonzero arithmetic of the column update | total parsing work |
#
# We correlate each proxy with the per-token expected depth Σ_d d·q(d) of the LANO models of
# `04_lano` (or, if that run is absent, of models trained here with the same tiny defaults) and put
# the paper's Table 1 beside ours. Intervals: 95% bootstrap over windows.

# %% tags=["parameters"]
lano_dir = "runs/04_lano"    # where 04_lano wrote lano_eval.npz; trained here if missing
window = 512                 # only used when training here (same defaults as 04_lano)
max_depth = 4
hidden_size = 64
intermediate_size = 256
steps = 3000
compile_training = True
batch_size = 4
eval_windows = 32
processes = 2
n_boot = 1000
seed = 0
out_dir = "runs/06_lano_proxies"
proxy_cache = "data/lano_proxies"  # parser proxies, computed once per window set
figure_dir = ""         # "" = <out_dir>/figures; "figures" refreshes the committed figures

# %%
from pathlib import Path

import numpy as np

from anira_lib.analysis.correlations import format_table, proxy_correlations
from anira_lib.studies.experiments import evaluate_lano, train_variants
from anira_lib.files import atomic_write_json, atomic_write_text
from anira_lib.display.plots import plot_sentence_proxies
from anira_lib.analysis.prefix_parser import FEATURES
from anira_lib.project import figure_folder, work_from_project_root
from anira_lib.analysis.proxies import compute_proxies

work_from_project_root()

eval_file = Path(lano_dir) / "lano_eval.npz"
if not eval_file.exists():
    print(f"{eval_file} not found: training tiny LANO models in {out_dir}")
    settings = dict(task="lano", task_args={"window": window}, max_depth=max_depth, hidden_size=hidden_size,
                    intermediate_size=intermediate_size, num_attention_heads=4, steps=steps, batch_size=batch_size,
                    lr=2e-3, warmup_steps=min(50, steps), seed=seed, checkpoint_every=max(steps // 4, 1),
                    compile=compile_training)
    runs = train_variants(settings, out_dir, processes=processes)
    evaluate_lano(runs, eval_windows, out_dir, generations=0, proxy_cache=proxy_cache)
    eval_file = Path(out_dir) / "lano_eval.npz"
with np.load(eval_file) as f:
    arrays = {k: f[k] for k in f.files}
windows = arrays["windows"]
depths = {k.removeprefix("expected_depth_"): v for k, v in arrays.items() if k.startswith("expected_depth_")}
print(f"{len(windows)} windows of {windows.shape[1]} tokens; variants: {sorted(depths)}")

# %% [markdown]
# ## Parser proxies for every held-out token
# Cached under `proxy_cache` (default `data/lano_proxies/`; the key hashes grammar, windows and feature definition).

# %%
proxies = compute_proxies(windows, processes=processes, cache_dir=proxy_cache)
for f in FEATURES:
    print(f"{f:>20}: mean {np.nanmean(proxies[f]):7.2f}, max {np.nanmax(proxies[f]):5.0f}")

# %% [markdown]
# ## Table 1: correlation of expected depth with each proxy

# %%
rows = proxy_correlations(depths, proxies, n_boot=n_boot, seed=seed)
table = format_table(rows)
print(table)
figure_folder(figure_dir, out_dir).mkdir(parents=True, exist_ok=True)
atomic_write_text(figure_folder(figure_dir, out_dir) / "table1_lano.txt", table + "\n")
atomic_write_json(Path(out_dir) / "table1.json", rows)

# %% [markdown]
# ## Depth and proxies along one sentence

# %%
tokens = windows[0]
end = int(np.argmax(tokens == 4)) if (tokens == 4).any() else len(tokens)
figure_path = figure_folder(figure_dir, out_dir) / "table1_lano_sentence.png"
plot_sentence_proxies(tokens[:end], {k: v[0, :end] for k, v in depths.items()},
                      {f: proxies[f][0, :end] for f in FEATURES}, path=figure_path,
                      title="LANO: expected depth and parser proxies along one sentence")
print("figure:", figure_path)
