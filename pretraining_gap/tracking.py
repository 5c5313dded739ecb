"""MLflow: one experiment per study; per dataset × backbone a parent run that holds the study's curves, with one
child run per cell; re-logging replaces, never duplicates.

The parent run (`digits · efficientnet_lite0`) carries the mean test accuracy of every arm and its gap to scratch
as metric histories whose step is the size (examples per class), `accuracy/<arm>` and `gap_points/<arm>`, so that
MLflow's own line charts draw the learning curves; its children are named by what differs between them
(`finetune · 5/class · seed 1`) and carry `examples_per_class` as a metric, so the table sorts sizes as numbers.

MLflow 3.17's UI opens an experiment on its GenAI overview: what it reads is the link's `workflowType` query
parameter (else the browser's last choice of the "GenAI / Model training" switch), not the experiment; so
`runs_url` links to the runs view with `workflowType=machine_learning` and a saved view of sensible columns.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from .config import REGIMES
from .grid import Cell, StageError
from .results import CellResult

log = logging.getLogger(__name__)


class TrackingError(StageError):
    """The MLflow store could not be read or written."""


@contextmanager
def _store(uri: str, doing: str, tracker: Tracker | None = None):
    """Turn the store's many error types (MLflow, SQLAlchemy, OS) into one TrackingError naming the fix: the
    tracker's experiment was deleted, or the store cannot be written."""
    try:
        yield
    except TrackingError:
        raise
    except Exception as error:  # noqa: BLE001 - any failure of the store means the same to the study
        if tracker is not None and tracker.deleted():
            raise _deleted(tracker.name, tracker.experiment_id, uri) from error
        raise TrackingError(
            f"cannot {doing} the MLflow store {uri}: {error}. Fix: make it writable, or point "
            "MLFLOW_TRACKING_URI to a store you can write (unset, it is sqlite:///<repo>/mlflow.db)"
        ) from error


# a cell's final numbers (step 0); the chosen lr / C are params, the per-evaluation curves are histories
FINAL_METRICS = (
    "test_accuracy",
    "test_loss",
    "best_val_accuracy",
    "steps",
    "best_step",
    "budget_steps",
    "train_seconds",
    "images_per_second",
)
NOTE = "mlflow.note.content"  # the experiment's description in the UI
# chosen on validation: params (each regime's own result fields, config.Regime.chosen)
CHOSEN_PARAMS = ("kept_run", *dict.fromkeys(field for regime in REGIMES.values() for field in regime.chosen))
CURVES = ("train_loss", "val_accuracy", "val_loss")  # per evaluation, step = optimisation step
# Saved views (experiment tags mlflow.sharedViewState.<name>) that the links open. `cells`: the runs table with
# what tells cells apart and what they gave, sorted by size as a number (sorting flattens MLflow's nesting: the
# parent runs, which have no size, come last). `curves`: the parent runs' charts, one per kind of curve with every
# arm's line, on a log size axis.
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


def _curves_view(names: list[str]) -> dict:
    """The `curves` view: the parent runs alone, a chart per prefix of CURVE_CHARTS with the lines of `names`."""
    charts = [
        {
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
        for prefix, title in CURVE_CHARTS.items()
        if (keys := [n for n in names if n.startswith(f"{prefix}/")])
    ]
    return {
        "searchFilter": "tags.kind = 'study'",
        "compareRunSections": [
            {
                "uuid": "curves",
                "name": "Learning curves",
                "display": True,
                "isReordered": False,
                "deleted": False,
            }
        ],
        "compareRunCharts": charts,
        "isAccordionReordered": True,
    }


def _reachable(uri: str) -> None:
    """A tracking server answers its health check within seconds, or the study stops before training (MLflow's
    own client would retry for minutes)."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.request

    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=10).close()
    except OSError as error:
        raise TrackingError(
            f"cannot reach the MLflow tracking server {uri} ({error}). Fix: start it (`mlflow server "
            "--backend-store-uri sqlite:///mlflow.db --host 0.0.0.0 --port 5000` on the server), correct "
            "MLFLOW_TRACKING_URI, or unset it to log to sqlite:///<repo>/mlflow.db"
        ) from None


def study_root() -> Path:
    """The repository the study lives in, also when `dvc exp run --temp/--queue` runs it in .dvc/tmp/exps/…"""
    root = Path(os.environ.get("DVC_ROOT", ".")).resolve()
    return Path(*root.parts[: root.parts.index(".dvc")]) if ".dvc" in root.parts else root


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{study_root() / 'mlflow.db'}"


def _sqlite_file(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")).resolve() if uri.startswith("sqlite:///") else None


def _artifact_location(uri: str) -> str | None:
    """Artifacts next to a SQLite store rather than in the working folder (a `dvc exp` run's is temporary)."""
    db = _sqlite_file(uri)
    return (db.parent / "mlruns").as_uri() if db else None  # a tracking server decides itself


def ui_base(uri: str) -> str:
    """Where the UI of the store `uri` answers: the tracking server itself, or `mlflow ui`'s default address."""
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"


def ui_command(uri: str) -> list[str]:
    """The command that serves the UI of the store `uri` (none for a tracking server: it is its own UI)."""
    return [] if uri.startswith(("http://", "https://")) else ["mlflow", "ui", "--backend-store-uri", uri]


def _deleted(name: str, experiment_id: str, uri: str) -> TrackingError:
    return TrackingError(
        f"the MLflow experiment {name!r} (study.name) was deleted, in the MLflow UI or with `mlflow experiments "
        "delete`; the store keeps it, and its name, until it is restored or garbage-collected. Fix: restore it "
        f"with `MLFLOW_TRACKING_URI={uri} mlflow experiments restore --experiment-id {experiment_id}`, or set "
        "study.name in params.yaml to another name"
    )


def _relocate(experiment, uri: str) -> None:
    """Runs keep their artifacts beside a SQLite store wherever its folder goes. MLflow records an experiment's
    artifact location, and each run's, as absolute paths: a store moved or copied with its project folder would
    still write into the old folder. Such an experiment (its artifacts in an `mlruns` folder elsewhere) and its runs
    are pointed to the `mlruns` folder beside the store, with MLflow's own database models (it has no API for it)."""
    beside, old = _artifact_location(uri), experiment.artifact_location
    if beside is None or old == beside or not (old.startswith("file:") and old.endswith("/mlruns")):
        return
    from mlflow.store.tracking.dbmodels.models import SqlExperiment, SqlRun
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(uri, beside)
    number = int(experiment.experiment_id)
    with store.ManagedSessionMaker(read_only=False) as session:
        session.query(SqlExperiment).filter(SqlExperiment.experiment_id == number).update(
            {SqlExperiment.artifact_location: beside}
        )
        for run in session.query(SqlRun).filter(SqlRun.experiment_id == number):
            if run.artifact_uri and run.artifact_uri.startswith(f"{old}/"):
                run.artifact_uri = beside + run.artifact_uri[len(old) :]
    log.info(
        "MLflow store moved from %s: its experiment and runs keep their artifacts in %s now", old, beside
    )


@contextmanager
def _one_opener(uri: str):
    """Parallel `dvc exp` workers open one SQLite store at once, and MLflow's set-up of a new store file fails
    when two processes run it together ('table _alembic_tmp_experiments already exists'): they take turns. The
    same lock makes a study's parent run once, when two train stages ask for it together."""
    db = _sqlite_file(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(db.with_name(f"{db.name}.lock")):
        yield


def _git_commit() -> str | None:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=study_root(), capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def _flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


def curves(tables: Path) -> dict[tuple[str, str], dict[str, dict[int, float]]]:
    """Per dataset × backbone, its parent run's metric histories, read from the analysis tables:
    `accuracy/<arm>`, the mean test accuracy over seeds (a fraction: accuracy.csv's `mean`), and `gap_points/<arm>`,
    the arm minus scratch in accuracy points (gap.csv's fraction `points`, `gap` in the older layout, times 100);
    each maps a size, examples per class, to its value. A size that is no number ("all") cannot be a step."""
    found: dict[tuple[str, str], dict[str, dict[int, float]]] = {}
    for table, name, scale in (("accuracy", "accuracy", 1), ("gap", "gap_points", 100)):
        file = Path(tables) / f"{table}.csv"
        if not file.exists():
            continue
        with file.open(newline="") as f:
            for row in csv.DictReader(f):
                value = row.get("mean") if table == "accuracy" else row.get("points", row.get("gap"))
                if value and row["examples_per_class"].isdigit():
                    group = found.setdefault((row["dataset"], row["backbone"]), {})
                    by_size = group.setdefault(f"{name}/{row['arm']}", {})
                    by_size[int(row["examples_per_class"])] = float(value) * scale
    return found


def child_name(cell: Cell) -> str:
    """A cell's run name under its study's parent run: what differs between cells, first."""
    return f"{cell.arm} · {cell.examples_per_class}/class · seed {cell.seed}"


def study_name(dataset: str, backbone: str) -> str:
    return f"{dataset} · {backbone}"


class Tracker:
    """The study's MLflow experiment. Opening it writes to the store, so a store that cannot be written
    stops the study before any training, with a TrackingError naming MLFLOW_TRACKING_URI."""

    def __init__(self, experiment: str):
        import mlflow
        from mlflow import MlflowClient

        self.uri, self.name = tracking_uri(), experiment
        _reachable(self.uri)
        with _store(self.uri, "open"), _one_opener(self.uri):
            mlflow.set_tracking_uri(self.uri)
            self.client = MlflowClient(self.uri)
            self.experiment_id = self._experiment(experiment)
            present = self.client.get_experiment(self.experiment_id).tags
            for key, value in self._experiment_tags().items():
                if key != NOTE or key not in present:  # the description is the user's once it exists
                    self.client.set_experiment_tag(self.experiment_id, key, value)
        self.commit = _git_commit()
        self._parents: dict[tuple[str, str], str] = {}

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found and found.lifecycle_stage == "deleted":
            raise _deleted(name, found.experiment_id, self.uri)
        if found:
            _relocate(found, self.uri)
            return found.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=_artifact_location(self.uri))
        except Exception:  # noqa: BLE001 - a parallel experiment created it first
            return self.client.get_experiment_by_name(name).experiment_id

    def deleted(self) -> bool:
        """Whether the study's experiment is deleted now (a person may delete it in the UI during a study)."""
        try:
            return self.client.get_experiment(self.experiment_id).lifecycle_stage == "deleted"
        except Exception:  # noqa: BLE001 - the store itself is broken: not a deleted experiment
            return False

    def _experiment_tags(self) -> dict[str, str]:
        return {
            "study_root": str(study_root()),
            # MLflow 3.x UIs before the GenAI / Model training switch open an experiment by its kind; 3.17 opens
            # by the link's workflowType (runs_url)
            "mlflow.experimentKind": "custom_model_development",
            "mlflow.sharedViewState.cells": json.dumps(CELLS_VIEW),
            NOTE: (
                "One parent run per dataset × backbone: its charts `accuracy/<arm>` (mean test accuracy over "
                "seeds) and `gap_points/<arm>` (minus scratch, in accuracy points) have the size, examples per "
                "class, as their step, so they are the study's learning curves. Its child runs are the cells "
                "(`finetune · 5/class · seed 1`): per-evaluation `val_accuracy`, `val_loss` and `train_loss` by "
                "optimisation step, then the kept weights' `best_val_accuracy` and `test_accuracy`."
            ),
        }

    def runs_url(self, base: str | None = None, view: str = "cells") -> str:
        """The link that opens the experiment on its runs (not MLflow 3.17's GenAI overview) in a saved view:
        `cells` (the runs table, sorted by size) or `curves` (the parent runs' learning-curve charts). `base`: where
        the UI answers (ui_base)."""
        charts = "&compareRunsMode=CHART" if view == "curves" else ""
        return (
            f"{base or ui_base(self.uri)}/#/experiments/{self.experiment_id}/runs"
            f"?workflowType=machine_learning&viewStateShareKey={view}{charts}"
        )

    def _runs(self, tags: dict[str, str]) -> list:
        query = " and ".join(f"tags.{k} = '{v}'" for k, v in tags.items())
        return self.client.search_runs([self.experiment_id], filter_string=query, max_results=50000)

    def logged_fingerprints(self, dataset: str, backbone: str) -> dict[str, str]:
        """Cell key to the fingerprint of its run, for the cells of one dataset × backbone."""
        with _store(self.uri, "read", self):
            runs = self._runs({"kind": "cell", "dataset": dataset, "backbone": backbone})
        # a run left RUNNING by a killed process is incomplete: it does not count, and logging replaces it
        return {
            run.data.tags["cell"]: run.data.tags.get("fingerprint")
            for run in runs
            if run.info.status in ("FINISHED", "FAILED")
        }

    def _replace(self, tags: dict[str, str]) -> None:
        for run in self._runs(tags):
            self.client.delete_run(run.info.run_id)

    def _create(self, name: str, tags: dict, start_ms: int | None = None):
        tags = {
            **tags,
            "DVC_STAGE": os.environ.get("DVC_STAGE", ""),
            "mlflow.source.git.commit": self.commit or "",
        }
        return self.client.create_run(
            self.experiment_id, start_time=start_ms, tags=tags, run_name=name
        ).info.run_id

    def _parent(self, dataset: str, backbone: str) -> str:
        """The study's parent run for dataset × backbone: the one there is, else a new one (its summary comes with
        the report stage)."""
        if (dataset, backbone) not in self._parents:
            with _one_opener(self.uri):
                found = self._runs({"kind": "study", "dataset": dataset, "backbone": backbone})
                if found:
                    run_id = min(found, key=lambda r: r.info.start_time).info.run_id
                else:
                    run_id = self._create(
                        study_name(dataset, backbone),
                        {"kind": "study", "dataset": dataset, "backbone": backbone},
                    )
                    self.client.set_terminated(run_id, "FINISHED")
            self._parents[dataset, backbone] = run_id
        return self._parents[dataset, backbone]

    def log_cell(
        self, cell: Cell, result: CellResult, config: dict, result_file: Path, data: dict | None = None
    ) -> str:
        """One child run for the cell under its study's parent run: params (its identity and what was chosen on
        validation), per-evaluation curves by step at the evaluations' own times, final metrics, the result file
        and the prepared data as the run's dataset input.

        `data`: name, digest, source (a JSON string) and profile of the prepared data, or None. A failed cell's
        run ends FAILED with its reason in the `failure` tag.
        """
        with _store(self.uri, "write", self):
            return self._log_cell(cell, result, config, result_file, data)

    def _log_cell(
        self, cell: Cell, result: CellResult, config: dict, result_file: Path, data: dict | None
    ) -> str:
        from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param

        self._replace({"kind": "cell", "cell": cell.key})
        tags = {
            "kind": "cell",
            "cell": cell.key,
            "dataset": cell.dataset,
            "backbone": cell.backbone,
            "regime": cell.regime,
            "examples_per_class": str(cell.examples_per_class),
            "seed": str(cell.seed),
            "fingerprint": result.fingerprint,
            "mlflow.parentRunId": self._parent(cell.dataset, cell.backbone),
        }
        if cell.depth is not None:
            tags["depth"] = str(cell.depth)
        history = result.history or {}
        phases = list(dict.fromkeys(history.get("phase", [])))
        if phases:  # chain-thaw: the phase order, and a `phase` metric (its index) at every evaluation
            tags["phases"] = " → ".join(phases)
        if result.status == "failed":
            tags["failure"] = result.reason
        run_id = self._create(child_name(cell), tags, result.started_ms)
        end = result.finished_ms
        # each evaluation at the time it was made (results of older code lack it: then the cell's end)
        times = history.get("time_ms") or [end] * len(history.get("step", []))
        metrics = [
            Metric(key, float(value), at, step)
            for key in CURVES
            if key in history
            for step, value, at in zip(history["step"], history[key], times)
            if value is not None
            and math.isfinite(value)  # no training loss before the first step (NaN; null)
        ]
        metrics += [
            Metric("phase", phases.index(p), at, step)
            for step, p, at in zip(history.get("step", []), history.get("phase", []), times)
        ]
        finals = {key: getattr(result, key) for key in FINAL_METRICS}
        if isinstance(cell.examples_per_class, int):  # a number, so the runs table sorts 2 before 10
            finals["examples_per_class"] = cell.examples_per_class
        metrics += [Metric(key, float(value), end, 0) for key, value in finals.items() if value is not None]
        metrics += [
            Metric(f"transferability/{layer}", t, end, 0)
            for layer, t in (result.transferability or {}).items()
        ]
        chosen = {key: getattr(result, key, None) for key in CHOSEN_PARAMS}
        params = [Param(k, v) for k, v in _flatten(config).items()]
        params += [
            Param(k, f"{v:g}" if isinstance(v, float) else str(v)) for k, v in chosen.items() if v is not None
        ]
        for i in range(0, len(metrics), 1000):  # MLflow's batch limits: 1000 metrics, 100 params
            self.client.log_batch(run_id, metrics=metrics[i : i + 1000])
        for i in range(0, len(params), 100):
            self.client.log_batch(run_id, params=params[i : i + 100])
        if data:
            dataset = Dataset(
                data["name"], data["digest"], "local", data["source"], profile=data.get("profile")
            )
            self.client.log_inputs(
                run_id, [DatasetInput(dataset, [InputTag("mlflow.data.context", "train")])]
            )
        self.client.log_artifact(run_id, str(result_file))
        if result.traceback:
            self.client.log_text(run_id, result.traceback, "traceback.txt")
        self.client.set_terminated(run_id, result.status.upper(), end)
        return run_id

    def log_study(
        self,
        dataset: str,
        backbone: str,
        curves: dict[str, dict[int, float]],
        scalars: dict[str, float],
        artifacts: list[Path],
    ) -> str:
        """The parent run of dataset × backbone with its summary, replacing the one before: `curves` maps a metric
        name (`accuracy/finetune`) to its value per size, logged as a history with step = size; `scalars` are
        logged once; `artifacts` are files or folders. The study's cell runs become its children; the previous
        parent runs are deleted."""
        with _store(self.uri, "write", self):
            return self._log_study(dataset, backbone, curves, scalars, artifacts)

    def _log_study(self, dataset, backbone, curves, scalars, artifacts) -> str:
        from mlflow.entities import Metric

        which = {"dataset": dataset, "backbone": backbone}
        cells = self._runs({"kind": "cell", **which})
        start = min((r.info.start_time for r in cells), default=None)
        run_id = self._create(study_name(dataset, backbone), {"kind": "study", **which}, start)
        now = int(time.time() * 1000)
        metrics = [
            Metric(name, float(value), now, size)
            for name, by_size in curves.items()
            for size, value in by_size.items()
        ]
        metrics += [Metric(name, float(value), now, 0) for name, value in scalars.items()]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[i : i + 1000])
        for artifact in map(Path, artifacts):  # a folder keeps its name and tree
            if artifact.is_dir():
                self.client.log_artifacts(run_id, str(artifact), artifact.name)
            else:
                self.client.log_artifact(run_id, str(artifact))
        for cell in cells:
            self.client.set_tag(cell.info.run_id, "mlflow.parentRunId", run_id)
        for old in self._runs({"kind": "study", **which}) + self._runs(
            {"kind": "summary"}
        ):  # and the old layout's
            if old.info.run_id != run_id:
                self.client.delete_run(old.info.run_id)
        end = max((r.info.end_time or 0 for r in cells), default=now)
        self.client.set_terminated(run_id, "FINISHED", end)
        self._parents[dataset, backbone] = run_id
        names = sorted(
            {key for run in self._runs({"kind": "study"}) for key in run.data.metrics} | set(curves)
        )
        self.client.set_experiment_tag(
            self.experiment_id, "mlflow.sharedViewState.curves", json.dumps(_curves_view(names))
        )
        return run_id
