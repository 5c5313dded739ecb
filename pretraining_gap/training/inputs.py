"""What one cell's training reads, built the same way for every regime: a module of its own, light (no torch at
import), so that every runner imports it and its code is in every regime's digest (fingerprints.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..config import Backbone, Params, Regime, Training
from ..data.prepared import Prepared
from ..grid import Cell

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class CellInputs:
    """Everything one cell's training reads: its options, its data and the device to train on."""

    cell: Cell
    regime: Regime
    training: Training
    backbone: Backbone
    data: Prepared
    train_idx: np.ndarray  # indices into `data` of the cell's training subset
    features: np.ndarray | None  # cached frozen features (N, D) of every prepared image, for feature regimes
    device: torch.device

    @classmethod
    def of(
        cls,
        params: Params,
        cell: Cell,
        data: Prepared,
        train_idx: np.ndarray,
        features: np.ndarray | None,
        device: torch.device,
    ) -> CellInputs:
        return cls(
            cell,
            params.regime(cell.regime),
            params.training,
            params.backbones[cell.backbone],
            data,
            train_idx,
            features,
            device,
        )

    @property
    def num_classes(self) -> int:
        return len(self.data.class_names)
