"""End to end: `dvc repro` of a tiny study in a temporary git repository with a real SQLite MLflow store."""

from __future__ import annotations

import json
import re

import pandas as pd
import timm
import torch
import yaml
from mlflow import MlflowClient
from PIL import Image
from safetensors.torch import save_file

from conftest import make_study_repo, run, tiny_params, tiny_weights

REGIMES = ["scratch", "linear", "finetune"]


def cell_runs(repo):
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("pretraining-gap")
    return client, client.search_runs([experiment.experiment_id], filter_string="tags.kind = 'cell'")


def test_table_has_one_row_per_cell(tiny_study):
    cells = pd.read_csv(tiny_study / "results/cells.csv")
    assert len(cells) == 3 * 2 * 2  # regimes x sizes x seeds
    assert set(cells.regime) == set(REGIMES)
    assert sorted(cells.examples_per_class.unique()) == [1, 3]
    assert cells.test_accuracy.between(0, 1).all()
    assert (cells.status == "finished").all() and cells.depth.isna().all()
    gradient = cells[cells.regime != "linear"]
    assert (gradient.train_seconds > 0).all() and (gradient.images_per_second > 0).all()


def test_metrics_match_the_table(tiny_study):
    cells = pd.read_csv(tiny_study / "results/cells.csv")
    assert json.loads((tiny_study / "metrics/summary.json").read_text()) == {"cells": "12/12"}
    arms = {
        regime: json.loads((tiny_study / f"metrics/digits/tiny/{regime}.json").read_text())
        for regime in REGIMES
    }
    for regime, node in arms.items():
        expected = cells[(cells.regime == regime) & (cells.examples_per_class == 3)].test_accuracy.mean()
        assert node["cells"] == "4/4" and abs(node["acc"]["3"] - 100 * expected) <= 0.05
    finetune = arms["finetune"]
    assert abs(finetune["gap"]["3"] - (finetune["acc"]["3"] - arms["scratch"]["acc"]["3"])) <= 0.1
    assert finetune["crossover"] == "not fitted"  # two sizes: a learning curve needs four
    assert "gap" not in arms["scratch"]


def test_figures_report_and_dvc_plot_data_exist(tiny_study):
    for figure in ("accuracy", "gap", "effective_data", "learning"):
        with Image.open(tiny_study / f"plots/digits_tiny_{figure}.png") as image:
            assert image.width > 400 and image.height > 300
    curve = pd.read_csv(tiny_study / "results/curves/digits/tiny/finetune.csv")
    assert list(curve.examples_per_class) == [1, 3]
    shown = run(["dvc", "metrics", "show"], tiny_study).stdout
    assert "gap.3" in shown and "metrics/digits/tiny/finetune.json" in shown
    assert max(len(line) for line in shown.splitlines()) <= 120  # one row per arm: readable in a terminal
    plotted = run(["dvc", "plots", "show", "-o", "dvc_plots"], tiny_study)
    assert "failed" not in plotted.stdout + plotted.stderr
    assert "results/curves/digits/tiny/finetune.csv" in (tiny_study / "dvc_plots/index.html").read_text()
    page = (tiny_study / "reports/index.html").read_text()
    assert "<strong>finetune</strong>: Pretraining" in page and page.count("data:image/png;base64,") >= 4
    assert "validation labels" in page and "Glossary" in page


def test_one_named_mlflow_run_per_cell_with_params_and_curves(tiny_study):
    client, runs = cell_runs(tiny_study)
    assert len(runs) == 12
    names = {run.info.run_name for run in runs}
    assert "digits · tiny · finetune · 3/class · seed 2" in names and len(names) == 12
    run_ = next(r for r in runs if r.info.run_name == "digits · tiny · finetune · 3/class · seed 2")
    assert run_.data.tags["regime"] == "finetune" and run_.data.tags["examples_per_class"] == "3"
    assert run_.data.tags["DVC_STAGE"] == "train@digits-tiny"
    assert run_.data.params["regime.lr"] == "[0.001]"
    assert run_.data.params["examples_per_class"] == "3"
    assert 0 <= run_.data.metrics["test_accuracy"] <= 1
    history = client.get_metric_history(run_.info.run_id, "val_accuracy")
    assert len(history) >= 2 and [m.step for m in history] == sorted(m.step for m in history)
    assert history[-1].step > history[0].step
    summary = client.search_runs([run_.info.experiment_id], filter_string="tags.kind = 'summary'")
    assert len(summary) == 1
    artifacts = {a.path for a in client.list_artifacts(summary[0].info.run_id)}
    assert {"index.html", "cells.csv", "metrics", "gap.csv", "digits_tiny_accuracy.png"} <= artifacts
    assert "digits.tiny.finetune.gap.1" in summary[0].data.metrics


def test_rerun_trains_nothing_and_new_size_or_setting_trains_only_its_cells(tmp_path):
    params = tiny_params(tiny_weights(tmp_path / "tiny.safetensors"))
    params["study"].update(regimes=["scratch", "linear"], sizes=[1], seeds=[1])
    repo = make_study_repo(tmp_path / "repo", params)
    run(["dvc", "repro"], repo)
    first = repo / "results/cells/digits/tiny/scratch/0001-per-class_seed-1.json"
    before = first.read_text()

    again = run(["dvc", "repro"], repo)
    assert "Running stage" not in again.stdout

    params["study"].update(sizes=[1, 2])
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    grown = run(["dvc", "repro"], repo)
    assert "training digits · tiny · scratch · 2/class · seed 1" in grown.stderr
    assert "training digits · tiny · scratch · 1/class · seed 1" not in grown.stderr
    assert first.read_text() == before
    _, runs = cell_runs(repo)
    assert sorted(r.info.run_name for r in runs) == sorted(
        f"digits · tiny · {regime} · {n}/class · seed 1" for regime in ("scratch", "linear") for n in (1, 2)
    )

    params["regimes"]["linear"]["C"] = [1]  # one regime's setting: its cells retrain, the others are kept
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = run(["dvc", "repro"], repo)
    assert "training digits · tiny · linear · 2/class · seed 1" in changed.stderr
    assert "training digits · tiny · scratch" not in changed.stderr
    assert first.read_text() == before


def trained_cells(output: str) -> set[str]:
    return set(re.findall(r"training digits · tiny · (\w+) · 1/class · seed 1", output))


def test_a_cells_identity_sees_weights_content_and_training_code_but_not_analysis_code(tmp_path):
    """Derived, not listed: a weights file replaced at the same path retrains the pretrained cells; an edit of an
    analysis module retrains nothing; an edit of a training module retrains every cell."""
    weights = tiny_weights(tmp_path / "tiny.safetensors")
    params = tiny_params(weights)
    params["study"].update(regimes=["scratch", "finetune"], sizes=[1], seeds=[1])
    repo = make_study_repo(tmp_path / "repo", params)
    assert trained_cells(run(["dvc", "repro"], repo).stderr) == {"scratch", "finetune"}

    torch.manual_seed(
        1
    )  # other values at the same path: params.yaml does not change, so DVC is told to rerun
    save_file(timm.create_model("test_efficientnet").state_dict(), str(weights))
    replaced = run(["dvc", "repro", "--force", "--glob", "train@*"], repo)
    assert trained_cells(replaced.stderr) == {"finetune"}

    plots = repo / "pretraining_gap/analysis/plots.py"
    plots.write_text(plots.read_text() + "\n# an analysis-only edit\n")
    edited = run(["dvc", "repro"], repo)
    assert "Running stage 'aggregate'" in edited.stdout and "Running stage 'train" not in edited.stdout

    loop = repo / "pretraining_gap/training/loop.py"
    loop.write_text(loop.read_text() + "\n# a training edit\n")
    assert trained_cells(run(["dvc", "repro"], repo).stderr) == {"scratch", "finetune"}
