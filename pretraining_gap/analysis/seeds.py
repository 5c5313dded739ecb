"""Seeds as the unit of pairing and of resampling.

A seed is one nested subset series: for a dataset, seed s draws one ordering of every class's pool and the subset of
size n takes its first n per class, for every arm and backbone alike. Two arms are therefore compared seed by seed
(paired), and a bootstrap resamples whole seeds, the same draw for every arm of a dataset.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SCRATCH = "scratch"  # the regime every other arm is compared with
ARM = ["dataset", "backbone", "regime", "arm"]


def paired(cells: pd.DataFrame, value: str = "test_accuracy", scratch: str = SCRATCH) -> pd.DataFrame:
    """Every non-scratch cell beside the scratch cell of the same dataset, backbone, size and seed.

    `cells`: one row per finished cell with columns dataset, backbone, regime, arm, examples_per_class, seed and
    `value`. Returns columns dataset, backbone, regime, arm, examples_per_class, seed, pretrained, scratch (both in
    the unit of `value`); cells without a scratch partner are left out.
    """
    keys = ["dataset", "backbone", "examples_per_class", "seed"]
    base = cells[cells.regime == scratch][[*keys, value]].rename(columns={value: "scratch"})
    other = cells[cells.regime != scratch][[*ARM, "examples_per_class", "seed", value]]
    return other.rename(columns={value: "pretrained"}).merge(
        base, on=keys, how="inner", validate="many_to_one"
    )


def seed_matrix(arm_cells: pd.DataFrame, value: str, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One arm's `value` as a (sizes × seeds) array, columns in the order of `seeds`, NaN where a cell is missing.

    Returns (sizes, matrix): the arm's examples per class, ascending, and the array.
    """
    table = arm_cells.pivot_table(index="examples_per_class", columns="seed", values=value, aggfunc="mean")
    table = table.reindex(columns=seeds).sort_index()
    return table.index.to_numpy(dtype=float), table.to_numpy(dtype=float)


def resample_seeds(seeds: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot × seeds) column indices: each row draws `seeds` seeds with replacement (Efron's bootstrap over the
    independent unit, here a subset series). Use one draw for every arm of a dataset, so paired arms stay paired.
    No rows with a single seed: its resamples would all be the same and give intervals of width zero."""
    if seeds < 2:
        return np.empty((0, seeds), dtype=int)
    return np.random.default_rng(seed).integers(0, seeds, size=(n_boot, seeds))


def resampled_means(matrix: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Per bootstrap draw and size, the mean over the drawn seeds: (n_boot × sizes), NaN where no drawn seed has
    the cell."""
    picked = matrix[:, draws]  # sizes × n_boot × seeds
    counts = np.sum(~np.isnan(picked), axis=2)
    sums = np.nansum(picked, axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan).T
