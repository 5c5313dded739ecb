"""The stage scripts as a user meets them outside a study: `--help`, and a stage started by the wrong Python."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, make_study_repo, run, study_env, tiny_params

STAGES = sorted(p.stem for p in (ROOT / "stages").glob("*.py") if p.stem != "interpreter")
HEAVY = ("torch", "timm", "mlflow", "numpy", "pandas", "pydantic", "sklearn", "matplotlib")


@pytest.mark.parametrize("stage", STAGES)
def test_help_names_the_params_keys_and_defaults_and_imports_no_heavy_library(stage):
    done = subprocess.run(
        [sys.executable, "-X", "importtime", f"stages/{stage}.py", "--help"],
        cwd=ROOT,
        env=study_env(ROOT),
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Reads params.yaml:" in done.stdout and "(default: None)" not in done.stdout
    has_defaults = "default=" in (ROOT / f"stages/{stage}.py").read_text()
    assert ("(default:" in done.stdout) == has_defaults
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines()}
    assert not imported & set(HEAVY), f"--help of {stage} imports {imported & set(HEAVY)}"


def test_a_stage_run_by_a_python_without_the_project_says_so_in_one_line(tmp_path):
    """DVC runs the first `python` on PATH: here one of a bare venv (no packages), as when the project's venv
    is not activated. The stage stops with one line naming that Python and the fix, no traceback."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    repo = make_study_repo(tmp_path / "repo", tiny_params(tmp_path / "unused.safetensors"))
    env = study_env(repo)
    env["PATH"] = f"{bare / 'bin'}:{env['PATH']}"
    del env["PYTHONPATH"]  # as for a user: the project is found only where it is installed
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), "repro"], cwd=repo, env=env, capture_output=True, text=True
    )
    assert done.returncode != 0
    said = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert said == [
        f"error: {bare / 'bin' / 'python'} (the first `python` on PATH, which DVC runs) does not have the "
        "project installed. Fix: `source .venv/bin/activate` (made by `make study`) and run the command "
        "again, or run `make repro`"
    ]
    assert "Traceback" not in done.stderr and "ModuleNotFoundError" not in done.stderr
    assert "prepare@digits" in run(["dvc", "status"], repo).stdout  # nothing ran
