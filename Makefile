# The README's commands, run with the project's own environment: .venv, made (and kept installed) when missing.
#   make study      the default study, end to end (dvc repro)
#   make repro      dvc repro again, after a change to params.yaml: only what changed reruns
#   make report     the report stage and what it needs; prints where the report is
#   make plots      dvc plots show: every figure in one offline page, dvc_plots/index.html
#   make ui         MLflow's UI on the study's store (PORT=5000), with the link to the study's runs
#   make study-full the default grid with 5 seeds (the README's table), as a DVC experiment
#   make study-all  the same grid with all five regimes and depth-k, as a DVC experiment
#   make test       the readability gates (ruff) and the test suite, but for the tests marked slow
#   make test-slow  the tests marked slow (minutes each)
# The stages run the `python` first on PATH: every target puts $(BIN) first. BIN=<folder> runs the targets with
# the tools of an environment made elsewhere (a conda env, another venv), as it is: nothing is installed then.
PYTHON ?= python3
VENV ?= .venv
BIN ?= $(VENV)/bin
PORT ?= 5000
RUN := PATH="$(abspath $(BIN)):$$PATH"

ifeq ($(BIN),$(VENV)/bin)
ENV := $(VENV)/.installed
endif

.PHONY: study repro report plots ui study-full study-all test test-slow lint clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

study repro: $(ENV)
	$(RUN) dvc repro

report: $(ENV)
	$(RUN) dvc repro report
	@echo "report: $(CURDIR)/reports/index.html"

plots: $(ENV)
	$(RUN) dvc plots show

ui: $(ENV)
	$(RUN) pretraining-gap ui --port $(PORT)

study-full: $(ENV)
	$(RUN) dvc exp run -S 'study.seeds=[1,2,3,4,5]'

study-all: $(ENV)
	$(RUN) dvc exp run -S 'study.regimes=[scratch,linear,frozen,finetune,chainthaw,depth]'

test: lint $(ENV)
	$(RUN) pytest -m "not slow"

test-slow: $(ENV)
	$(RUN) pytest -m slow

lint: $(ENV)
	$(RUN) ruff check .
	$(RUN) ruff format --check .

clean:
	rm -rf data results plots mlflow.db mlruns
