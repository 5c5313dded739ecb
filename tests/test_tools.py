"""The developer tools run as modules from the repository root, with no edit of the import path."""

from __future__ import annotations

import importlib
import itertools
import re
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, study_env, tiny_params, tiny_weights

# every module of tools/ is a command, but the package's own file and the study-repository helper
TOOLS = sorted(f.stem for f in (ROOT / "tools").glob("*.py") if f.stem not in ("__init__", "study_repo"))


@pytest.mark.parametrize("tool", TOOLS)
def test_help_prints_the_description(tool):
    done = subprocess.run(
        [sys.executable, "-m", f"tools.{tool}", "--help"],
        cwd=ROOT,
        env=study_env(ROOT),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    summary = importlib.import_module(f"tools.{tool}").__doc__.splitlines()[0]
    assert summary in done.stdout
    assert f"python -m tools.{tool}" in done.stdout  # its usage line and examples name the module


def test_validation_sweep_prints_a_validation_accuracy_per_learning_rate(tmp_path):
    """A real sweep of the tiny study's scratch arm, run from the study's folder as a user runs it."""
    params = tiny_params(tiny_weights(tmp_path / "tiny.safetensors"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    done = subprocess.run(
        [sys.executable, "-m", "tools.validation_sweep", "scratch", "--lr", "0.01", "0.1"]
        + ["--sizes", "1", "3", "--backbone", "tiny", "--set", "regimes.scratch.budget_multiplier=1,2"],
        cwd=tmp_path,
        env=study_env(ROOT),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4
    for (multiplier, lr), line in zip(itertools.product((1, 2), ("0.01", "0.1")), lines):
        assert re.fullmatch(
            rf"scratch lr={lr} regimes\.scratch\.budget_multiplier={multiplier}: validation accuracy "
            r"1/class seed 1 [01]\.\d{3}, 3/class seed 1 [01]\.\d{3}",
            line,
        )
