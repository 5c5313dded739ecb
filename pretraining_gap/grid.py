"""The study grid's vocabulary: a cell, the list of cells, and the error a user's mistake raises.

A leaf module: it imports nothing of the project, so every other module may import it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

ALL = "all"  # a size: every pool image of every class (classes may then differ in size)


class ParamsError(ValueError):
    """A params.yaml value, input file or setting that cannot work.

    Each problem names its key (a dotted params key, or a file), what is wrong and a fix that works; several
    problems found at once are listed one per line. `key` is the first problem's key.
    """

    def __init__(self, key: str, problem: str, fix: str, *more: tuple[str, str, str]):
        self.problems = [(key, problem, fix), *more]
        super().__init__("\n".join(f"params.yaml: {k}: {p}. Fix: {f}" for k, p, f in self.problems))
        self.key = key


@dataclass(frozen=True)
class Cell:
    """One training run of the study grid: a dataset x backbone x regime x size x seed (x depth for depth-k)."""

    dataset: str
    backbone: str
    regime: str
    examples_per_class: int | Literal["all"]
    seed: int
    depth: int | None = None  # the regime's depth value (depth's k: pretrained layer groups kept), else None

    @property
    def arm(self) -> str:
        """The regime, with the transfer depth of depth-k cells: 'finetune', 'depth_k3' (a line in the figures)."""
        return self.regime if self.depth is None else f"{self.regime}_k{self.depth}"

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.backbone}/{self.arm}/{self.examples_per_class}/{self.seed}"

    @property
    def run_name(self) -> str:
        return f"{self.dataset} · {self.backbone} · {self.arm} · {self.examples_per_class}/class · seed {self.seed}"


def cells(
    datasets: Iterable[str],
    backbones: Iterable[str],
    regimes: Iterable[str],
    sizes: Iterable[int | str],
    seeds: Iterable[int],
    depths: Mapping[str, Iterable[int]] | None = None,
) -> list[Cell]:
    """Every cell of the grid, in a stable order: dataset, backbone, regime, seed, size (and depth).

    `depths`: per regime, the values that give it one cell each (depth's k, `config.Regime.depths`); a regime
    without any has one cell, of depth None.
    """
    depths = depths or {}
    return [
        Cell(dataset, backbone, regime, size, seed, k)
        for dataset, backbone, regime, seed, size in itertools.product(
            datasets, backbones, regimes, seeds, sizes
        )
        for k in (depths.get(regime) or [None])
    ]
