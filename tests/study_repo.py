"""A throw-away copy of this project's pipeline (git + DVC) with given params, and the environment to run the
real tools in it: what the tests' tiny studies and the benchmarks' timed `dvc repro` runs start from."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from pretraining_gap.config import Params

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ("dvc.yaml", "stages", "pretraining_gap")  # what a study needs besides its params.yaml


def study_env(repo: Path) -> dict[str, str]:
    """This interpreter's tools first on PATH, no MLFLOW_TRACKING_URI, and the study repository's own copy of the
    package first on the import path (as an editable install in that folder would), so editing it changes what runs."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(repo)
    return env


def write_params(file: Path, params: Params | dict) -> None:
    """params.yaml from typed params, or from a raw dict written as it is (a test's deliberate mistake too)."""
    raw = params.model_dump(mode="json", exclude_none=True) if isinstance(params, Params) else params
    file.write_text(yaml.safe_dump(raw, sort_keys=False))


def make_study_repo(path: Path, params: Params | dict) -> Path:
    """A git repository at `path` holding this project's pipeline files and the given params, DVC initialised."""
    path.mkdir(parents=True)
    for name in PIPELINE:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, path / name)
    write_params(path / "params.yaml", params)
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=path, env=study_env(path), check=True)
    shutil.copytree(
        ROOT / ".dvc/plots", path / ".dvc/plots"
    )  # the offline page of `dvc plots show`, its templates
    shutil.copy(ROOT / ".dvc/config", path / ".dvc/config")
    return path
