"""Failure isolation, determinism and tracking trouble, on the train stage run in-process with a real MLflow."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from conftest import tiny_params, tiny_weights
from pretraining_gap import config, execution, planning, results, tracking
from pretraining_gap.data import datasets, subsets
from pretraining_gap.data.prepared import POOL, Prepared
from pretraining_gap.grid import Cell
from pretraining_gap.training import features


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict:
    """Prepared tiny digits and their subsets, as the prepare and subsample stages write them."""
    base = tmp_path_factory.mktemp("workspace")
    params = tiny_params(tiny_weights(base / "tiny.safetensors"))
    params["study"].update(regimes=["scratch"], sizes=[1, 3], seeds=[1])
    typed = config.validate(params)
    data = datasets.prepare("digits", typed.datasets["digits"], typed.study.sizes)
    data.save(base / "digits.npz")
    orderings = {
        seed: subsets.class_orderings(data.labels, data.part(POOL), seed) for seed in typed.study.seeds
    }
    subsets.save(base / "subsets.json", orderings)
    np.save(
        base / "features.npy", features.extract(typed.backbones["tiny"], data.images, torch.device("cpu"))
    )
    return {
        "params": params,
        "prepared": base / "digits.npz",
        "subsets": base / "subsets.json",
        "features": base / "features.npy",
    }


@contextmanager
def store_uri(store: Path):
    """MLFLOW_TRACKING_URI pointing to `store` while the block runs, as a user would set it."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}"
    try:
        yield
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI")
        if before is not None:
            os.environ["MLFLOW_TRACKING_URI"] = before


def train(workspace: dict, raw: dict, out: Path, store: Path, tracker_class=tracking.Tracker) -> list[dict]:
    """The train stage in-process: plan, then run, against the store at `store`; the results as dicts."""
    params = config.validate(raw)
    paths = workspace["prepared"], workspace["subsets"], workspace["features"]
    with store_uri(store):
        tracker = tracker_class(params.study.name)
        plan = planning.plan(params, "digits", "tiny", planning.Inputs.load(params, "tiny", *paths), out)
        done = execution.run(plan, params, workspace["prepared"], workspace["features"], out, tracker)
        return [r.model_dump(exclude_none=True) for r in done]


def cell_runs(store: Path) -> list:
    client = MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("pretraining-gap")
    return client.search_runs([experiment.experiment_id], filter_string="tags.kind = 'cell'")


def snapshot(out: Path) -> dict[str, tuple[str, int]]:
    return {f.name: (f.read_text(), f.stat().st_mtime_ns) for f in sorted(out.glob("*.json"))}


def test_a_diverging_cell_is_recorded_as_failed_and_the_others_finish(workspace, tmp_path):
    params = copy.deepcopy(workspace["params"])
    params["study"]["regimes"] = ["scratch", "finetune"]
    params["regimes"]["scratch"]["lr"] = 1e6  # the tiny model's loss becomes NaN within a few steps
    out = tmp_path / "cells"
    store = tmp_path / "mlflow.db"
    done = train(workspace, params, out, store)
    assert [r["regime"] for r in done] == ["scratch"] * 2 + ["finetune"] * 2
    failed, finished = done[:2], done[2:]

    assert [r["status"] for r in failed] == ["failed", "failed"]
    for result in failed:
        assert "test_accuracy" not in result and "training loss became nan" in result["reason"].lower()
        assert (
            json.loads(
                results.path(
                    out, Cell("digits", "tiny", "scratch", result["examples_per_class"], 1)
                ).read_text()
            )
            == result
        )
    assert [r["status"] for r in finished] == ["finished", "finished"]
    assert all(0 <= r["test_accuracy"] <= 1 for r in finished)

    runs = {(r.data.tags["regime"], r.data.tags["examples_per_class"]): r for r in cell_runs(store)}
    assert len(runs) == 4
    for n in ("1", "3"):
        assert runs["scratch", n].info.status == "FAILED"
        assert "training loss became" in runs["scratch", n].data.tags["failure"]
        assert (
            runs["finetune", n].info.status == "FINISHED" and "failure" not in runs["finetune", n].data.tags
        )

    # same config and code: the failure is kept (it would fail the same way), nothing retrains or re-logs
    before = snapshot(out / "scratch")
    assert train(workspace, params, out, store) == done
    assert snapshot(out / "scratch") == before
    assert {r.info.run_id for r in cell_runs(store)} == {r.info.run_id for r in runs.values()}

    # a changed learning rate retries the failed cells
    params["regimes"]["scratch"]["lr"] = 0.01
    assert [r["status"] for r in train(workspace, params, out, store)] == ["finished"] * 4
    statuses = sorted((r.data.tags["regime"], r.info.status) for r in cell_runs(store))
    assert statuses == [("finetune", "FINISHED")] * 2 + [("scratch", "FINISHED")] * 2


TIMING = ("train_seconds", "images_per_second", "started_ms", "finished_ms")


def without_timing(result: dict) -> dict:
    """A result without its wall-clock fields (the evaluations' times too)."""
    history = {k: v for k, v in result["history"].items() if k != "time_ms"}
    return {**{k: v for k, v in result.items() if k not in TIMING}, "history": history}


def test_the_same_cell_trained_twice_gives_bit_identical_results(workspace):
    """CPU kernels are deterministic here; the cell seeds its own generators, so global RNG use does not matter."""
    cell = Cell("digits", "tiny", "finetune", 3, 1)
    train_idx = subsets.subset(subsets.load(workspace["subsets"], cell.seed), cell.examples_per_class)
    params = config.validate(workspace["params"])
    job = execution.Job(cell, params, "same", train_idx, workspace["prepared"], workspace["features"])
    first = execution.train_cell(job).model_dump()
    np.random.seed(123), torch.manual_seed(123), torch.rand(1000), np.random.rand(1000)
    second = execution.train_cell(job).model_dump()
    assert first["status"] == "finished" and len(first["history"]["train_loss"]) >= 2
    assert without_timing(first) == without_timing(second)


ORDERING = """
import json, sys
import numpy as np
from pretraining_gap.data import subsets
from pretraining_gap.data.prepared import POOL, Prepared
data = Prepared.load(sys.argv[1])
orderings = subsets.class_orderings(data.labels, data.part(POOL), int(sys.argv[2]))
print(json.dumps({c: o.tolist() for c, o in orderings.items()}))
"""


def subset_orderings(prepared: Path, seed: int, hash_seed: str) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-c", ORDERING, str(prepared), str(seed)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_subsets_depend_on_the_seed_only(workspace):
    """Same seed: same orderings in this process and in fresh ones with other hash seeds; another seed differs."""
    data = Prepared.load(workspace["prepared"])
    np.random.seed(7)
    here = {str(c): o.tolist() for c, o in subsets.class_orderings(data.labels, data.part(POOL), 1).items()}
    assert (
        here
        == subset_orderings(workspace["prepared"], 1, "1")
        == subset_orderings(workspace["prepared"], 1, "2")
    )
    assert here != subset_orderings(workspace["prepared"], 2, "1")
    assert sorted(sum(here.values(), [])) == sorted(data.part(POOL).tolist())


def test_a_store_that_cannot_be_written_stops_the_study_before_training(workspace, tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(tracking.TrackingError, match="MLFLOW_TRACKING_URI") as error:
        train(workspace, workspace["params"], tmp_path / "cells", not_a_folder / "mlflow.db")
    assert str(not_a_folder / "mlflow.db") in str(error.value)
    assert not (tmp_path / "cells").exists()


def test_results_outlive_a_store_that_breaks_mid_study_and_the_next_run_logs_them(workspace, tmp_path):
    store, out = tmp_path / "store", tmp_path / "cells"

    class StoreBreaksDuringTraining(tracking.Tracker):
        def log_cell(self, *args):
            if store.is_dir():  # the store's folder becomes a file: every write to it fails
                store.rename(tmp_path / "away")
                store.write_text("")
            return super().log_cell(*args)

    with pytest.raises(tracking.TrackingError, match="2 cells trained and kept .* not logged to MLflow"):
        train(workspace, workspace["params"], out, store / "mlflow.db", StoreBreaksDuringTraining)
    kept = snapshot(out / "scratch")
    assert len(kept) == 2 and all(json.loads(text)["status"] == "finished" for text, _ in kept.values())

    store.unlink()
    (tmp_path / "away").rename(store)
    train(workspace, workspace["params"], out, store / "mlflow.db")
    assert snapshot(out / "scratch") == kept  # nothing retrained
    runs = cell_runs(store / "mlflow.db")
    assert sorted(r.data.tags["examples_per_class"] for r in runs) == ["1", "3"]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all(r.info.artifact_uri.startswith((store / "mlruns").as_uri()) for r in runs)


def test_leftovers_of_a_killed_process_are_replaced(workspace, tmp_path):
    """A run left RUNNING by a process killed while logging, and a half-written result file, do not survive."""
    out, store = tmp_path / "cells", tmp_path / "mlflow.db"
    train(workspace, workspace["params"], out, store)
    client = MlflowClient(f"sqlite:///{store}")
    complete = {r.data.tags["cell"]: r for r in cell_runs(store)}
    stuck = complete["digits/tiny/scratch/1/1"]
    client.delete_run(stuck.info.run_id)  # as if the process died between creating the run and finishing it
    client.create_run(stuck.info.experiment_id, tags=stuck.data.tags, run_name=stuck.info.run_name)
    (out / "scratch" / "tmpkilled.tmp").write_text('{"half": ')

    train(workspace, workspace["params"], out, store)
    runs = cell_runs(store)
    assert sorted(r.data.tags["cell"] for r in runs) == sorted(complete)
    assert all(r.info.status == "FINISHED" for r in runs)
    assert not list(out.rglob("*.tmp"))


def test_a_cell_that_raises_is_a_failed_result_the_others_train_and_the_stage_names_it(workspace, tmp_path):
    """A subsets file whose 3-per-class subset holds an index beyond the prepared images: the size-3 cells raise
    IndexError inside their regime; the size-1 cells train, before and after them."""
    orderings = json.loads(workspace["subsets"].read_text())
    orderings["1"]["0"][2] = 10**6  # class 0's third image: in the 3-subset, not in the 1-subset
    broken = {**workspace, "subsets": tmp_path / "subsets.json"}
    broken["subsets"].write_text(json.dumps(orderings))
    params = copy.deepcopy(workspace["params"])
    params["study"]["regimes"] = ["linear", "scratch"]  # grid order: linear 1, linear 3, scratch 1, scratch 3
    out, store = tmp_path / "cells", tmp_path / "mlflow.db"
    with pytest.raises(execution.StudyError) as error:
        train(broken, params, out, store)
    failing = {f"digits · tiny · {regime} · 3/class · seed 1" for regime in ("linear", "scratch")}
    named = str(error.value).removeprefix("2 cells failed with an unexpected error: ").split(". Their")[0]
    assert set(named.split(", ")) == failing
    runs = {(r.data.tags["regime"], r.data.tags["examples_per_class"]): r for r in cell_runs(store)}
    client = MlflowClient(f"sqlite:///{store}")
    for regime in ("linear", "scratch"):
        kept = json.loads(results.path(out, Cell("digits", "tiny", regime, 1, 1)).read_text())
        assert kept["status"] == "finished" and runs[regime, "1"].info.status == "FINISHED"
        failed = json.loads(results.path(out, Cell("digits", "tiny", regime, 3, 1)).read_text())
        assert failed["status"] == "failed" and failed["reason"].startswith(
            "IndexError: index 1000000 is out"
        )
        assert "Traceback (most recent call last)" in failed["traceback"]
        run = runs[regime, "3"]
        assert run.info.status == "FAILED" and run.data.tags["failure"] == failed["reason"]
        logged = Path(client.download_artifacts(run.info.run_id, "traceback.txt", str(tmp_path)))
        assert logged.read_text() == failed["traceback"]


def test_a_deleted_experiment_says_to_restore_it_and_the_command_given_restores_it(tmp_path):
    """Deleted in the UI between two runs of the study, or during one: the message gives a command that works."""
    store, artifact = tmp_path / "mlflow.db", tmp_path / "summary.txt"
    artifact.write_text("figures")
    with store_uri(store):
        tracker = tracking.Tracker("pretraining-gap")
        MlflowClient(tracker.uri).delete_experiment(tracker.experiment_id)
        with pytest.raises(tracking.TrackingError, match="was deleted, in the MLflow UI"):
            tracker.log_study("digits", "tiny", {"accuracy/finetune": {1: 0.5}}, {"gap": 0.1}, [artifact])
        with pytest.raises(tracking.TrackingError) as error:
            tracking.Tracker("pretraining-gap")
    message = str(error.value)
    assert "make it writable" not in message and "or set study.name in params.yaml to another name" in message
    command = re.search(
        r"`(MLFLOW_TRACKING_URI=\S+ mlflow experiments restore --experiment-id \d+)`", message
    )[1]
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    subprocess.run(command, shell=True, env={**os.environ, "PATH": path}, check=True, capture_output=True)
    with store_uri(store):
        tracking.Tracker("pretraining-gap").log_study("digits", "tiny", {}, {"gap": 0.1}, [artifact])


def logged_cell(store: Path, folder: Path, size: int) -> str:
    """One cell's run logged by a Tracker of the store, its result file kept in `folder`; the run's id."""
    cell = Cell("digits", "tiny", "linear", size, 1)
    result = results.CellResult.of(
        cell, status="finished", test_accuracy=0.5, fingerprint="f", started_ms=0, finished_ms=1
    )
    file = folder / f"cell-{size}.json"
    results.write(file, result)
    with store_uri(store):
        return tracking.Tracker("pretraining-gap").log_cell(cell, result, {"lr": 0.1}, file)


def test_a_study_folder_moved_or_copied_keeps_its_artifacts_beside_its_store(tmp_path):
    """MLflow keeps absolute artifact locations: after `mv`, runs would write into the old path."""
    old, moved, copied = tmp_path / "study", tmp_path / "moved", tmp_path / "copied"
    old.mkdir()
    first = logged_cell(old / "mlflow.db", old, 1)
    shutil.move(old, moved)
    second = logged_cell(moved / "mlflow.db", moved, 2)
    assert not old.exists()  # nothing written to the old path
    client = MlflowClient(f"sqlite:///{moved / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("pretraining-gap")
    assert experiment.artifact_location == (moved / "mlruns").as_uri()
    for run_id, size in ((first, 1), (second, 2)):
        assert client.get_run(run_id).info.artifact_uri.startswith((moved / "mlruns").as_uri() + "/")
        downloaded = client.download_artifacts(run_id, f"cell-{size}.json", str(tmp_path))
        assert json.loads(Path(downloaded).read_text())["examples_per_class"] == size

    shutil.copytree(moved, copied)  # a copy writes into its own folder; the original is left as it is
    logged_cell(copied / "mlflow.db", copied, 3)
    assert len(list((copied / "mlruns").iterdir())) == 3 and len(list((moved / "mlruns").iterdir())) == 2
    assert client.get_experiment_by_name("pretraining-gap").artifact_location == (moved / "mlruns").as_uri()
