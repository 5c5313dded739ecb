"""A team's MLflow tracking server: the study logs to `MLFLOW_TRACKING_URI=http://host:port` as to its SQLite file,
and says so at once when the server does not answer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from conftest import make_study_repo, study_env, tiny_params, tiny_weights


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """A real `mlflow server` on 127.0.0.1, its backend store a SQLite database, artifacts served by it."""
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [
        Path(sys.executable).parent / "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination",
        str(tmp_path / "artifacts"),
    ]
    process = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2).close()
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.5)
    yield uri
    os.killpg(process.pid, 15)
    process.wait(timeout=30)


def repro(repo: Path, uri: str) -> subprocess.CompletedProcess:
    env = {**study_env(repo), "MLFLOW_TRACKING_URI": uri}
    return subprocess.run(["dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True)


def tiny_repo(tmp_path: Path) -> Path:
    params = tiny_params(tiny_weights(tmp_path / "tiny.safetensors"))
    params["study"].update(regimes=["scratch", "linear"], sizes=[1], seeds=[1])
    return make_study_repo(tmp_path / "repo", params)


def test_the_study_logs_to_a_tracking_server_over_http(tmp_path, server):
    repo = tiny_repo(tmp_path)
    done = repro(repo, server)
    assert done.returncode == 0, done.stderr
    client = MlflowClient(server)
    experiment = client.get_experiment_by_name("pretraining-gap")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.kind = 'cell'")
    assert sorted(r.data.tags["regime"] for r in runs) == ["linear", "scratch"]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert client.list_artifacts(runs[0].info.run_id)  # artifacts went through the server
    assert not (repo / "mlflow.db").exists()


def test_an_unreachable_server_stops_the_study_before_training(tmp_path):
    repo = tiny_repo(tmp_path)
    done = repro(repo, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    assert done.returncode != 0
    assert "cannot reach the MLflow tracking server" in done.stderr and "Traceback" not in done.stderr
    assert "training digits" not in done.stderr
    assert not (repo / "results/cells").exists() or not any((repo / "results/cells").rglob("*.json"))
