"""Failure isolation, determinism and tracking trouble, on the train stage run in-process with a real MLflow."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_params, tiny_weights
from mlflow import MlflowClient

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
        return [r.model_dump(exclude_none=True) for r in execution.run(plan, params, *paths, out, tracker)]


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
    job = execution.Job(
        Cell("digits", "tiny", "finetune", 3, 1),
        config.validate(workspace["params"]),
        workspace["prepared"],
        workspace["subsets"],
        workspace["features"],
        "same",
    )
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
