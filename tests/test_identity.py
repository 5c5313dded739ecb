"""A cell's identity through real `dvc repro`: a docstring or comment edit retrains nothing and changes no stage
output; a weights file replaced at the same path retrains the pretrained cells, and only those; a behaviour edit
in a module the training imports retrains the cells that run it, and the log says why."""

from __future__ import annotations

import pytest
import timm
import torch
import yaml
from safetensors.torch import save_file

from conftest import make_study_repo, run, tiny_params, tiny_weights, trained


def trained_arms(output: str) -> set[str]:
    return {arm for _, _, arm, _, _ in trained(output)}


def outputs(repo) -> tuple[dict, dict]:
    """Every stage's recorded outputs (dvc.lock) and every result file's text."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    cells = {f: f.read_text() for f in sorted((repo / "results/cells").rglob("*.json"))}
    return {name: stage.get("outs") for name, stage in lock.items()}, cells


def tidy(file, old: str, new: str) -> None:
    source = file.read_text()
    assert old in source, f"{file}: {old!r} not found"
    file.write_text(source.replace(old, new, 1) + "\n# a comment appended by the test\n")


@pytest.mark.slow  # four `dvc repro` of a 4-cell study: about two minutes on a quiet 2-core machine
def test_identity_by_what_the_code_computes_and_the_weights_hold(tmp_path):
    weights = tiny_weights(tmp_path / "tiny.safetensors")
    params = tiny_params(weights)
    params["study"].update(regimes=["scratch", "pixels", "linear", "finetune"], sizes=[1], seeds=[1])
    repo = make_study_repo(tmp_path / "repo", params)
    first = run(["dvc", "repro"], repo)
    assert trained_arms(first.stderr) == {"scratch", "pixels", "linear", "finetune"}
    assert "retrain digits · tiny · scratch · 1/class · seed 1: new" in first.stderr
    before = outputs(repo)

    # docstrings and comments: in the training code, the schema, a stage script and the analysis
    package = repo / "pretraining_gap"
    tidy(package / "training/loop.py", '"""', '"""A tidied docstring. ')
    tidy(package / "config.py", '"""', '"""A tidied docstring. ')
    tidy(repo / "stages/train.py", '"""', '"""A tidied docstring. ')
    tidy(package / "analysis/plots.py", '"""', '"""A tidied docstring. ')
    tidied = run(["dvc", "repro"], repo)
    assert tidied.stdout.count("Running stage") == 1 and "Running stage 'fingerprint'" in tidied.stdout
    assert outputs(repo) == before

    # other weights at the same path: params.yaml is unchanged, the weights' digest file is not
    torch.manual_seed(1)
    save_file(timm.create_model("test_efficientnet").state_dict(), str(weights))
    replaced = run(["dvc", "repro"], repo)
    assert trained_arms(replaced.stderr) == {"linear", "finetune"}
    assert "retrain digits · tiny · finetune · 1/class · seed 1: weights changed" in replaced.stderr
    assert "kept digits · tiny · pixels · 1/class · seed 1" in replaced.stderr

    # a behaviour edit two imports away from the gradient regimes' runners (regimes -> loop -> early_stopping)
    stopping = package / "training/early_stopping.py"
    stopping.write_text(stopping.read_text().replace("(-1.0, math.inf)", "(-2.0, math.inf)"))
    edited = run(["dvc", "repro"], repo)
    assert trained_arms(edited.stderr) == {"scratch", "finetune"}  # the probes never import the loop
    assert "retrain digits · tiny · scratch · 1/class · seed 1: code changed" in edited.stderr
    assert "Running stage 'prepare" not in edited.stdout  # its code imports no training module
