"""Nested per-class subsets: per seed, a seeded ordering of each class's pool; size k takes the first k of each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..grid import ALL
from .prepared import POOL, Prepared


def class_orderings(labels: np.ndarray, pool: np.ndarray, seed: int) -> dict[int, np.ndarray]:
    """Per class, the pool's indices in a seeded random order (the same on any machine)."""
    rng = np.random.default_rng(seed)
    pool_labels = labels[pool]
    return {int(c): rng.permutation(pool[pool_labels == c]) for c in np.unique(pool_labels)}


def by_seed(data: Prepared, seeds: list[int]) -> dict[int, dict[int, np.ndarray]]:
    """Per seed, the class orderings of the prepared data's pool: what the subsample stage writes."""
    return {seed: class_orderings(data.labels, data.part(POOL), seed) for seed in seeds}


def subset(orderings: dict[int, np.ndarray], examples_per_class: int | str) -> np.ndarray:
    """Indices of the first k of every class (`all`: the whole pool); the k-subset contains every smaller one of
    the same seed."""
    stop = None if examples_per_class == ALL else examples_per_class
    return np.concatenate([order[:stop] for order in orderings.values()])


def save(path: Path, orderings_by_seed: dict[int, dict[int, np.ndarray]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                str(seed): {str(c): order.tolist() for c, order in orderings.items()}
                for seed, orderings in orderings_by_seed.items()
            }
        )
    )


def load(path: Path, seed: int) -> dict[int, np.ndarray]:
    by_seed = json.loads(Path(path).read_text())
    return {int(c): np.array(order, dtype=np.int64) for c, order in by_seed[str(seed)].items()}
