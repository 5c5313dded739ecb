"""The study in MLflow: the parent run holds the learning curves, the headline numbers, the report and the tables,
whatever the sizes (the whole pool, `all`, included), on a real `dvc repro` and its real SQLite store; and the one
private use of MLflow, pinned."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from conftest import make_study_repo, run, study_env, tiny_params, tiny_weights
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


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HEADLESS = [
    *("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"),
    *("--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1600,1000"),
    "--virtual-time-budget=60000",  # the UI's requests answered and drawn before the page is read
]


@contextmanager
def serving_ui(repo: Path):
    """`pretraining-gap ui` serving the study's store on a free port: the two links it prints."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    command = [
        sys.executable,
        "-c",
        "from pretraining_gap.commands import main; main()",
        "ui",
        "--port",
        str(port),
    ]
    server = subprocess.Popen(
        command, cwd=repo, env=study_env(repo), stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        printed = [server.stdout.readline() for _ in range(2)]  # "cells:  <link>", "curves: <link>"
        links = dict(line.split(maxsplit=1) for line in printed if line)
        assert set(links) == {"cells:", "curves:"}, printed
        for _ in range(120):  # the server's start: seconds
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
                break
            except OSError:
                time.sleep(1)
        yield {name.rstrip(":"): link.strip() for name, link in links.items()}
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # mlflow ui and its worker, the session this test started
        server.wait(timeout=60)


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium: the saved views open in a real browser only where one "
    "is installed (Debian: apt-get install -y chromium)",
)
def test_both_links_that_make_ui_prints_open_their_saved_views_in_a_real_browser(all_study, tmp_path):
    """The page each link opens, as headless Chromium renders it: the view's runs, no 'share key ... does not
    exist'. A person can look at the screenshots in the test's tmp_path."""
    expected = {
        "cells": ["finetune · 1/class · seed 1", "scratch · all/class · seed 1"],
        "curves": ["Learning curves"],
    }
    with serving_ui(all_study) as links:
        assert set(links) == set(expected)
        for view, link in links.items():
            browser = [CHROMIUM, *HEADLESS, f"--user-data-dir={tmp_path / view}"]
            page = subprocess.run([*browser, "--dump-dom", link], capture_output=True, text=True, timeout=180)
            subprocess.run(
                [*browser, f"--screenshot={tmp_path / view}.png", link], capture_output=True, timeout=180
            )
            assert "Error loading shared view state" not in page.stdout, view
            for text in ["digits · tiny", *expected[view]]:
                assert text in page.stdout, (view, text)
