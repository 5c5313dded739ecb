"""Early stopping on validation: keep the best evaluation's weights, stop after `patience` without a better one."""

from __future__ import annotations

import copy
import math
from typing import Literal

from torch import nn


class EarlyStopping:
    """Ranks evaluations by validation accuracy (ties: lower loss) or by validation loss alone.

    `update` returns True when `patience` evaluations in a row brought nothing better than the best so far.
    """

    def __init__(self, patience: int, monitor: Literal["accuracy", "loss"] = "accuracy"):
        self.patience, self.monitor = patience, monitor
        self.best: tuple[float, float] = (-1.0, math.inf)  # validation (accuracy, loss) of the kept weights
        self.best_step = 0
        self.best_state: dict | None = None
        self.since_best = 0

    def _rank(self, accuracy: float, loss: float) -> tuple[float, ...]:
        return (accuracy, -loss) if self.monitor == "accuracy" else (-loss,)

    def update(self, step: int, accuracy: float, loss: float, model: nn.Module) -> bool:
        if self.best_state is None or self._rank(accuracy, loss) > self._rank(*self.best):
            self.best, self.best_step, self.since_best = (accuracy, loss), step, 0
            self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.since_best += 1
        return self.since_best >= self.patience
