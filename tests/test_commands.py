"""The study's command line, `pretraining-gap`: its subcommands, the entry point pyproject installs, and the real
commands run from a study's folder; `plan` on the tiny study says what would train and why, and what is kept,
before anything runs (no training, no MLflow)."""

from __future__ import annotations

import importlib
import itertools
import re
import subprocess
import sys

import yaml

from conftest import ROOT, run, study_env, tiny_params, tiny_weights
from pretraining_gap import commands


def pretraining_gap(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    """`pretraining-gap ARGS` as the installed script runs it: commands.main."""
    command = [sys.executable, "-c", "from pretraining_gap.commands import main; main()", *args]
    return subprocess.run(command, cwd=cwd, env=study_env(ROOT), capture_output=True, text=True)


def test_pyproject_installs_the_pretraining_gap_command():
    pyproject = (ROOT / "pyproject.toml").read_text()
    scripts = pyproject.split("[project.scripts]\n")[1].split("\n\n")[0]
    module, _, function = re.fullmatch(r'pretraining-gap = "(.+)"', scripts)[1].partition(":")
    assert getattr(importlib.import_module(module), function) is commands.main


def test_help_lists_every_command_and_each_command_has_its_own():
    done = pretraining_gap("--help")
    assert done.returncode == 0, done.stderr
    for name, module in commands.COMMANDS.items():
        assert re.search(rf"^\s+{name}\s+{re.escape(module.__doc__.split()[0])}", done.stdout, re.M)
        own = pretraining_gap(name, "--help")
        assert own.returncode == 0 and f"usage: pretraining-gap {name}" in own.stdout


def test_ui_prints_the_links_to_both_saved_views(tiny_study):
    done = pretraining_gap("ui", "--links", "--port", "5123", cwd=tiny_study)
    assert done.returncode == 0, done.stderr
    base = (
        r"http://127\.0\.0\.1:5123/#/experiments/\d+/runs\?workflowType=machine_learning&viewStateShareKey="
    )
    assert re.fullmatch(rf"cells:  {base}cells\ncurves: {base}curves&compareRunsMode=CHART\n", done.stdout)


def test_sweep_prints_a_validation_accuracy_per_learning_rate(tmp_path):
    """A real sweep of the tiny study's scratch arm, run from the study's folder as a user runs it."""
    params = tiny_params(tiny_weights(tmp_path / "tiny.safetensors"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    done = pretraining_gap(
        *["sweep", "scratch", "--lr", "0.01", "0.1", "--sizes", "1", "3", "--backbone", "tiny"],
        *["--set", "training.max_steps=4,8"],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4
    for (steps, lr), line in zip(itertools.product((4, 8), ("0.01", "0.1")), lines):
        assert re.fullmatch(
            rf"scratch lr={lr} training\.max_steps={steps}: validation accuracy "
            r"1/class seed 1 [01]\.\d{3}, 3/class seed 1 [01]\.\d{3}",
            line,
        )


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
