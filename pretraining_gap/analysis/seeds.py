"""Seeds and test images as the units of pairing and of resampling.

A seed is one nested subset series: for a dataset, seed s draws one ordering of every class's pool and the subset of
size n takes its first n per class, for every arm and backbone alike. Two arms are therefore compared seed by seed
(paired), and a bootstrap resamples whole seeds, the same draw for every arm of a dataset. Every cell of a dataset is
scored on the same test images, the second source of noise (the `noise` module): inside each seed draw the bootstrap
also draws the test images with replacement, again the same draw for every arm and seed, so arms stay paired image by
image.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SCRATCH = "scratch"  # the regime every other arm is compared with
ARM = ["dataset", "backbone", "regime", "arm"]


def correct(logits, labels) -> np.ndarray | None:
    """Per test image whether the cell's kept model got it right: (N,) bool, from its stored per-image logits
    (N × classes) and labels (N,); None where the result has none (cells from before they were stored)."""
    if not isinstance(logits, list) or not isinstance(labels, list) or not logits:
        return None
    return np.argmax(np.asarray(logits, dtype=float), axis=1) == np.asarray(labels)


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


def resample_seeds(seeds: int, n_boot: int, seed: int = 0, images: bool = False) -> np.ndarray:
    """(n_boot × seeds) column indices: each row draws `seeds` seeds with replacement (Efron's bootstrap over the
    independent unit, here a subset series). Use one draw for every arm of a dataset, so paired arms stay paired.
    A single seed gets no rows unless the test images are resampled too (`images`): its resamples would all be the
    same and give intervals of width zero."""
    if seeds < 2 and not images:
        return np.empty((0, seeds), dtype=int)
    return np.random.default_rng(seed).integers(0, seeds, size=(n_boot, seeds))


def resample_images(images: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot × images) weights: how often each test image is drawn in each replicate (a bootstrap of `images`
    images with replacement, multinomial counts summing to `images`)."""
    return np.random.default_rng([seed, 1]).multinomial(images, np.full(images, 1 / images), size=n_boot)


def correct_tensor(arm_cells: pd.DataFrame, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """One arm's per-image correctness as a (sizes × seeds × images) float array (NaN where a cell is missing),
    sizes ascending, from the cells' stored test logits and labels; None when a finished cell has none (results
    from before they were stored) or the cells disagree on the test set's size."""
    outputs = arm_cells.reindex(columns=["examples_per_class", "seed", "test_logits", "test_labels"])
    arrays = [correct(logits, labels) for logits, labels in zip(outputs.test_logits, outputs.test_labels)]
    if not arrays or any(a is None for a in arrays) or len({len(a) for a in arrays}) != 1:
        return None
    sizes = np.sort(outputs.examples_per_class.unique())
    tensor = np.full((len(sizes), len(seeds), len(arrays[0])), np.nan)
    for n, seed, right in zip(outputs.examples_per_class, outputs.seed, arrays):
        tensor[np.searchsorted(sizes, n), np.searchsorted(seeds, seed)] = right
    return sizes.astype(float), tensor


def resampled_means(matrix: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Per bootstrap draw and size, the mean over the drawn seeds: (n_boot × sizes), NaN where no drawn seed has
    the cell."""
    picked = matrix[:, draws]  # sizes × n_boot × seeds
    counts = np.sum(~np.isnan(picked), axis=2)
    sums = np.nansum(picked, axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan).T
