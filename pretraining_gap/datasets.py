"""Target datasets: read a source once, resize to the study resolution, split into pool / validation / test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

POOL, VAL, TEST = 0, 1, 2


@dataclass
class Prepared:
    """A dataset decoded once: uint8 images (N, H, W, 3), labels, and a fixed split code per image."""

    images: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    class_names: list[str]

    def part(self, code: int) -> np.ndarray:
        return np.flatnonzero(self.split == code)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, images=self.images, labels=self.labels, split=self.split,
                 class_names=np.array(self.class_names))

    @classmethod
    def load(cls, path: Path) -> "Prepared":
        with np.load(path) as f:
            return cls(f["images"], f["labels"], f["split"], [str(c) for c in f["class_names"]])


def _sklearn_digits() -> tuple[np.ndarray, np.ndarray, list[str]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)  # 0..16 ink levels to 0..255
    return images, digits.target.astype(np.int64), [str(c) for c in digits.target_names]


SOURCES = {"sklearn_digits": _sklearn_digits}


def resize(images: np.ndarray, resolution: int) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) uint8 to (N, resolution, resolution, 3) uint8; grey becomes RGB."""
    import torch  # here, so that params checks can read SOURCES without paying for torch
    import torch.nn.functional as F

    x = torch.from_numpy(images).float()
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def stratified_split(labels: np.ndarray, val_per_class: int, test_per_class: int, seed: int) -> np.ndarray:
    """Fixed per-class split: test first, then validation, the rest is the training pool."""
    split = np.full(len(labels), POOL, dtype=np.int8)
    rng = np.random.default_rng(seed)
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        split[members[:test_per_class]] = TEST
        split[members[test_per_class:test_per_class + val_per_class]] = VAL
    return split


def prepare(cfg: dict) -> Prepared:
    images, labels, class_names = SOURCES[cfg["source"]]()
    split = stratified_split(labels, cfg["val_per_class"], cfg["test_per_class"], cfg.get("split_seed", 0))
    return Prepared(resize(images, cfg["resolution"]), labels, split, class_names)
