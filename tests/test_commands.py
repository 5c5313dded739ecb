"""`pretraining-gap plan` on the tiny study: what would train and why, what is kept, the estimated time, before
anything runs (no training, no MLflow)."""

from __future__ import annotations

import re
import sys

import yaml

from conftest import run, study_env


def plan(repo, *args) -> tuple[str, str]:
    done = run([sys.executable, "-X", "importtime", "-m", "pretraining_gap.commands", "plan", *args], repo)
    imported = re.findall(r"import time:.*\| +(\S+)$", done.stderr, re.M)
    assert imported and not any(name.startswith("mlflow") for name in imported)
    return done.stdout, done.stderr


def test_plan_of_a_finished_study_keeps_every_cell(tiny_study):
    out, _ = plan(tiny_study)
    assert out.startswith("digits · tiny: 0 cells to train, 12 kept; about 0 s of training steps")
    assert "results/costs/digits/tiny.json" in out and out.count("  keep  digits · tiny · ") == 12


def test_plan_says_why_each_cell_would_train_and_how_long(tiny_study, tmp_path):
    params = yaml.safe_load((tiny_study / "params.yaml").read_text())
    params["study"]["sizes"] = [1, 3, 5]  # new cells
    params["regimes"]["linear"]["C"] = [0.5]  # the linear cells' config
    edited = tmp_path / "params.yaml"
    edited.write_text(yaml.safe_dump(params))
    out, _ = plan(tiny_study, "--params", str(edited))
    assert out.startswith("digits · tiny: 10 cells to train, 8 kept; about ")
    assert "  train digits · tiny · scratch · 5/class · seed 2: new (" in out
    assert "  train digits · tiny · linear · 1/class · seed 1: config changed (0 steps)" in out
    assert "  keep  digits · tiny · finetune · 3/class · seed 1 (finished)" in out
    assert not (tiny_study / "results/cells/digits/tiny/scratch/0005-per-class_seed-2.json").exists()


def test_plan_before_the_inputs_exist_names_the_stages_to_run(tiny_study, tmp_path):
    (tmp_path / "params.yaml").write_text((tiny_study / "params.yaml").read_text())
    command = [sys.executable, "-m", "pretraining_gap.commands", "plan"]
    done = run(
        command, tmp_path, check=False, env=study_env(tiny_study)
    )  # the study's package, an empty root
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert (
        "data/prepared/digits.npz" in done.stderr and "`dvc repro prepare subsample features`" in done.stderr
    )
