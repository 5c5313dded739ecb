"""The probes' choice of a regularisation value on validation, per cell: a grid, and one more step past an edge the
best value sits on (the gradient arms' procedure, selection.py, extends its grids by the same rule).

A best value at the edge of its grid says the grid was too narrow; a study that stops there under-tunes that arm
(the scratch arm most of all, whose best learning rate grows with data). So the grid is extended by one step in
that direction (the ratio of the two values nearest that edge) and the extension is tried too; if the extension
wins, the result says the choice still sits at an edge, and the report lists it.

`run` fits a list of values and returns their trials in that order.
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
