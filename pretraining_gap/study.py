"""Running the grid: one train stage (dataset × backbone) over every regime, size and seed, resumable."""

from __future__ import annotations

import itertools
import logging
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import params as study_params
from . import parallel, regimes, results, subsets, training
from .datasets import Prepared
from .params import Cell
from .tracking import TrackingError

log = logging.getLogger(__name__)


def cell_config(params: dict, cell: Cell, data_digest: str) -> dict:
    """Everything a cell's result depends on; logged as its MLflow params and hashed into its fingerprint.

    `data_digest` covers the prepared images themselves: images replaced in a user's folder retrain the cells.
    """
    config = {"dataset": params["datasets"][cell.dataset], "data_digest": data_digest,
              "backbone": params["backbones"][cell.backbone],
              "regime": params["regimes"][cell.regime], "examples_per_class": cell.examples_per_class,
              "seed": cell.seed}
    if cell.depth is not None:
        config["depth"] = cell.depth
    if cell.regime != "linear":  # the one regime without a step budget
        config["training"] = params["training"]
    if cell.regime == "scratch":
        config["backbone"] = {k: v for k, v in config["backbone"].items() if k != "weights"}
    return config


def train_cell(cell: Cell, params: dict, data: Prepared, subsets_file: Path, features: np.ndarray | None,
               fingerprint: str) -> dict:
    """One cell's result; a run whose loss stops being finite is a failed result, not the end of the study."""
    log.info("training %s", cell.run_name)
    train_idx = subsets.subset(subsets.load(subsets_file, cell.seed), cell.examples_per_class)
    started = time.time()
    try:
        result, _ = regimes.RUNNERS[cell.regime](cell, params, data, train_idx, features)
        outcome = {"status": "finished", **result}
    except training.Diverged as error:
        outcome = {"status": "failed", "reason": str(error)}
    return {"dataset": cell.dataset, "backbone": cell.backbone, "regime": cell.regime,
            "examples_per_class": cell.examples_per_class, "seed": cell.seed, "depth": cell.depth, **outcome,
            "fingerprint": fingerprint, "started_ms": int(started * 1000), "finished_ms": int(time.time() * 1000)}


@lru_cache(maxsize=1)
def _inputs(prepared: Path, features: Path) -> tuple[Prepared, np.ndarray]:
    """The stage's data, loaded once per process (each worker loads its own copy)."""
    return Prepared.load(prepared), np.load(features)


def _train_job(job: tuple) -> dict:
    """train_cell in a worker process: a module-level function, so that it can be sent there."""
    cell, params, prepared, subsets_file, features, fingerprint = job
    data, feats = _inputs(prepared, features)
    return train_cell(cell, params, data, subsets_file, feats, fingerprint)


def start_workers() -> None:
    """Start the workers' process server now, so that its imports overlap the caller's MLflow set-up."""
    parallel.start_server(parallel.workers(training.DEVICE.type), __name__)


def train(params: dict, dataset: str, backbone: str, prepared: Path, subsets_file: Path, features: Path, out: Path,
          tracker) -> list[dict]:
    """Train every cell of dataset × backbone (each regime, size and seed) without a current result in `out`; log
    each to MLflow once.

    One process and one pool of workers for all regimes: on a CPU the cells train side by side, one
    single-threaded worker per core (at 32 px two 1-thread cells train 1.3-1.6x the images per second of one
    2-thread cell, tools/speed_levers.py parallel), the longest first so that no core idles through the last.
    Each result is written and logged as soon as it arrives. A cell whose MLflow logging fails keeps its result
    file; the rest still train, then TrackingError makes the stage fail, and the next run logs the missing runs
    without retraining.
    """
    data, _ = _inputs(prepared, features)
    digest = data.digest()
    if "depth" in params["study"]["regimes"]:
        regimes.check_depth(params, backbone)
    results.remove_partial(out)
    logged = tracker.logged_fingerprints(dataset, backbone)
    grid, kept, jobs = study_params.cells(params, dataset, backbone), [], []
    for cell in grid:
        fingerprint = results.fingerprint(cell_config(params, cell, digest))
        result = results.current(results.path(out, cell), fingerprint)
        if result is None:
            jobs.append((cell, params, prepared, subsets_file, features, fingerprint))
        else:
            log.info("kept %s (%s earlier, same config and code)", cell.run_name, result["status"])
            kept.append((cell, result))
    log.info("%s · %s: %d cells to train, %d kept", dataset, backbone, len(jobs), len(kept))
    jobs.sort(key=lambda job: -regimes.steps_at_most(job[0], params, job[0].examples_per_class * len(data.class_names)))
    trained = ((job[0], result, True) for job, result in parallel.run(_train_job, jobs, parallel.workers(training.DEVICE.type)))
    done, unlogged = {}, []
    for cell, result, new in tqdm(itertools.chain(((c, r, False) for c, r in kept), trained),
                                  total=len(kept) + len(jobs), desc=f"{dataset} · {backbone}", unit="cell"):
        file = results.path(out, cell)
        if new:
            results.write(file, result)
        if result["status"] == "finished":
            log.info("%s: test accuracy %.3f", cell.run_name, result["test_accuracy"])
        else:
            log.warning("%s failed: %s", cell.run_name, result["reason"])
        if logged.get(cell.key) != result["fingerprint"]:
            try:
                tracker.log_cell(cell, result, cell_config(params, cell, digest), file)
            except TrackingError as error:
                log.error("%s: result kept in %s but not logged to MLflow: %s", cell.run_name, file, error)
                unlogged.append(cell)
        done[cell] = result
    if unlogged:
        raise TrackingError(f"{len(unlogged)} cells trained and kept in {out} but not logged to MLflow "
                            f"({tracker.uri}). Fix the store, then run `dvc repro` again: it logs them without "
                            "retraining")
    return [done[cell] for cell in grid]
