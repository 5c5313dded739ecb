"""Two queued `dvc exp` experiments run by two workers at once, logging to the study's one SQLite store."""

from __future__ import annotations

import time

import pytest
from mlflow import MlflowClient

from conftest import make_study_repo, run, tiny_params, tiny_weights


@pytest.mark.slow  # queue workers start celery and every stage imports torch: minutes on a 2-core machine
def test_two_parallel_experiments_record_all_their_runs(tmp_path, monkeypatch):
    for var in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(var, "test")
    for var in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(var, "test@example.com")
    params = tiny_params(tiny_weights(tmp_path / "tiny.safetensors"))
    params["study"].update(regimes=["scratch", "linear"], sizes=[1], seeds=[1])
    repo = make_study_repo(tmp_path / "repo", params)
    (repo / ".gitignore").write_text("/mlflow.db\n/mlflow.db.lock\n/mlruns/\n__pycache__/\n")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny study"], repo)

    for seeds in ("[2]", "[3]"):
        run(["dvc", "exp", "run", "--queue", "-S", f"study.seeds={seeds}"], repo)
    run(["dvc", "queue", "start", "-j", "2"], repo)
    deadline = time.monotonic() + 600
    while (status := run(["dvc", "queue", "status"], repo).stdout).count("Success") + status.count(
        "Failed"
    ) < 2:
        assert time.monotonic() < deadline, status
        time.sleep(2)
    assert status.count("Success") == 2, status + "".join(
        run(["dvc", "queue", "logs", line.split()[0]], repo, check=False).stdout
        for line in status.splitlines()
        if "Failed" in line
    )

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("pretraining-gap")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.kind = 'cell'")
    assert sorted(r.data.tags["cell"] for r in runs) == sorted(
        f"digits/tiny/{regime}/1/{seed}" for regime in ("scratch", "linear") for seed in (2, 3)
    )
    assert all(r.info.status == "FINISHED" for r in runs)
