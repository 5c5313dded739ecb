# make study: the default study, end to end.  make test: the test suite.  Both make .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: study test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

study: $(VENV)/.installed
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc repro

test: $(VENV)/.installed
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/pytest

clean:
	rm -rf data results plots mlflow.db mlruns
