# make train [ARGS="model=lenet data=mnist"]   set up on first use, then train
# make test                                    set up on first use, then run the test suite (one worker a core)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup train test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip uninstall --quiet --yes hydra-optuna-sweeper  # an older set-up's: it pins optuna<3
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/python train.py $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -n auto --durations=10 $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf outputs multirun .pytest_cache
