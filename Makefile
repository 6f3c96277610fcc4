# Two commands set everything up on a fresh machine with Python 3.11:
#   make demo   install, train on the default data if no checkpoint, export, serve the demo
#   make test   install, run the test suite
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARTIFACTS ?= artifacts
CHECKPOINT ?= $(ARTIFACTS)/bn-lenet.pt
ONNX_DIR ?= $(ARTIFACTS)/onnx
FOLDED_ONNX := $(ONNX_DIR)/$(basename $(notdir $(CHECKPOINT))).folded.onnx
# The real RMB photos, when this checkout sits beside the shared data folder.
RMB_DATA_DIR ?= $(if $(wildcard ../shared/data/rmb),$(abspath ../shared/data/rmb),)
export RMB_DATA_DIR
PYTEST_ARGS ?=

.PHONY: install demo train export test lint format bench gpu-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

$(CHECKPOINT): | $(STAMP)
	$(PY) -m train --out $(CHECKPOINT)

train: $(CHECKPOINT)

$(FOLDED_ONNX): $(CHECKPOINT)
	$(PY) -m export --checkpoint $(CHECKPOINT) --out $(ONNX_DIR)

export: $(FOLDED_ONNX)

demo: $(FOLDED_ONNX)
	$(PY) -m demo --checkpoint $(CHECKPOINT) --onnx-dir $(ONNX_DIR)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(FOLDED_ONNX)
	$(if $(RMB_DATA_DIR),$(PY) -m benchmarks.train_speed --data $(RMB_DATA_DIR),@echo "benchmarks.train_speed skipped: RMB_DATA_DIR is not set")
	$(PY) -m benchmarks.inference --checkpoint $(CHECKPOINT) --onnx-dir $(ONNX_DIR) --out $(ARTIFACTS)/bench

# On a CUDA host: makes .venv-gpu once (the project with onnxruntime-gpu in place of
# onnxruntime; the main venv is not touched), trains/exports if needed, runs the gpu tests and
# the benchmark's CUDA rows at batch 1 to 16384 (benchmarks/gpu_check.py). On a CPU-only host
# it prints every check as skipped with the reason and exits 0 in seconds.
gpu-check: $(STAMP)
	$(PY) -m benchmarks.gpu_check --venv .venv-gpu --checkpoint $(CHECKPOINT) --onnx-dir $(ONNX_DIR) --out $(ARTIFACTS)/bench/gpu

clean:
	rm -rf $(ARTIFACTS) .pytest_cache .ruff_cache .venv-gpu
