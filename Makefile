# prism-aug: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1

SYNTHCXR := data/synthcxr
SYNTHCXR_CONFIG := configs/data/synthcxr.yaml
# A renderer change makes the rendered folders stale.
RENDERER := $(wildcard prism_aug/data/synthcxr/*.py)

.PHONY: install test lint format data augment bench calibrate clean

install: $(VENV)/.installed

# Reinstalls only when pyproject.toml changes, so a second `make install` is a no-op.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/python -m pytest

data: $(SYNTHCXR)/train.csv

$(SYNTHCXR)/train.csv: $(SYNTHCXR_CONFIG) $(RENDERER) | install
	$(BIN)/prism-aug data synthcxr --config $(SYNTHCXR_CONFIG)

# The pipeline as far as it exists today: SynthCXR and its summary. Fine-tuning, editing
# and shard writing join this target as they land.
augment: data
	$(BIN)/prism-aug data summary --csv $(SYNTHCXR)/train.csv --views '[Frontal]' \
		--target "Pleural Effusion" --attribute "Support Devices"

data/synthcxr_balanced/train.csv: configs/data/synthcxr_balanced.yaml $(RENDERER) | install
	$(BIN)/prism-aug data synthcxr --config configs/data/synthcxr_balanced.yaml

calibrate: data data/synthcxr_balanced/train.csv
	$(BIN)/python experiments/synthcxr_calibration.py --data $(SYNTHCXR) \
		--balanced_data data/synthcxr_balanced

bench: install
	$(BIN)/python benchmarks/bench_synthcxr.py
	$(BIN)/python benchmarks/bench_summary.py

clean:
	rm -rf $(SYNTHCXR) outputs
