"""A `dvc repro` killed mid-study (SIGINT, SIGKILL) resumes: finished cells are kept, the rest train once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from conftest import make_study_repo, run, study_env, tiny_params, tiny_weights, trained

CELLS = 4  # sizes [1, 3] x seeds [1, 2], one regime
GROUP = Path("results/cells/digits/tiny/scratch")


@pytest.fixture(scope="module")
def prepared_repo(tmp_path_factory) -> Path:
    """A tiny study whose data stages have run; each test copies it and runs the training from there."""
    base = tmp_path_factory.mktemp("interrupted")
    params = tiny_params(tiny_weights(base / "tiny.safetensors"))
    params["study"].update(regimes=["scratch"])
    # 300 steps (scratch's 2x in the tiny params), a few seconds a cell: slow enough to kill mid-study
    params["training"].update(min_steps=150, max_steps=150)
    repo = make_study_repo(base / "repo", params)
    run(["dvc", "repro", "--glob", "features@*"], repo)
    return repo


def snapshot(group: Path) -> dict[str, tuple[str, int]]:
    return {f.name: (f.read_text(), f.stat().st_mtime_ns) for f in sorted(group.glob("*.json"))}


def kill_during_training(repo: Path, sig: signal.Signals, log: Path) -> None:
    """Start `dvc repro`, wait for its first finished cell, then send `sig` to DVC and its stage process."""
    with log.open("w") as out:
        # Ctrl-C's default action, as in a terminal: a runner started in the background (`cmd &`) ignores
        # SIGINT, and its children would inherit that
        study = subprocess.Popen(
            ["dvc", "repro"],
            cwd=repo,
            env=study_env(repo),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 120
        while not any((repo / GROUP).glob("*.json")):
            assert study.poll() is None, f"dvc repro ended before any cell finished:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no cell finished in 120 s:\n{log.read_text()}"
            time.sleep(0.1)
        # Repeated, as a user presses Ctrl-C again: one SIGINT landing inside MLflow's database calls can be
        # swallowed there, and the study would run on to the end.
        while study.poll() is None and time.monotonic() < deadline:
            os.killpg(study.pid, sig)
            time.sleep(0.5)
    finally:
        if study.poll() is None:
            os.killpg(study.pid, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_a_killed_study_resumes_with_only_the_unfinished_cells(prepared_repo, tmp_path, sig):
    repo = tmp_path / "repo"
    shutil.copytree(prepared_repo, repo, symlinks=True)
    kill_during_training(repo, sig, tmp_path / "killed.log")
    kept = snapshot(repo / GROUP)
    assert 1 <= len(kept) < CELLS, f"the kill should land mid-study, {len(kept)} cells had finished"

    resumed = run(["dvc", "repro"], repo)
    if sig == signal.SIGKILL:  # DVC could not release its locks; it clears those of dead processes itself
        assert "had been killed. Auto removed it from the lock file" in resumed.stderr
    retrained = [cell for cell in trained(resumed.stderr) if cell[:3] == ("digits", "tiny", "scratch")]
    assert len(retrained) == CELLS - len(kept)  # each unfinished cell once, no finished one again
    final = snapshot(repo / GROUP)
    assert len(final) == CELLS and all(final[name] == kept[name] for name in kept)
    assert all(json.loads(text)["status"] == "finished" for text, _ in final.values())
    assert not list((repo / "results").rglob("*.tmp"))

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("pretraining-gap")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.kind = 'cell'", run_view_type=3)
    assert sorted(r.data.tags["cell"] for r in runs if r.info.lifecycle_stage == "active") == sorted(
        f"digits/tiny/scratch/{n}/{s}" for n in (1, 3) for s in (1, 2)
    )
    assert all(r.info.status == "FINISHED" for r in runs if r.info.lifecycle_stage == "active")
    # up to date: only the fingerprint stage, which always runs (and changes nothing when nothing changed)
    assert run(["dvc", "status"], repo).stdout == "fingerprint:\n\talways changed\n"
