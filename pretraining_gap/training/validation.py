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
    evaluation): the one most accurate on one half (the first of ties) scored on the other, its accuracy there minus
    on the other half, a fraction; both ways, averaged, so that a difference in difficulty between the two halves
    cancels (the first half of digits' validation is 1.3 points easier). The study chooses on all of validation;
    this measures the same kind of choice on half of it, so it errs high. None without pairs."""
    if not pairs:
        return None
    first = max(pairs, key=lambda pair: pair[0])  # max keeps the first of ties
    second = max(pairs, key=lambda pair: pair[1])
    return float((first[0] - first[1] + second[1] - second[0]) / 2)
