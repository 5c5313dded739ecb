"""MLflow: one experiment per study, one run per cell, one summary run; re-logging replaces, never duplicates."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from .grid import Cell
from .results import CellResult

log = logging.getLogger(__name__)


class TrackingError(RuntimeError):
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


FINAL_METRICS = (
    "test_accuracy",
    "test_loss",
    "best_val_accuracy",
    "train_seconds",
    "images_per_second",
    "steps",
    "lr",
    "C",
)


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
    when two processes run it together ('table _alembic_tmp_experiments already exists'): they take turns."""
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
            self.client.set_experiment_tag(self.experiment_id, "study_root", str(study_root()))
        self.commit = _git_commit()

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

    def log_cell(self, cell: Cell, result: CellResult, config: dict, result_file: Path) -> str:
        """One run for the cell: params, per-evaluation curves with step=, final metrics, result file.

        A failed cell's run ends FAILED with its reason in the `failure` tag.
        """
        with _store(self.uri, "write", self):
            return self._log_cell(cell, result, config, result_file)

    def _log_cell(self, cell: Cell, result: CellResult, config: dict, result_file: Path) -> str:
        from mlflow.entities import Metric, Param

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
        }
        if cell.depth is not None:
            tags["depth"] = str(cell.depth)
        history = result.history or {}
        phases = list(dict.fromkeys(history.get("phase", [])))
        if phases:  # chain-thaw: the phase order, and a `phase` metric (its index) at every evaluation
            tags["phases"] = " → ".join(phases)
        if result.status == "failed":
            tags["failure"] = result.reason
        run_id = self._create(cell.run_name, tags, result.started_ms)
        now = int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), now, step)
            for key in ("train_loss", "val_accuracy", "val_loss")
            if key in history
            for step, value in zip(history["step"], history[key])
            if value is not None
        ]
        metrics += [
            Metric("phase", phases.index(p), now, step)
            for step, p in zip(history.get("step", []), history.get("phase", []))
        ]
        metrics += [
            Metric(key, float(getattr(result, key)), now, 0)
            for key in FINAL_METRICS
            if getattr(result, key) is not None
        ]
        metrics += [
            Metric(f"transferability.{group}", t, now, 0)
            for group, t in (result.transferability or {}).items()
        ]
        params = [Param(k, v) for k, v in _flatten(config).items()]
        for i in range(0, len(metrics), 1000):  # MLflow's batch limits: 1000 metrics, 100 params
            self.client.log_batch(run_id, metrics=metrics[i : i + 1000])
        for i in range(0, len(params), 100):
            self.client.log_batch(run_id, params=params[i : i + 100])
        self.client.log_artifact(run_id, str(result_file))
        if result.traceback:
            self.client.log_text(run_id, result.traceback, "traceback.txt")
        self.client.set_terminated(run_id, result.status.upper(), result.finished_ms)
        return run_id

    def log_summary(self, name: str, metrics: dict[str, float], artifacts: list[Path]) -> str:
        """The study's summary run (figures, tables, headline numbers), replacing the previous one. A folder among
        the artifacts is logged under its own name, with its tree."""
        with _store(self.uri, "write", self):
            self._replace({"kind": "summary"})
            run_id = self._create(name, {"kind": "summary"})
            for key, value in metrics.items():
                self.client.log_metric(run_id, key, value)
            for artifact in artifacts:
                if Path(artifact).is_dir():
                    self.client.log_artifacts(run_id, str(artifact), Path(artifact).name)
                else:
                    self.client.log_artifact(run_id, str(artifact))
            self.client.set_terminated(run_id, "FINISHED")
            return run_id
