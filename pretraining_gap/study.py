"""Running the grid: one train group (dataset × backbone × regime) over every size and seed, resumable."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import params as study_params
from . import regimes, results, subsets
from .datasets import Prepared
from .params import Cell

log = logging.getLogger(__name__)


def cell_config(params: dict, cell: Cell) -> dict:
    """Everything a cell's result depends on; logged as its MLflow params and hashed into its fingerprint."""
    config = {"dataset": params["datasets"][cell.dataset], "backbone": params["backbones"][cell.backbone],
              "regime": params["regimes"][cell.regime], "examples_per_class": cell.examples_per_class,
              "seed": cell.seed}
    if cell.depth is not None:
        config["depth"] = cell.depth
    if cell.regime not in regimes.FEATURE_REGIMES:
        config["training"] = params["training"]
    if cell.regime == "scratch":
        config["backbone"] = {k: v for k, v in config["backbone"].items() if k != "weights"}
    return config


def train_group(params: dict, dataset: str, backbone: str, regime: str, prepared: Path, subsets_file: Path,
                features: Path | None, out: Path, tracker) -> list[dict]:
    """Train every cell of the group that has no current result in `out`; log each to MLflow once."""
    data = Prepared.load(prepared)
    feats = np.load(features) if regime in regimes.FEATURE_REGIMES else None
    if regime == "depth":
        regimes.check_depth(params, backbone)
    logged = tracker.logged_fingerprints(dataset, backbone, regime)
    done = []
    cells = study_params.cells(params, dataset, backbone, regime)
    for cell in tqdm(cells, desc=f"{dataset} · {backbone} · {regime}", unit="cell"):
        config = cell_config(params, cell)
        fingerprint = results.fingerprint(config)
        file = results.path(out, cell)
        result = results.finished(file, fingerprint)
        if result is None:
            log.info("training %s", cell.run_name)
            train_idx = subsets.subset(subsets.load(subsets_file, cell.seed), cell.examples_per_class)
            started = time.time()
            result, _ = regimes.RUNNERS[regime](cell, params, data, train_idx, feats)
            result = {"dataset": dataset, "backbone": backbone, "regime": regime,
                      "examples_per_class": cell.examples_per_class, "seed": cell.seed, "depth": cell.depth, **result,
                      "fingerprint": fingerprint, "started_ms": int(started * 1000), "finished_ms": int(time.time() * 1000)}
            results.write(file, result)
            log.info("%s: test accuracy %.3f", cell.run_name, result["test_accuracy"])
        else:
            log.info("kept %s (finished earlier, same config and code)", cell.run_name)
        if logged.get(cell.key) != fingerprint:
            tracker.log_cell(cell, result, config, file)
        done.append(result)
    return done
