"""Choosing a hyperparameter on validation, per cell: a grid, and one more step past an edge the best value sits on.

A best value at the edge of its grid says the grid was too narrow; a study that stops there under-tunes that arm
(the scratch arm most of all, whose best learning rate grows with data). So the grid is extended by one step in
that direction (the ratio of the two values nearest that edge) and the extension is tried too; if the extension
wins, the result says the choice still sits at an edge, and the report lists it.

`run` trains a list of values at once (a grid's members are fused into one model, loop.fit) and returns their
trials in that order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

Trial = TypeVar("Trial")


@dataclass
class Search(Generic[Trial]):
    """The values tried (in order), each one's trial, the best value and whether it lies at the edge of what was
    tried."""

    tried: dict  # value (or pair of values, or (family, value)) -> its trial
    best: float | tuple
    at_edge: bool

    @property
    def trial(self) -> Trial:
        return self.tried[self.best]


def search_pairs(
    grid: list[tuple[float, float]],
    run: Callable[[list[tuple[float, float]]], list[Trial]],
    score: Callable[[Trial], tuple],
) -> Search[Trial]:
    """Run every pair of a two-dimensional grid (no extension); `at_edge` when the best sits at an end of an axis
    that has two or more values."""
    pairs = sorted(grid)
    tried = dict(zip(pairs, run(pairs)))
    best = max(tried, key=lambda v: score(tried[v]))
    axes = [sorted({pair[i] for pair in tried}) for i in range(2)]
    at_edge = any(len(axis) >= 2 and best[i] in (axis[0], axis[-1]) for i, axis in enumerate(axes))
    return Search(tried, best, at_edge)


def search(
    grid: list[float], run: Callable[[list[float]], list[Trial]], score: Callable[[Trial], tuple]
) -> Search[Trial]:
    """Run the values of `grid` together, then one step past the edge where the best one lies (grids of two or
    more values); the best by `score` (higher is better; the first of ties: grids are tried in ascending order)."""
    values = sorted(grid)
    tried = dict(zip(values, run(values)))

    def best() -> float:
        return max(tried, key=lambda v: score(tried[v]))  # max keeps the first of equal scores

    if len(values) >= 2:
        chosen = best()
        if chosen == values[0]:
            extra = values[0] * values[0] / values[1]
        elif chosen == values[-1]:
            extra = values[-1] * values[-1] / values[-2]
        else:
            extra = None
        if extra is not None:
            tried[extra] = run([extra])[0]
    chosen = best()
    ordered = sorted(tried)
    return Search(tried, chosen, len(ordered) >= 2 and chosen in (ordered[0], ordered[-1]))


def search_families(
    grids: dict[str, list[float]],
    run: Callable[[list[tuple[str, float]]], list[Trial]],
    score: Callable[[Trial], tuple],
) -> Search[Trial]:
    """`search` over each family's own grid (e.g. the learning rates of batch norm and of group norm, whose best
    rates lie a decade apart; a family's values are one architecture, fused), each run given (family, value) pairs;
    the best of all, at an edge when it is at an edge of
    its own family's values."""
    searches = {
        family: search(grid, lambda values, family=family: run([(family, v) for v in values]), score)
        for family, grid in grids.items()
        if grid
    }
    tried = {
        (family, value): trial for family, found in searches.items() for value, trial in found.tried.items()
    }
    best = max(tried, key=lambda key: score(tried[key]))  # the first of ties: families in the order given
    return Search(tried, best, searches[best[0]].at_edge)
