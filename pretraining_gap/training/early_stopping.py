"""The best validation evaluation of a run so far, and its weights (the run ends on them)."""

from __future__ import annotations

import copy
import math
from typing import Literal

from torch import nn


class EarlyStopping:
    """Ranks evaluations by validation accuracy (ties: lower loss) or by validation loss alone, and keeps the best
    one's weights. A run stops once its best is `patience` steps old (loop.Run): patience is counted in steps, not
    evaluations, so that evaluating more often does not stop a run sooner (docs/choices.md)."""

    def __init__(self, monitor: Literal["accuracy", "loss"] = "accuracy"):
        self.monitor = monitor
        self.best: tuple[float, float] = (-1.0, math.inf)  # validation (accuracy, loss) of the kept weights
        self.best_step = 0
        self.best_state: dict | None = None

    def _rank(self, accuracy: float, loss: float) -> tuple[float, ...]:
        return (accuracy, -loss) if self.monitor == "accuracy" else (-loss,)

    def update(self, step: int, accuracy: float, loss: float, model: nn.Module) -> None:
        """Keep this evaluation's weights if it is the best so far."""
        if self.best_state is None or self._rank(accuracy, loss) > self._rank(*self.best):
            self.best, self.best_step = (accuracy, loss), step
            self.best_state = copy.deepcopy(model.state_dict())
