"""A dataset decoded once: uint8 images, labels and a fixed split, as the prepare stage writes it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

POOL, VAL, TEST = 0, 1, 2  # split codes: the training pool (subsets come from it), validation, test
UNUSED = -1  # official validation / test images beyond val_per_class / test_per_class: never decoded


@dataclass
class Prepared:
    """Images (N, H, W, 3) uint8, labels (N,) int64, split (N,) int8 (POOL / VAL / TEST), class names."""

    images: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    class_names: list[str]

    def part(self, code: int) -> np.ndarray:
        """Indices of the images in one part of the split, in stored order."""
        return np.flatnonzero(self.split == code)

    def digest(self) -> str:
        """Hash of the images, labels and split: a cell's result depends on them, not only on params and code."""
        digest = hashlib.sha256()
        for array in (self.images, self.labels, self.split):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:16]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            path,
            images=self.images,
            labels=self.labels,
            split=self.split,
            class_names=np.array(self.class_names),
        )

    @classmethod
    def load(cls, path: Path) -> Prepared:
        with np.load(path) as f:
            return cls(f["images"], f["labels"], f["split"], [str(c) for c in f["class_names"]])
