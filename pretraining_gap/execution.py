"""Running a train stage's plan: cells go to workers, results come back to the driver, which alone writes each
result file and logs it to MLflow as soon as it arrives.

A cell's error never ends the study: a diverging run is a failed result (kept: the same inputs fail the same
way), and an unexpected error is a failed result with its traceback (retried by the next run). The stage fails
at the end, naming those cells, when any failed unexpectedly or could not be logged.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import parallel, progress, results
from .config import Params
from .data.prepared import Prepared
from .grid import Cell, StageError
from .planning import Plan
from .results import CellResult
from .tracking import TrackingError

log = logging.getLogger(__name__)


class StudyError(StageError):
    """Cells that could not give a result or could not be logged; their files say why."""


@dataclass(frozen=True)
class Job:
    """One cell to train: its options, its training subset, and the stage's data files (a local worker loads them
    once; a Ray task gets the arrays from the object store instead)."""

    cell: Cell
    params: Params
    fingerprint: str
    train_idx: np.ndarray
    prepared: Path
    features: Path


@lru_cache(maxsize=1)
def _loaded(prepared: Path, features: Path) -> tuple[Prepared, np.ndarray]:
    return Prepared.load(prepared), np.load(features)


def train_cell(job: Job, data: Prepared | None = None, features: np.ndarray | None = None) -> CellResult:
    """One cell's result; an error inside the cell becomes a failed result, never the end of the study."""
    from .training import device, loop, regimes  # torch and timm, in the worker

    cell, train_idx = job.cell, job.train_idx
    log.debug("training %s", cell.run_name)
    started = time.time()
    try:
        if data is None:
            data, features = _loaded(job.prepared, job.features)
        inputs = regimes.CellInputs.of(job.params, cell, data, train_idx, features, device.choose())
        outcome, _ = regimes.runner(cell.regime)(inputs)
        fields = {
            "status": "finished",
            "train_images": len(train_idx),
            "classes": inputs.num_classes,
            "machine": device.machine(inputs.device),
            **outcome.model_dump(exclude_none=True),
        }
    except loop.Diverged as error:
        fields = {"status": "failed", "reason": str(error)}
    except Exception as error:  # noqa: BLE001 - any error of one cell is that cell's result
        fields = {
            "status": "failed",
            "reason": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(),
        }
    return CellResult.of(
        cell,
        **fields,
        fingerprint=job.fingerprint,
        started_ms=int(started * 1000),
        finished_ms=int(time.time() * 1000),
    )


def workers() -> int:
    from .training import device

    return parallel.workers(device.choose().type)


def packing(params: Params) -> str:
    """How the local backend packs the cells on this machine, in words: the device and its precision, the worker
    processes (one per CPU core, or one on a GPU) and the settings of a cell trained as one fused model."""
    from .training import device

    chosen, count = device.choose(), workers()
    threads = ", 1 thread each" if chosen.type == "cpu" else ""  # on a GPU: Ray's `gpus` uses every one
    return (
        f"{device.describe(chosen)}: {count} worker process{'es' * (count > 1)}{threads}; a cell's settings "
        f"trained as one fused model, {params.training.fused_members} at a time"
    )


def start_workers() -> None:
    """Start the workers' process server now, importing the training code (torch, timm: seconds) once, so that
    its start-up overlaps the caller's MLflow set-up."""
    parallel.start_server(workers(), "pretraining_gap.training.regimes")


def _prepared_data(plan: Plan, params: Params, dataset: str, prepared: Path) -> dict:
    """The prepared data as MLflow's dataset input of every cell: its content digest, file and settings."""
    return {
        "name": dataset,
        "digest": next(iter(plan.identities.values()))["data_digest"],
        "source": json.dumps({"uri": str(prepared)}),
        "profile": json.dumps(params.datasets[dataset].model_dump(mode="json")),
    }


def lost(job: Job, reason: str) -> CellResult:
    """The failed result of a cell whose worker was lost on every try (retried by the next run)."""
    now = int(time.time() * 1000)
    return CellResult.of(
        job.cell,
        status="failed",
        reason=reason,
        traceback=reason,
        fingerprint=job.fingerprint,
        started_ms=now,
        finished_ms=now,
    )


def dispatch(jobs: list[Job], params: Params, prepared: Path, features: Path):
    """(job, result) as each cell finishes, from local workers or Ray tasks (`execution.backend`)."""
    if params.execution.backend == "ray":
        from . import cluster

        shared = (Prepared.load(prepared), np.load(features))
        return cluster.run(train_cell, jobs, params.execution, shared, lost, lambda job: job.cell.run_name)
    log.info("cells on %s", packing(params))
    return parallel.run(train_cell, jobs, workers())


def plan_jobs(plan: Plan, params: Params, prepared: Path, features: Path) -> list[Job]:
    """A job per cell the plan trains, in its order (longest first)."""
    return [
        Job(cell, params, plan.fingerprint(cell), plan.train_idx[cell], prepared, features)
        for cell in plan.to_train
    ]


def run(plan: Plan, params: Params, prepared: Path, features: Path, out: Path, tracker) -> list[CellResult]:
    """Train the plan's cells in a pool of workers; write and log each result as it arrives; log kept cells
    whose MLflow run is missing or stale. Returns every cell's result, in grid order."""
    results.remove_partial(out)
    dataset, backbone = next(iter(plan.identities)).dataset, next(iter(plan.identities)).backbone
    logged = tracker.logged_fingerprints(dataset, backbone)
    data = _prepared_data(plan, params, dataset, prepared)
    jobs = plan_jobs(plan, params, prepared, features)
    done, unlogged, broken = {}, [], []

    def log_to_mlflow(cell: Cell, result: CellResult, file: Path) -> None:
        if logged.get(cell.key) == result.fingerprint:
            return
        try:
            tracker.log_cell(cell, result, plan.identities[cell], file, data)
        except TrackingError as error:  # the result file is kept all the same
            log.error("%s: result kept in %s but not logged to MLflow: %s", cell.run_name, file, error)
            unlogged.append(cell)

    for cell, result in plan.kept:
        log_to_mlflow(cell, result, results.path(out, cell))
        done[cell] = result
    work = {cell: plan.work.get(cell, 0) for cell in plan.to_train}
    with progress.study(f"{dataset} · {backbone}", len(jobs), sum(work.values())) as study:
        for job, result in dispatch(jobs, params, prepared, features):
            cell, file = job.cell, results.path(out, job.cell)
            result = result.model_copy(update={"identity_digests": plan.parts(cell)})
            results.write(file, result)
            left = study.finished(work[cell])  # on a terminal the bar shows it: ""
            seconds = (result.finished_ms - result.started_ms) / 1000
            which = f"[{study.done_cells}/{len(jobs)}] {cell.run_name}"
            if result.status == "finished":
                log.info("%s: test accuracy %.3f (%.0f s)%s", which, result.test_accuracy, seconds, left)
            else:
                log.warning("%s failed: %s%s", which, result.reason, left)
                if result.traceback:
                    broken.append(cell)
            log_to_mlflow(cell, result, file)
            done[cell] = result
    if broken:
        raise StudyError(
            f"{len(broken)} cells failed with an unexpected error: "
            f"{', '.join(c.run_name for c in broken)}. Their result files in {out} and their MLflow runs "
            "hold the reason and traceback; the next `dvc repro` retries them"
        )
    if unlogged:
        raise TrackingError(
            f"{len(unlogged)} cells trained and kept in {out} but not logged to MLflow "
            f"({tracker.uri}). Fix the store, then run `dvc repro` again: it logs them without "
            "retraining"
        )
    return [done[cell] for cell in plan.identities]
