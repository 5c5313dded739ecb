# make study: the default study, end to end.  make study-all: the same grid with all five regimes and depth-k,
# as a DVC experiment.  make test: the readability gates (ruff) and the test suite.  Each makes .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: study study-all test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

study: $(VENV)/.installed
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc repro

study-all: $(VENV)/.installed
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc exp run \
		-S 'study.regimes=[scratch,linear,frozen,finetune,chainthaw,depth]'

test: lint $(VENV)/.installed
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf data results plots mlflow.db mlruns
