"""The measurement scripts run as modules from the repository root, with no edit of the import path, and each has
its last figures beside it."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from conftest import ROOT, study_env

BENCHMARKS = sorted(f.stem for f in (ROOT / "benchmarks").glob("*.py") if f.stem != "__init__")


@pytest.mark.parametrize("script", BENCHMARKS)
def test_help_prints_the_description(script):
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{script}", "--help"],
        cwd=ROOT,
        env=study_env(ROOT),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    summary = importlib.import_module(f"benchmarks.{script}").__doc__.splitlines()[0]
    assert summary in done.stdout
    assert f"python -m benchmarks.{script}" in done.stdout  # its usage line and examples name the module


@pytest.mark.parametrize("script", BENCHMARKS)
def test_each_script_has_its_figures_with_date_and_machine_beside_it(script):
    figures = (ROOT / "benchmarks" / f"{script}.md").read_text()
    assert f"python -m benchmarks.{script}" in figures
    assert "Date:" in figures and "Machine:" in figures
