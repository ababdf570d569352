# Two fresh-machine entry points (see README): `make bench` and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
CORES   ?= all
# torch==2.13.0: on a CPU-only machine with the local wheel this stays a CPU build; from PyPI on a
# Linux GPU box the same pin is the CUDA build. Never leave torch unpinned (a multi-GB CUDA pull).
TORCH   ?= torch==2.13.0
export OMP_NUM_THREADS ?= 1
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: bench test lint dashboard readme-results clean-results

bench: $(VENV)/.installed
	@start=$$(date +%s); \
	snakemake --cores $(CORES) --rerun-incomplete $(SNAKEMAKE_ARGS) && \
	echo "default benchmark finished in $$(( $$(date +%s) - start )) s" && \
	$(PY) -m methods.core.show && \
	echo "Open the leaderboard:  $(VENV)/bin/streamlit run dashboard/app.py   (http://localhost:8501)"

test: $(VENV)/.installed
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/snakemake --lint

dashboard: $(VENV)/.installed
	$(VENV)/bin/streamlit run dashboard/app.py

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

# Regenerate the README's claim table from results/claims.parquet (numbers are never typed by hand).
readme-results: $(VENV)/.installed
	$(PY) -m methods.core.show --update README.md

clean-results:
	rm -rf results/runs results/cache results/logs results/scales results/leaderboard.parquet results/claims.parquet
