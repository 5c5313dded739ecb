"""Cells as Ray tasks on a real local Ray: the same results as the local workers, a killed worker retried, an
interrupted study resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import make_study_repo, run, study_env, tiny_params, tiny_weights, trained
from study_repo import write_params

CELLS = Path("results/cells/digits/tiny")
TRAIN = "train@digits-tiny"  # and what it needs: the analysis stages are tested elsewhere


def accuracies(repo: Path) -> dict[str, float]:
    return {
        str(f.relative_to(repo / CELLS)): json.loads(f.read_text())["test_accuracy"]
        for f in sorted((repo / CELLS).rglob("*.json"))
    }


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Path, dict]:
    """A tiny study whose data stages have run, for each test to copy."""
    base = tmp_path_factory.mktemp("cluster")
    params = tiny_params(tiny_weights(base / "tiny.safetensors"))
    params["study"].update(regimes=["scratch", "linear"])
    repo = make_study_repo(base / "repo", params)
    run(["dvc", "repro", "--glob", "features@*"], repo)
    return repo, params


def copy_with(prepared: tuple[Path, dict], dest: Path, **execution) -> Path:
    import shutil

    repo, params = prepared
    shutil.copytree(repo, dest, symlinks=True)
    write_params(dest / "params.yaml", {**params, "execution": {"backend": "ray", **execution}})
    return dest


def test_ray_gives_the_local_backends_results(prepared, tmp_path):
    local = tmp_path / "local"
    import shutil

    shutil.copytree(prepared[0], local, symlinks=True)
    params = {**prepared[1], "study": {**prepared[1]["study"], "sizes": [1]}}  # 4 cells: 2 regimes, 2 seeds
    write_params(local / "params.yaml", params)
    run(["dvc", "repro", TRAIN], local)
    on_ray = copy_with((prepared[0], params), tmp_path / "ray")
    done = run(["dvc", "repro", TRAIN], on_ray)
    assert "Ray: a local instance" in done.stderr
    assert accuracies(on_ray) == accuracies(local) and len(accuracies(local)) == 4


def ray_workers_training() -> list[int]:
    """Process ids of Ray workers running a cell (Ray names a worker after its task: `ray::_task`)."""
    listed = subprocess.run(["pgrep", "-f", "ray::_task"], capture_output=True, text=True).stdout
    return [int(pid) for pid in listed.split()]


def start(repo: Path, log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            ["dvc", "repro", TRAIN],
            cwd=repo,
            env=study_env(repo),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def wait_for(condition, study: subprocess.Popen, log: Path, what: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert study.poll() is None, f"dvc repro ended before {what}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no {what} in {seconds} s:\n{log.read_text()}"
        time.sleep(0.2)


def test_a_worker_killed_mid_cell_is_retried_and_the_study_completes(prepared, tmp_path):
    repo = copy_with(prepared, tmp_path / "repo", retries=2)
    params = json.loads(json.dumps(prepared[1]))
    params["training"].update(min_steps=100, max_steps=100)  # seconds per cell: time to kill one mid-way
    write_params(repo / "params.yaml", {**params, "execution": {"backend": "ray", "retries": 2}})
    log = tmp_path / "repro.log"
    study = start(repo, log)
    try:
        wait_for(ray_workers_training, study, log, "Ray worker training a cell")
        os.kill(ray_workers_training()[0], signal.SIGKILL)
        assert study.wait(timeout=600) == 0, log.read_text()
    finally:
        if study.poll() is None:
            os.killpg(study.pid, signal.SIGKILL)
    results = [json.loads(f.read_text()) for f in (repo / CELLS).rglob("*.json")]
    assert len(results) == 8 and all(r["status"] == "finished" for r in results)


def test_an_interrupted_study_on_ray_resumes_with_only_the_missing_cells(prepared, tmp_path):
    repo = copy_with(prepared, tmp_path / "repo")
    params = json.loads(json.dumps(prepared[1]))
    params["training"].update(min_steps=100, max_steps=100)
    params["study"]["regimes"] = ["scratch"]
    write_params(repo / "params.yaml", {**params, "execution": {"backend": "ray"}})
    log = tmp_path / "repro.log"
    study = start(repo, log)
    try:
        wait_for(lambda: any((repo / CELLS).rglob("*.json")), study, log, "finished cell")
        while study.poll() is None:
            os.killpg(study.pid, signal.SIGINT)  # Ctrl-C, repeated as a user would
            time.sleep(0.5)
    finally:
        if study.poll() is None:
            os.killpg(study.pid, signal.SIGKILL)
    kept = accuracies(repo)
    assert 1 <= len(kept) < 4
    deadline = time.monotonic() + 30  # Ray's processes take a moment to end
    while ray_workers_training() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not ray_workers_training(), "Ctrl-C left Ray tasks running"
    resumed = run(["dvc", "repro", TRAIN], repo)
    retrained = [cell for cell in trained(resumed.stderr) if cell[:3] == ("digits", "tiny", "scratch")]
    assert len(retrained) == 4 - len(kept)
    final = accuracies(repo)
    assert len(final) == 4 and all(final[name] == kept[name] for name in kept)
