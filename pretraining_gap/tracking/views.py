"""What the MLflow UI shows of a study: the experiment's description, its saved views, and the links that open them.

MLflow 3.17's UI opens an experiment on its GenAI overview: what it reads is the link's `workflowType` query
parameter (else the browser's last choice of the "GenAI / Model training" switch), not the experiment; so
`runs_url` links to the runs view with `workflowType=machine_learning` and a saved view. A saved view is an
experiment tag `mlflow.sharedViewState.<name>` holding the UI's view state as JSON, and a link opens it with
`viewStateShareKey=<name>`. `cells`: the runs table with what tells cells apart and what they gave, sorted by size as
a number (sorting flattens MLflow's nesting: the parent runs, which have no size, come last). `curves`: the parent
runs' charts, one per kind of curve with every arm's line, on a log size axis.
"""

from __future__ import annotations

import json

from .store import Experiment, ui_base

NOTE = "mlflow.note.content"  # a run's or experiment's description in the UI
VIEW_TAG = "mlflow.sharedViewState."
CELL_COLUMNS = [
    "tags.`backbone`",
    "metrics.`examples_per_class`",
    "metrics.`test_accuracy`",
    "metrics.`best_val_accuracy`",
    "params.`lr`",
    "params.`C`",
    "metrics.`best_step`",
    "metrics.`steps`",
    "metrics.`train_seconds`",
    "attributes.`Dataset`",
]
CELLS_VIEW = {
    "orderByKey": "metrics.`examples_per_class`",
    "orderByAsc": True,
    "selectedColumns": CELL_COLUMNS,
}
CURVE_CHARTS = {  # metric prefix: chart title
    "accuracy": "mean test accuracy (y) by examples per class (x: MLflow's step)",
    "gap_points": "gap to scratch in accuracy points (y) by examples per class (x: MLflow's step)",
}
DESCRIPTION = (
    "One parent run per dataset × backbone: its charts `accuracy/<arm>` (mean test accuracy over seeds) and "
    "`gap_points/<arm>` (minus scratch, in accuracy points) have the size, examples per class, as their step ("
    "`all` at its mean, rounded), so they are the study's learning curves; its description is the study's answer, "
    "its artifacts the report and the tables. Its child runs are the cells (`finetune · 5/class · seed 1`): "
    "per-evaluation `val_accuracy`, `val_loss` and `train_loss` by optimisation step, then the kept weights' "
    "`best_val_accuracy` and `test_accuracy`."
)


def experiment_tags(root: str) -> dict[str, str]:
    """The tags a study's experiment is opened with: its root folder, its kind, its description (NOTE) and the
    `cells` view (`curves` needs the metric names, set_curves_view)."""
    return {
        "study_root": root,
        # MLflow 3.x UIs before the GenAI / Model training switch open an experiment by its kind; 3.17 opens
        # by the link's workflowType (runs_url)
        "mlflow.experimentKind": "custom_model_development",
        f"{VIEW_TAG}cells": json.dumps(CELLS_VIEW),
        NOTE: DESCRIPTION,
    }


def _chart(prefix: str, title: str, keys: list[str]) -> dict:
    """One line chart of the UI's compare-runs charts: the metrics `keys` by step, on a log x axis."""
    return {
        "uuid": prefix,
        "type": "LINE",
        "displayName": title,
        "metricSectionId": "curves",
        "metricKey": keys[0],
        "selectedMetricKeys": keys,
        "xAxisKey": "step",
        "xAxisScaleType": "log",
        "scaleType": "linear",
        "selectedXAxisMetricKey": "",
        "yAxisKey": "metric",
        "yAxisExpressions": [],
        "range": {},
        "lineSmoothness": 0,
        "displayPoints": True,
        "ignoreOutliers": False,
        "useGlobalXaxisKey": False,
        "useGlobalLineSmoothing": False,
        "runsCountToCompare": 10,
        "deleted": False,
        "isGenerated": False,
    }


def curves_view(names: list[str]) -> dict:
    """The `curves` view: the parent runs alone, a chart per prefix of CURVE_CHARTS with the lines of `names`."""
    charts = [
        _chart(prefix, title, keys)
        for prefix, title in CURVE_CHARTS.items()
        if (keys := [n for n in names if n.startswith(f"{prefix}/")])
    ]
    section = {
        "uuid": "curves",
        "name": "Learning curves",
        "display": True,
        "isReordered": False,
        "deleted": False,
    }
    return {
        "searchFilter": "tags.kind = 'study'",
        "compareRunSections": [section],
        "compareRunCharts": charts,
        "isAccordionReordered": True,
    }


def set_curves_view(experiment: Experiment, names: set[str]) -> None:
    """Save the `curves` view with the lines of every curve metric in `names`."""
    experiment.client.set_experiment_tag(
        experiment.experiment_id, f"{VIEW_TAG}curves", json.dumps(curves_view(sorted(names)))
    )


def runs_url(experiment: Experiment, base: str | None = None, view: str = "cells") -> str:
    """The link that opens the experiment on its runs (not MLflow 3.17's GenAI overview) in a saved view:
    `cells` (the runs table, sorted by size) or `curves` (the parent runs' learning-curve charts). `base`: where
    the UI answers (ui_base)."""
    charts = "&compareRunsMode=CHART" if view == "curves" else ""
    return (
        f"{base or ui_base(experiment.uri)}/#/experiments/{experiment.experiment_id}/runs"
        f"?workflowType=machine_learning&viewStateShareKey={view}{charts}"
    )
