"""Planning one train stage (dataset x backbone): each cell's identity, which finished cells are kept, which
train, and in which order.

A cell's identity is derived from what its result depends on, never from a hand-written list: its resolved
options, the prepared data and its own training subset (by content), the pretrained weights or cached features
it starts from (by content), the code of `pretraining_gap/training/` and the versions of the libraries that
compute it. Where the cells run (local workers, a cluster) is not part of it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path

import numpy as np

from . import results
from .config import Params
from .data import subsets
from .data.prepared import Prepared
from .grid import Cell
from .results import CellResult

log = logging.getLogger(__name__)

TRAINING_CODE = Path(__file__).parent / "training"
LIBRARIES = ("torch", "timm", "numpy", "scikit-learn")


def digest(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()[:16]


@cache
def code_digest(folder: Path = TRAINING_CODE) -> str:
    """The training code's digest: every .py file under `folder`, by relative path and content."""
    files = sorted(folder.rglob("*.py"))
    return digest(*(part for f in files for part in (str(f.relative_to(folder)).encode(), f.read_bytes())))


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
        from .training import backbones  # torch and timm: only when a stage trains

        data, feats = Prepared.load(prepared), np.load(features)
        orderings = {seed: subsets.load(subsets_file, seed) for seed in params.study.seeds}
        return cls(
            data,
            feats,
            orderings,
            data.digest(),
            digest(feats.tobytes()),
            backbones.weights_digest(params.backbones[backbone]),
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
        "code_digest": code_digest(),
        "libraries": {name: metadata.version(name) for name in LIBRARIES},
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


@dataclass
class Plan:
    """One train stage's cells: those kept from earlier runs and those to train (longest first)."""

    kept: list[tuple[Cell, CellResult]]
    to_train: list[Cell]
    identities: dict[Cell, dict]
    train_idx: dict[Cell, np.ndarray]  # each cell's training subset: indices into the prepared data
    work: dict[Cell, int] = field(default_factory=dict)  # a cell to train: its steps (regimes.work)

    def fingerprint(self, cell: Cell) -> str:
        return fingerprint(self.identities[cell])


def plan(params: Params, dataset: str, backbone: str, inputs: Inputs, out: Path) -> Plan:
    """Keep every cell whose result file has the current fingerprint (finished or failed); train the rest, the
    most work first so that no worker idles through the last cell."""
    from .training import regimes

    identities = {cell: identity(params, cell, inputs) for cell in params.cells(dataset, backbone)}
    kept, to_train = [], []
    for cell, found in identities.items():
        result = results.current(results.path(out, cell), fingerprint(found))
        if result is None:
            to_train.append(cell)
        else:
            log.info("kept %s (%s earlier, same inputs and code)", cell.run_name, result.status)
            kept.append((cell, result))
    work = {c: regimes.work(c, params, len(inputs.train_idx(c))) for c in to_train}
    to_train.sort(key=lambda c: -work[c])
    log.info("%s · %s: %d cells to train, %d kept", dataset, backbone, len(to_train), len(kept))
    return Plan(kept, to_train, identities, {cell: inputs.train_idx(cell) for cell in to_train}, work)
