"""A cell's result: one typed definition of its fields, used by the regimes, the result files, MLflow logging and
the aggregate's columns; and the result files themselves, written atomically.

A result's `status` is "finished" (it has test_accuracy) or "failed" (it has `reason` instead). Either is kept
while its fingerprint holds: a failed cell fails again the same way with the same inputs and code, so it is
retried only when one of them changes.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from .config import REGIMES
from .grid import ALL, Cell

_TMP = ".tmp"  # suffix of a result file being written
log = logging.getLogger(__name__)


class _Trained(BaseModel):
    """How a cell trained: test metrics and its run (the first fields of an Outcome)."""

    model_config = ConfigDict(extra="forbid")

    test_accuracy: float | None = None  # fraction of the test split classified right
    test_loss: float | None = None  # mean cross-entropy on the test split, nats
    best_val_accuracy: float | None = None  # of the kept weights (or the chosen probe)
    train_seconds: float | None = None  # wall time of every training the cell ran (its whole grid)
    images_per_second: float | None = None  # training images per second over the whole grid (every setting)
    steps: int | None = None  # optimisation steps the kept run took
    best_step: int | None = None  # the step whose weights were kept
    budget_steps: int | None = None  # the kept run's step budget: the last rung it reached
    batch_size: int | None = None
    converged: bool | None = (
        None  # its ladder stopped because validation stopped gaining, not at the top rung
    )
    candidates: int | None = (
        None  # candidates the cell started with (selection.py; before any edge extension)
    )
    rungs: list[int] | None = None  # the ladder's rungs it climbed, in steps
    tuning_steps: int | None = None  # optimisation steps of every run the cell trained, candidates included
    winners_curse: float | None = (
        None  # chosen on validation's first half: its accuracy there minus on the second
    )


def _chosen_fields() -> dict[str, Any]:
    """Every registered regime's result fields (`config.Regime.chosen`: what it chose on validation), optional, in
    the registry's order; a field several regimes add is one field (one column of the aggregate)."""
    fields: dict[str, Any] = {}
    for regime in REGIMES.values():
        for name, (kind, meaning) in regime.chosen.items():
            fields.setdefault(name, (kind | None, Field(None, description=meaning)))
    return fields


_Chosen = create_model("_Chosen", __base__=_Trained, **_chosen_fields())


class Outcome(_Chosen):
    """What a regime's training of one cell gives: test metrics, what was chosen on validation (the regimes' own
    fields, from the registry), how it trained."""

    at_grid_edge: bool | None = None  # the chosen lr / C sits at an edge of every value tried
    trace: list[dict[str, Any]] | None = (
        None  # every candidate: options, rungs reached, steps, why it stopped
    )
    val_accuracy_by_C: dict[str, float] | None = (
        None  # every C tried (of the chosen family): validation accuracy
    )
    history: dict[str, list] | None = (
        None  # per evaluation: step, train_loss, val_accuracy, val_loss (, phase)
    )
    transferability: dict[str, float] | None = (
        None  # T per conv / linear layer, network order (fine-tuned cells)
    )
    weight_scale: dict[str, float] | None = None  # mean |pretrained weight| per layer, beside T
    # per image, in the split's stored order: the kept model's test and validation logits (networks; the probes'
    # log-probabilities or decision values) and labels, for the analysis's test-image bootstrap and calibration
    test_logits: list[list[float]] | None = None
    test_labels: list[int] | None = None
    val_logits: list[list[float]] | None = None
    val_labels: list[int] | None = None


class CellResult(Outcome):
    """One cell's result file: which cell, its outcome, whether it finished, and the fingerprint it was made with."""

    dataset: str
    backbone: str
    regime: str
    examples_per_class: int | Literal["all"]
    seed: int
    depth: int | None = None
    train_images: int | None = None  # the training subset's size (for "all": every pool image of every class)
    classes: int | None = None
    status: Literal["finished", "failed"]
    reason: str | None = None  # why it failed
    traceback: str | None = None  # where it failed, for an unexpected error
    fingerprint: str
    identity_digests: dict[str, str] | None = (
        None  # the fingerprint's parts: code, config, data, weights, versions
    )
    machine: dict[str, Any] | None = None  # where it trained: device, CPU model, threads, library versions
    started_ms: int
    finished_ms: int

    @property
    def cell(self) -> Cell:
        return Cell(self.dataset, self.backbone, self.regime, self.examples_per_class, self.seed, self.depth)

    @classmethod
    def of(cls, cell: Cell, **fields) -> CellResult:
        return cls(
            dataset=cell.dataset,
            backbone=cell.backbone,
            regime=cell.regime,
            examples_per_class=cell.examples_per_class,
            seed=cell.seed,
            depth=cell.depth,
            **fields,
        )


# the aggregate's table, one column per field: which cell and how it ended first, then its outcome (the
# fingerprint's parts stay in the result files: the fingerprint column stands for them)
COLUMNS = [
    *(f for f in CellResult.model_fields if f not in Outcome.model_fields and f != "identity_digests"),
    *Outcome.model_fields,
]


def path(group: Path, cell: Cell) -> Path:
    """The cell's result file inside its dataset x backbone folder (one train stage's DVC output)."""
    depth = "" if cell.depth is None else f"k{cell.depth}_"
    size = cell.examples_per_class if cell.examples_per_class == ALL else f"{cell.examples_per_class:04d}"
    return Path(group) / cell.regime / f"{depth}{size}-per-class_seed-{cell.seed}.json"


def group_dir(root: Path, cell: Cell) -> Path:
    return Path(root) / cell.dataset / cell.backbone


def write(file: Path, result: CellResult) -> None:
    """Write-then-rename, so a killed process never leaves a half-written result."""
    file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=file.parent, suffix=_TMP, delete=False) as tmp:
        tmp.write(result.model_dump_json(indent=1, exclude_none=True))
    os.replace(tmp.name, file)


def remove_partial(group: Path) -> None:
    """Delete temporary files a killed process left behind, so they never reach DVC's cache."""
    for tmp in Path(group).glob(f"*/*{_TMP}"):
        tmp.unlink()


def read(file: Path) -> CellResult | None:
    """The stored result, or None when there is none or the schema rejects it (an older layout, a damaged file):
    that one is named in the log with its first error, and is retrained like a missing one."""
    if not file.exists():
        return None
    try:
        return CellResult.model_validate_json(file.read_text())
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        log.warning("%s is not a valid result (%s: %s): it is retrained", file, where, first["msg"])
        return None


def current(result: CellResult | None, fingerprint: str) -> bool:
    """Whether a stored result was made with the same inputs and code. A failure with a traceback (an unexpected
    error, not a diverging run) is never current: the next run retries it."""
    return result is not None and result.fingerprint == fingerprint and not result.traceback
