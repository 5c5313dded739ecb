"""The MLflow store a study logs to, and its experiment: where the store is, opening it (one process at a time for a
SQLite file), one error type for its failures, and the experiment's runs created and found by tag.

The store is `MLFLOW_TRACKING_URI` if set, else `sqlite:///<study root>/mlflow.db`, its artifacts in `mlruns/`
beside it.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from ..grid import StageError

log = logging.getLogger(__name__)


class TrackingError(StageError):
    """The MLflow store could not be read or written."""


def study_root() -> Path:
    """The repository the study lives in, also when `dvc exp run --temp/--queue` runs it in .dvc/tmp/exps/…"""
    root = Path(os.environ.get("DVC_ROOT", ".")).resolve()
    return Path(*root.parts[: root.parts.index(".dvc")]) if ".dvc" in root.parts else root


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{study_root() / 'mlflow.db'}"


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def sqlite_file(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")).resolve() if uri.startswith("sqlite:///") else None


def artifact_location(uri: str) -> str | None:
    """Artifacts next to a SQLite store rather than in the working folder (a `dvc exp` run's is temporary)."""
    db = sqlite_file(uri)
    return (db.parent / "mlruns").as_uri() if db else None  # a tracking server decides itself


def ui_base(uri: str) -> str:
    """Where the UI of the store `uri` answers: the tracking server itself, or `mlflow ui`'s default address."""
    return uri.rstrip("/") if is_server(uri) else "http://127.0.0.1:5000"


def ui_command(uri: str) -> list[str]:
    """The command that serves the UI of the store `uri` (none for a tracking server: it is its own UI)."""
    return [] if is_server(uri) else ["mlflow", "ui", "--backend-store-uri", uri]


def reachable(uri: str) -> None:
    """A tracking server answers its health check within seconds, or the study stops before training (MLflow's
    own client would retry for minutes)."""
    if not is_server(uri):
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


def deleted_error(name: str, experiment_id: str, uri: str) -> TrackingError:
    return TrackingError(
        f"the MLflow experiment {name!r} (study.name) was deleted, in the MLflow UI or with `mlflow experiments "
        "delete`; the store keeps it, and its name, until it is restored or garbage-collected. Fix: restore it "
        f"with `MLFLOW_TRACKING_URI={uri} mlflow experiments restore --experiment-id {experiment_id}`, or set "
        "study.name in params.yaml to another name"
    )


@contextmanager
def one_opener(uri: str) -> Iterator[None]:
    """Parallel `dvc exp` workers open one SQLite store at once, and MLflow's set-up of a new store file fails
    when two processes run it together ('table _alembic_tmp_experiments already exists'): they take turns. The
    same lock makes a study's parent run once, when two train stages ask for it together."""
    db = sqlite_file(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(db.with_name(f"{db.name}.lock")):
        yield


def _git_commit() -> str | None:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=study_root(), capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


@dataclass
class Experiment:
    """The study's experiment in the store at `uri`; `client` is MLflow's, `commit` the study's git commit."""

    uri: str
    name: str
    experiment_id: str
    client: object  # mlflow.MlflowClient, imported late: a stage's --help never imports MLflow
    commit: str | None

    def deleted(self) -> bool:
        """Whether the experiment is deleted now (a person may delete it in the UI during a study)."""
        try:
            return self.client.get_experiment(self.experiment_id).lifecycle_stage == "deleted"
        except Exception:  # noqa: BLE001 - the store itself is broken: not a deleted experiment
            return False

    @contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Turn the store's many error types (MLflow, SQLAlchemy, OS) into one TrackingError naming the fix: the
        experiment was deleted, or the store cannot be written."""
        with store_errors(self.uri, doing, self):
            yield

    def runs(self, tags: dict[str, str]) -> list:
        """The experiment's live runs whose tags have these values."""
        query = " and ".join(f"tags.{k} = '{v}'" for k, v in tags.items())
        return self.client.search_runs([self.experiment_id], filter_string=query, max_results=50000)

    def create_run(self, name: str, tags: dict[str, str], start_ms: int | None = None) -> str:
        """A new run with `tags`, the DVC stage and the git commit; its id."""
        tags = {
            **tags,
            "DVC_STAGE": os.environ.get("DVC_STAGE", ""),
            "mlflow.source.git.commit": self.commit or "",
        }
        run = self.client.create_run(self.experiment_id, start_time=start_ms, tags=tags, run_name=name)
        return run.info.run_id


@contextmanager
def store_errors(uri: str, doing: str, experiment: Experiment | None = None) -> Iterator[None]:
    """Experiment.errors, also before there is an experiment."""
    try:
        yield
    except TrackingError:
        raise
    except Exception as error:  # noqa: BLE001 - any failure of the store means the same to the study
        if experiment is not None and experiment.deleted():
            raise deleted_error(experiment.name, experiment.experiment_id, uri) from error
        raise TrackingError(
            f"cannot {doing} the MLflow store {uri}: {error}. Fix: make it writable, or point "
            "MLFLOW_TRACKING_URI to a store you can write (unset, it is sqlite:///<repo>/mlflow.db)"
        ) from error


def open_experiment(name: str, tags: dict[str, str], keep: tuple[str, ...] = ()) -> Experiment:
    """The experiment `name` of the study's store (tracking_uri), made if missing, with `tags` set; a tag named in
    `keep` is set only if the experiment has none (a person may have edited it). Opening writes to the store, so
    one that cannot be written stops the study before any training, with a TrackingError naming
    MLFLOW_TRACKING_URI; a deleted experiment raises one that says how to restore it."""
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri()
    reachable(uri)
    with store_errors(uri, "open"), one_opener(uri):
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(uri)
        experiment_id = _experiment_id(client, name, uri)
        present = client.get_experiment(experiment_id).tags
        for key, value in tags.items():
            if key not in keep or key not in present:
                client.set_experiment_tag(experiment_id, key, value)
    return Experiment(uri, name, experiment_id, client, _git_commit())


def _experiment_id(client, name: str, uri: str) -> str:
    found = client.get_experiment_by_name(name)
    if found and found.lifecycle_stage == "deleted":
        raise deleted_error(name, found.experiment_id, uri)
    if found:
        beside = artifact_location(uri)
        if moved_from(found.artifact_location, beside):
            repoint_artifacts(uri, found.experiment_id, found.artifact_location, beside)
            log.info(
                "MLflow store moved from %s: its experiment and runs keep their artifacts in %s now",
                found.artifact_location,
                beside,
            )
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location(uri))
    except Exception:  # noqa: BLE001 - a parallel experiment created it first
        return client.get_experiment_by_name(name).experiment_id


def moved_from(location: str, beside: str | None) -> bool:
    """Whether an experiment's artifact location is an `mlruns` folder other than the one beside its SQLite store:
    the store was moved or copied with its project folder, and MLflow recorded the old absolute path."""
    return (
        beside is not None
        and location != beside
        and location.startswith("file:")
        and location.endswith("/mlruns")
    )


def repoint_artifacts(uri: str, experiment_id: str, old: str, new: str) -> None:
    """Point the experiment's artifact location, and each of its runs' that lies under `old`, to `new`.

    MLflow has no API to change an artifact location, so this is the one place that writes its tables through its
    private database models (`SqlExperiment.artifact_location`, `SqlRun.artifact_uri`, and
    `SqlAlchemyStore.ManagedSessionMaker`), as of mlflow 3.17.2. tests/test_tracking.py's
    `test_repoint_artifacts_relies_on_mlflow_private_models` pins that behaviour: after an MLflow upgrade it fails
    by name if these models change."""
    from mlflow.store.tracking.dbmodels.models import SqlExperiment, SqlRun
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    number = int(experiment_id)
    with SqlAlchemyStore(uri, new).ManagedSessionMaker(read_only=False) as session:
        session.query(SqlExperiment).filter(SqlExperiment.experiment_id == number).update(
            {SqlExperiment.artifact_location: new}
        )
        for run in session.query(SqlRun).filter(SqlRun.experiment_id == number):
            if run.artifact_uri and run.artifact_uri.startswith(f"{old}/"):
                run.artifact_uri = new + run.artifact_uri[len(old) :]
