"""Planning one train stage (dataset x backbone): each cell's identity, which finished cells are kept, which
train, and in which order.

A cell's identity is derived from what its result depends on, never from a hand-written list: its resolved
options, the prepared data and its own training subset (by content), the pretrained weights or cached features
it starts from (by content), the code that computes it (the syntax trees of the package modules its regime's runner
imports, transitively: `fingerprints.py`) and the versions of the libraries and Python that run it. Where the cells
run (local workers, a cluster) is not part of it. The identity falls into parts (code, config, data, weights,
versions), each digested on its own and stored in the result, so that a retrained cell is logged with the parts
that changed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path

import numpy as np

from . import fingerprints, results, weights
from .config import REGIMES, Params
from .data import subsets
from .data.prepared import Prepared
from .grid import Cell, ParamsError
from .results import CellResult

log = logging.getLogger(__name__)

digest = fingerprints.digest

# The identity's keys by part; every other key (the regime's options, size, seed, model, training) is config.
PART_OF = {
    "code_digest": "code",
    "data_digest": "data",
    "subset_digest": "data",
    "weights_digest": "weights",
    "features_digest": "weights",  # cached features: the pretrained weights as the feature regimes see them
    "libraries": "versions",
}
PARTS = ("code", "config", "data", "weights", "versions")


@cache
def code_digest(regime: str) -> str:
    """The digest of the code a regime's cells run: the modules its registry entry names (its runner, its backbone
    check) and what they import."""
    return fingerprints.code_digest(*REGIMES[regime].modules())


@dataclass(frozen=True)
class Inputs:
    """A train stage's inputs, loaded once: the prepared data, cached features, per-seed class orderings, and the
    content digests that enter every cell's identity."""

    data: Prepared
    features: np.ndarray
    orderings: dict[int, dict[int, np.ndarray]]  # seed -> class -> pool indices in the seed's order
    data_digest: str
    features_digest: str
    weights_digest: str

    @classmethod
    def load(
        cls, params: Params, backbone: str, prepared: Path, subsets_file: Path, features: Path
    ) -> Inputs:
        data, feats = Prepared.load(prepared), np.load(features)
        orderings = {seed: subsets.load(subsets_file, seed) for seed in params.study.seeds}
        return cls(
            data,
            feats,
            orderings,
            data.digest(),
            digest(feats.tobytes()),
            weights.digest(params.backbones[backbone]),
        )

    def train_idx(self, cell: Cell) -> np.ndarray:
        return subsets.subset(self.orderings[cell.seed], cell.examples_per_class)


def identity(params: Params, cell: Cell, inputs: Inputs) -> dict:
    """Everything the cell's result depends on; logged as its MLflow params and hashed into its fingerprint."""
    regime = params.regime(cell.regime)
    backbone = params.backbones[cell.backbone]
    found = {
        "regime": regime.model_dump(mode="json"),
        "examples_per_class": cell.examples_per_class,
        "seed": cell.seed,
        "model": backbone.model,
        "data_digest": inputs.data_digest,
        "subset_digest": digest(inputs.train_idx(cell).tobytes()),
        "code_digest": code_digest(cell.regime),
        "libraries": {"python": fingerprints.PYTHON}
        | {name: metadata.version(name) for name in fingerprints.LIBRARIES},
    }
    if cell.depth is not None:
        found["depth"] = cell.depth
    if regime.on_features:
        found["features_digest"] = inputs.features_digest
    elif regime.pretrained:
        found["weights_digest"] = inputs.weights_digest
    if regime.gradient:
        found["training"] = params.training.model_dump(mode="json")
    return found


def fingerprint(found: dict) -> str:
    return digest(json.dumps(found, sort_keys=True).encode())


def parts(found: dict) -> dict[str, str]:
    """An identity's digest per part (code, config, data, weights, versions; a part a cell lacks has none)."""
    grouped: dict[str, dict] = {}
    for key, value in found.items():
        grouped.setdefault(PART_OF.get(key, "config"), {})[key] = value
    return {part: fingerprint(grouped[part]) for part in PARTS if part in grouped}


def why(stored: CellResult | None, found: dict) -> str:
    """Why a cell that is not kept trains: 'new', the parts of its identity that changed, or a retry."""
    if stored is None:
        return "new"
    if stored.fingerprint == fingerprint(found):
        return "retried after an unexpected error"
    if stored.identity_digests is None:
        return "identity changed (its result predates the per-part record)"
    now = parts(found)
    changed = [part for part in PARTS if stored.identity_digests.get(part) != now.get(part)]
    return f"{', '.join(changed) or 'identity'} changed"


@dataclass
class Plan:
    """One train stage's cells: those kept from earlier runs and those to train (longest first)."""

    kept: list[tuple[Cell, CellResult]]
    to_train: list[Cell]
    identities: dict[Cell, dict]
    train_idx: dict[Cell, np.ndarray]  # each cell's training subset: indices into the prepared data
    work: dict[Cell, int] = field(default_factory=dict)  # a cell to train: its steps (regimes.work)

    reasons: dict[Cell, str] = field(default_factory=dict)  # a cell to train: why (`why`)

    def fingerprint(self, cell: Cell) -> str:
        return fingerprint(self.identities[cell])

    def parts(self, cell: Cell) -> dict[str, str]:
        return parts(self.identities[cell])


def plan(params: Params, dataset: str, backbone: str, inputs: Inputs, out: Path) -> Plan:
    """Keep every cell whose result file has the current fingerprint (finished or failed); train the rest, the
    most work first so that no worker idles through the last cell."""
    from .training import regimes

    identities = {cell: identity(params, cell, inputs) for cell in params.cells(dataset, backbone)}
    kept, to_train, reasons = [], [], {}
    for cell, found in identities.items():
        stored = results.read(results.path(out, cell))
        if results.current(stored, fingerprint(found)):
            log.info("kept %s (%s earlier, same inputs and code)", cell.run_name, stored.status)
            kept.append((cell, stored))
        else:
            reasons[cell] = why(stored, found)
            log.info("retrain %s: %s", cell.run_name, reasons[cell])
            to_train.append(cell)
    work = {c: regimes.work(c, params, len(inputs.train_idx(c))) for c in to_train}
    to_train.sort(key=lambda c: -work[c])
    log.info("%s · %s: %d cells to train, %d kept", dataset, backbone, len(to_train), len(kept))
    train_idx = {cell: inputs.train_idx(cell) for cell in to_train}
    return Plan(kept, to_train, identities, train_idx, work, reasons)


def stage_files(dataset: str, backbone: str) -> dict[str, Path]:
    """One train stage's input and output files, relative to the study's root, as dvc.yaml names them."""
    return {
        "prepared": Path(f"data/prepared/{dataset}.npz"),
        "subsets": Path(f"data/subsets/{dataset}.json"),
        "features": Path(f"data/features/{dataset}/{backbone}.npy"),
        "cells": Path(f"results/cells/{dataset}/{backbone}"),
        "cost": Path(f"results/costs/{dataset}/{backbone}.json"),
    }


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def estimate(plan: Plan, cost_file: Path) -> str:
    """The training time of a plan's cells from the cost stage's measured throughput (images/s at its batch size);
    evaluations, probes and start-up are left out. Or why there is no estimate."""
    if not cost_file.exists():
        return f"no cost measurement yet ({cost_file}: `dvc repro cost`), so no time estimate"
    cost = json.loads(cost_file.read_text())
    images = sum(plan.work.values()) * cost["batch_size"]
    return (
        f"about {_minutes(images / cost['train_images_per_second'])} of training steps on one worker at the "
        f"measured {cost['train_images_per_second']:.0f} images/s ({cost['device']}, {cost_file})"
    )


def preview(params: Params, dataset: str, backbone: str) -> list[str]:
    """What the train stage of one dataset x backbone would do now, from the study's root: a headline, each cell
    to train with its reason and steps, each cell kept. Raises ParamsError when an input stage has not run."""
    files = stage_files(dataset, backbone)
    absent = [str(files[k]) for k in ("prepared", "subsets", "features") if not files[k].exists()]
    if absent:
        raise ParamsError(
            absent[0],
            f"{', '.join(absent)} not made yet",
            "run `dvc repro prepare subsample features` first (no training), then plan again",
        )
    inputs = Inputs.load(params, backbone, files["prepared"], files["subsets"], files["features"])
    found = plan(params, dataset, backbone, inputs, files["cells"])
    lines = [
        f"{dataset} · {backbone}: {len(found.to_train)} cells to train, {len(found.kept)} kept; "
        + estimate(found, files["cost"])
    ]
    lines += [f"  train {c.run_name}: {found.reasons[c]} ({found.work[c]} steps)" for c in found.to_train]
    lines += [f"  keep  {c.run_name} ({result.status})" for c, result in found.kept]
    return lines
