"""The study in MLflow: the parent run holds the learning curves, the headline numbers, the report and the tables,
whatever the sizes (the whole pool, `all`, included), on a real `dvc repro` and its real SQLite store; and the one
private use of MLflow, pinned."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from mlflow import MlflowClient

from conftest import make_study_repo, run, tiny_params, tiny_weights
from pretraining_gap.tracking import store


@pytest.fixture(scope="module")
def all_study(tmp_path_factory):
    """A tiny study whose sizes are 1 per class and the whole pool (`all`), reproduced once."""
    base = tmp_path_factory.mktemp("all")
    params = tiny_params(tiny_weights(base / "tiny.safetensors"))
    params["study"].update(regimes=["scratch", "finetune"], sizes=[1, "all"], seeds=[1])
    repo = make_study_repo(base / "repo", params)
    run(["dvc", "repro"], repo)
    return repo


def parent_run(repo):
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("pretraining-gap")
    (parent,) = client.search_runs([experiment.experiment_id], filter_string="tags.kind = 'study'")
    return client, experiment, parent


def test_the_parent_run_holds_the_learning_curves_with_the_whole_pool_as_its_mean_size(all_study):
    client, _, parent = parent_run(all_study)
    assert parent.info.run_name == "digits · tiny" and parent.info.status == "FINISHED"
    cells = pd.read_csv(all_study / "results/cells.csv")
    whole = cells[cells.examples_per_class != 1].iloc[0]
    pool = whole.train_images / whole.classes  # the whole pool's mean examples per class: not a whole number
    assert not pool.is_integer()
    accuracy = pd.read_csv(all_study / "results/tables/accuracy.csv").set_index(["arm", "examples_per_class"])
    for arm in ("scratch", "finetune"):
        history = {m.step: m.value for m in client.get_metric_history(parent.info.run_id, f"accuracy/{arm}")}
        assert history == pytest.approx(
            {1: accuracy.loc[(arm, 1), "mean"], round(pool): accuracy.loc[(arm, pool), "mean"]}
        )
    gap = {m.step: m.value for m in client.get_metric_history(parent.info.run_id, "gap_points/finetune")}
    assert sorted(gap) == [1, round(pool)]
    assert gap[1] == pytest.approx(
        100 * (accuracy.loc[("finetune", 1), "mean"] - accuracy.loc[("scratch", 1), "mean"])
    )


def test_the_parent_run_holds_the_headline_numbers_the_answer_the_report_and_the_tables(all_study):
    client, _, parent = parent_run(all_study)
    finetune = json.loads((all_study / "metrics/digits/tiny/finetune.json").read_text())
    assert parent.data.metrics["finetune.acc.1"] == finetune["acc"]["1.0"]
    assert parent.data.tags["finetune.crossover"] == finetune["crossover"]
    assert parent.data.tags["finetune.cells"] == "2/2"
    assert "finetune" in parent.data.tags["mlflow.note.content"]  # the answer's sentences
    assert json.loads(parent.data.params["study.sizes"].replace("'", '"')) == [1, "all"]
    logged = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"index.html", "cells.csv", "tables", "metrics"} <= logged
    tables = {a.path for a in client.list_artifacts(parent.info.run_id, "tables")}
    assert {"tables/accuracy.csv", "tables/gap.csv"} <= tables


def test_the_cells_are_the_parent_runs_children_and_the_curves_view_draws_every_arm(all_study):
    client, experiment, parent = parent_run(all_study)
    cells = client.search_runs([experiment.experiment_id], filter_string="tags.kind = 'cell'")
    assert len(cells) == 4 and {c.data.tags["mlflow.parentRunId"] for c in cells} == {parent.info.run_id}
    whole = [c for c in cells if c.data.tags["examples_per_class"] == "all"]
    assert all(not c.data.metrics["examples_per_class"].is_integer() for c in whole)  # sorts after 1
    view = json.loads(experiment.tags["mlflow.sharedViewState.curves"])
    keys = {chart["uuid"]: set(chart["selectedMetricKeys"]) for chart in view["compareRunCharts"]}
    assert keys == {
        "accuracy": {"accuracy/scratch", "accuracy/finetune"},
        "gap_points": {"gap_points/finetune"},
    }
    assert "mlflow.sharedViewState.cells" in experiment.tags


def test_repoint_artifacts_relies_on_mlflow_private_models(tmp_path):
    """store.repoint_artifacts writes MLflow's tables through its private models (it has no API to move an
    artifact location). If this fails after an MLflow upgrade, adapt repoint_artifacts to the new models."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    old, new = (tmp_path / "old/mlruns").as_uri(), (tmp_path / "mlruns").as_uri()
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("moved", artifact_location=old)
    inside = client.create_run(experiment_id).info.run_id
    before = client.get_run(inside).info.artifact_uri
    assert before.startswith(f"{old}/")
    assert store.moved_from(old, new) and not store.moved_from(new, new)

    store.repoint_artifacts(uri, experiment_id, old, new)
    assert client.get_experiment(experiment_id).artifact_location == new
    assert client.get_run(inside).info.artifact_uri == new + before.removeprefix(old)
