"""End to end: `dvc repro` of a tiny study in a temporary git repository with a real SQLite MLflow store."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from PIL import Image

from conftest import make_study_repo, run, tiny_params, tiny_weights, trained

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
    page = (tiny_study / "reports/index.html").read_text()
    assert "<strong>finetune</strong>: Pretraining" in page and page.count("data:image/png;base64,") >= 4
    assert "validation labels" in page and "Glossary" in page


def test_dvc_plots_show_writes_a_page_that_needs_no_network(tiny_study):
    """Plain `dvc plots show` (.dvc/config names the page): Vega inside the page, no script, style or image from
    elsewhere, and the learning curves of every arm in one chart on a log size axis."""
    plotted = run(["dvc", "plots", "show"], tiny_study)
    assert "failed" not in plotted.stdout + plotted.stderr
    page = (tiny_study / "dvc_plots/index.html").read_text()
    assert not re.findall(
        r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page
    )  # nothing loaded from elsewhere
    assert "cdn.jsdelivr.net" not in page and "vegaEmbed=" in page  # vega-embed's own code, not a CDN's
    (spec,) = [json.loads(s) for s in re.findall(r"var spec = (\{.*?\});\n", page, re.S) if '"facet"' in s]
    assert {row["arm"] for row in spec["data"]["values"]} == set(REGIMES)
    assert spec["spec"]["encoding"]["x"]["scale"]["type"] == "log"


def test_mlflow_holds_a_parent_run_per_study_with_the_curves_and_its_cells_as_children(tiny_study):
    client, runs = cell_runs(tiny_study)
    experiment = client.get_experiment_by_name("pretraining-gap")
    parents = client.search_runs([experiment.experiment_id], filter_string="tags.kind = 'study'")
    assert len(parents) == 1 and parents[0].info.run_name == "digits · tiny"
    parent = parents[0].info.run_id
    assert len(runs) == 12 and all(r.data.tags["mlflow.parentRunId"] == parent for r in runs)
    # 1 parent + 12 cells, nothing else: no look-alike leftovers, no run of the older flat layout
    assert len(client.search_runs([experiment.experiment_id])) == 13

    # the parent's curves: one point per size, step = examples per class, the tables' values
    accuracy = pd.read_csv(tiny_study / "results/tables/accuracy.csv")
    for arm in REGIMES:
        history = client.get_metric_history(parent, f"accuracy/{arm}")
        assert [m.step for m in history] == [1, 3]
        expected = accuracy[accuracy.arm == arm].sort_values("examples_per_class")["mean"]
        assert [m.value for m in history] == pytest.approx(list(expected))
        assert len({m.timestamp for m in history}) == 1
    gap = [m.value for m in client.get_metric_history(parent, "gap_points/finetune")]
    accuracies = {
        arm: [m.value for m in client.get_metric_history(parent, f"accuracy/{arm}")] for arm in REGIMES
    }
    assert gap == pytest.approx(
        [100 * (f - s) for f, s in zip(accuracies["finetune"], accuracies["scratch"])]
    )
    artifacts = {a.path for a in client.list_artifacts(parent)}
    assert {"index.html", "cells.csv", "metrics", "tables", "digits_tiny_accuracy.png"} <= artifacts
    assert "finetune.gap.1" in parents[0].data.metrics  # the headline numbers of metrics/digits/tiny/

    # a child: named by what differs, its size a number (sorts 2 before 10), lr and C chosen as params
    names = {r.info.run_name for r in runs}
    assert "finetune · 3/class · seed 2" in names and len(names) == 12
    run_ = next(r for r in runs if r.info.run_name == "finetune · 3/class · seed 2")
    assert run_.data.tags["regime"] == "finetune" and run_.data.tags["examples_per_class"] == "3"
    assert run_.data.tags["DVC_STAGE"] == "train@digits-tiny"
    assert run_.data.params["regime.lr"] == "[0.001]" and run_.data.params["lr"] == "0.001"
    assert run_.data.metrics["examples_per_class"] == 3 and "lr" not in run_.data.metrics
    assert 0 <= run_.data.metrics["test_accuracy"] <= 1
    probe = next(r for r in runs if r.data.tags["regime"] == "linear")
    assert float(probe.data.params["C"]) > 0 and "C" not in probe.data.metrics
    # per-evaluation curves by step, each point at its own evaluation's time, within the run
    history = client.get_metric_history(run_.info.run_id, "val_accuracy")
    assert len(history) >= 2 and [m.step for m in history] == sorted(m.step for m in history)
    times = [m.timestamp for m in history]
    assert times == sorted(times) and times[-1] > times[0]
    assert run_.info.start_time <= times[0] and times[-1] <= run_.info.end_time
    # the prepared data as the run's dataset input
    (data,) = run_.inputs.dataset_inputs
    assert data.dataset.name == "digits" and len(data.dataset.digest) == 16
    assert json.loads(data.dataset.source) == {"uri": "data/prepared/digits.npz"}

    # the links open the runs, not MLflow 3.17's GenAI overview; the saved views they name exist
    tags = experiment.tags
    for view in ("cells", "curves"):
        assert json.loads(tags[f"mlflow.sharedViewState.{view}"])
    curves = json.loads(tags["mlflow.sharedViewState.curves"])
    assert curves["compareRunCharts"][0]["selectedMetricKeys"] == [
        f"accuracy/{arm}" for arm in sorted(REGIMES)
    ]
    report = run(["dvc", "repro", "--force", "-s", "report"], tiny_study).stderr
    assert f"/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning" in report

    # the report again: a new parent replaces the old one and adopts the cells, nothing is duplicated
    (again,) = client.search_runs([experiment.experiment_id], filter_string="tags.kind = 'study'")
    assert (
        again.info.run_id != parent
        and len(client.get_metric_history(again.info.run_id, "accuracy/scratch")) == 2
    )
    _, runs = cell_runs(tiny_study)
    assert len(runs) == 12 and {r.data.tags["mlflow.parentRunId"] for r in runs} == {again.info.run_id}


def test_rerun_trains_nothing_and_new_size_or_setting_trains_only_its_cells(tmp_path):
    params = tiny_params(tiny_weights(tmp_path / "tiny.safetensors"))
    params["study"].update(regimes=["scratch", "linear"], sizes=[1], seeds=[1])
    repo = make_study_repo(tmp_path / "repo", params)
    run(["dvc", "repro"], repo)
    first = repo / "results/cells/digits/tiny/scratch/0001-per-class_seed-1.json"
    before = first.read_text()

    again = run(["dvc", "repro"], repo)
    assert again.stdout.count("Running stage") == 1  # 'fingerprint' alone: it always runs, nothing follows

    params["study"].update(sizes=[1, 2])
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    grown = run(["dvc", "repro"], repo)
    assert "\r" not in grown.stdout + grown.stderr  # not a terminal: no bars, one line per trained cell
    assert sorted(trained(grown.stderr)) == [
        ("digits", "tiny", arm, "2", "1") for arm in ("linear", "scratch")
    ]
    assert first.read_text() == before
    _, runs = cell_runs(repo)
    assert sorted(r.info.run_name for r in runs) == sorted(
        f"{regime} · {n}/class · seed 1" for regime in ("scratch", "linear") for n in (1, 2)
    )

    params["regimes"]["linear"]["C"] = [1]  # one regime's setting: its cells retrain, the others are kept
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = run(["dvc", "repro"], repo)
    assert {cell[2] for cell in trained(changed.stderr)} == {"linear"}
    assert first.read_text() == before
