"""How much a choice made on validation overstates itself (the winner's curse), measured without touching test:
choose on one half of validation, score the choice on the other. Light (numpy only): the probes and the gradient
arms' selection both import it."""

from __future__ import annotations

import numpy as np


def halves(labels: np.ndarray) -> np.ndarray:
    """A mask (N,) of a split's first half: every other image of each class, in stored order."""
    first = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        first[np.flatnonzero(labels == label)[::2]] = True
    return first


def winners_curse(pairs: list[tuple[float, float]]) -> float | None:
    """Of every (first half, second half) validation accuracy pair a choice could take (each setting, each
    evaluation), the one most accurate on the first half (the first of ties): its first minus its second, a
    fraction. The study chooses on all of validation; this measures the same kind of choice on half of it, so it
    errs high. None without pairs."""
    if not pairs:
        return None
    first, second = max(pairs, key=lambda pair: pair[0])  # max keeps the first of ties
    return float(first - second)
