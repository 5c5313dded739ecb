"""Shared fixtures: a tiny study in a temporary git + DVC repository, run with the real tools."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import timm
import torch
import yaml
from safetensors.torch import save_file

from study_repo import ROOT, make_study_repo, study_env

# One thread and one process, here and in every subprocess: the tiny test models gain nothing from a second
# thread or worker (starting a worker costs more than their cells), and OpenMP threads that spin-wait run them
# 20x slower when the machine is shared. No DVC usage reports from tests. tests/test_speed.py runs workers.
os.environ.update(OMP_NUM_THREADS="1", PRETRAINING_GAP_WORKERS="1", DVC_NO_ANALYTICS="1")
torch.set_num_threads(1)


def tiny_weights(path: Path) -> Path:
    """A stand-in 'pretrained' checkpoint for timm's 100k-parameter test_efficientnet (no network needed)."""
    torch.manual_seed(0)
    save_file(timm.create_model("test_efficientnet").state_dict(), str(path))
    return path


def tiny_params(weights: Path) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["study"].update(
        backbones=["tiny"], regimes=["scratch", "linear", "finetune"], sizes=[1, 3], seeds=[1, 2]
    )
    params["datasets"]["digits"].update(resolution=16, val_per_class=5, test_per_class=10)
    params["backbones"] = {
        "tiny": {"model": "test_efficientnet", "weights": str(weights), "feature_resolution": 16}
    }
    params["training"].update(min_steps=4, max_steps=8, batch_size=8, ladder=[1, 2])
    params["analysis"].update(bootstrap=100)
    # one candidate per regime and a two-rung ladder: the tests that choose among several set their own grids
    regimes = params["regimes"]
    regimes["scratch"].update(lr=[0.03])
    del regimes["scratch"]["group_norm_lr"]  # batch norm only
    regimes["finetune"].update(lr=[0.001], batchnorm=["frozen"])
    regimes["frozen"].update(lr=[0.001], dropout=[0.2])
    regimes["chainthaw"].update(lr=[0.001], batchnorm=["frozen"])
    regimes["depth"].update(lr=[0.001], lr_new=[0.01])
    return params


def run(
    cmd: list[str], cwd: Path, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env or study_env(cwd), capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def trained(output: str) -> list[tuple[str, str, str, str, str]]:
    """The cells a train stage's log says it trained, one line each ("[3/8] digits · tiny · scratch · 2/class ·
    seed 1: test accuracy …" or "… failed: …"), as (dataset, backbone, arm, size, seed)."""
    return re.findall(r"\[\d+/\d+\] (\S+) · (\S+) · (\S+) · (\S+)/class · seed (\d+)", output)


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> Path:
    """The tiny study, reproduced once for the tests that only read its outputs."""
    base = tmp_path_factory.mktemp("tiny")
    repo = make_study_repo(base / "repo", tiny_params(tiny_weights(base / "tiny.safetensors")))
    run(["dvc", "repro"], repo)
    return repo
