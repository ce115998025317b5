# Two commands on a fresh machine: `make demo` (main job, small default) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: env demo test test-fast findings calibration-report bench clrs-eval notebooks lab clean

env: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps dm-clrs==2.0.3
	touch $(STAMP)

## demo: trains ANIRA-E, ANIRA-O, fixed-1 and fixed-D on MANO (CPU default), prints accuracy, d̄ and the depth-necessity rows per ℓ, writes runs/01_mano/figures/fig2_left_mano.png
demo: env
	$(PY) -m anira_lib.notebooks run 01_mano

## test: the whole suite, notebooks executed with tiny parameters (what .ci/run calls), one worker per core (at most 4)
test: env
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist worksteal

test-fast: env
	$(PY) -m pytest -q -m "not slow"

## findings: the paper's claims as verdicts over 3 seeds at CPU scale (configs/studies/findings.yaml; resumable:
## a kill loses at most the steps since a run's last checkpoint), writes docs/findings.md and the README's table
findings: env
	$(PY) -m anira_lib.studies.findings_run configs/studies/findings.yaml

## calibration-report: docs/calibration.md from the stored screens in data/calibration/
calibration-report: env
	$(PY) -m anira_lib.studies.calibration configs/studies/calibration.yaml --report docs/calibration.md

## bench: every benchmark, each printing its ratios side by side (CPU presets)
bench: env
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/samplers.py
	$(PY) benchmarks/prefix_parser.py
	$(PY) benchmarks/decode.py

## clrs-eval: generate and cache the full CLRS-Text evaluation split (dm-clrs 2.0.3) under data/clrs/
clrs-eval: env
	$(PY) -m anira_lib.tasks.clrs --split eval

## notebooks: .ipynb copies paired with the jupytext sources (ignored by git; an edit to either is synced)
notebooks: env
	$(PY) -m jupytext --sync notebooks/[0-9][0-9]_*.py

## lab: JupyterLab on the notebooks folder, one entry per notebook: each .py source opens as a notebook
## (configs/lab/: jupytext's viewer by default, the paired .ipynb that a save writes kept out of the list)
lab: env
	$(PY) -m jupyter lab --config=configs/lab/jupyter_lab_config.json

clean:
	rm -rf runs .pytest_cache
