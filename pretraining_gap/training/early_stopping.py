"""Early stopping on validation: keep the best evaluation's weights, stop when the best is `patience` steps old."""

from __future__ import annotations

import copy
import math
from typing import Literal

from torch import nn


class EarlyStopping:
    """Ranks evaluations by validation accuracy (ties: lower loss) or by validation loss alone.

    `update` returns True when the best evaluation so far lies `patience` optimisation steps back or more.
    Patience is counted in steps, not evaluations, so that evaluating more often (a common step grid for every
    arm) does not stop a run sooner: a fine grid with a short patience stopped scratch runs in the dip that high
    learning rates cause early in training (validation 0.54 instead of 0.99, docs/choices.md).
    """

    def __init__(self, patience: int, monitor: Literal["accuracy", "loss"] = "accuracy"):
        self.patience, self.monitor = patience, monitor
        self.best: tuple[float, float] = (-1.0, math.inf)  # validation (accuracy, loss) of the kept weights
        self.best_step = 0
        self.best_state: dict | None = None

    def _rank(self, accuracy: float, loss: float) -> tuple[float, ...]:
        return (accuracy, -loss) if self.monitor == "accuracy" else (-loss,)

    def update(self, step: int, accuracy: float, loss: float, model: nn.Module) -> bool:
        if self.best_state is None or self._rank(accuracy, loss) > self._rank(*self.best):
            self.best, self.best_step = (accuracy, loss), step
            self.best_state = copy.deepcopy(model.state_dict())
            return False
        return step - self.best_step >= self.patience
