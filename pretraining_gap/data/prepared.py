"""A dataset decoded once: uint8 images, labels and a fixed split, as the prepare stage writes it, with a report
of how its files were read."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

POOL, VAL, TEST = 0, 1, 2  # split codes: the training pool (subsets come from it), validation, test
UNUSED = -1  # official validation / test images beyond val_per_class / test_per_class: never decoded
PARTS = {POOL: "pool", VAL: "val", TEST: "test"}


@dataclass
class Prepared:
    """Images (N, H, W, 3) uint8, labels (N,) int64, split (N,) int8 (POOL / VAL / TEST), class names, and how the
    source's files were read (not part of `digest`: the same images are the same data however they were found)."""

    images: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    class_names: list[str]
    conversions: dict[str, int] = field(default_factory=dict)  # conversion kind (data/images.py) -> images
    junk: int = 0  # files skipped by design: .DS_Store, Thumbs.db, ._* (a junk folder counts once)
    unused: list[tuple[str, str]] = field(default_factory=list)  # (file, reason) of every other file not used
    official: list[str] = field(
        default_factory=list
    )  # parts ("val", "test") taken from the source's own split
    duplicates: dict = field(default_factory=dict)  # data/duplicates.py's Report: what was found and done
    merged: list[tuple[str, list[str]]] = field(default_factory=list)  # (class, its folders equal under NFC)

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
        report = {"conversions": self.conversions, "junk": self.junk, "unused": self.unused}
        report.update(duplicates=self.duplicates, merged=self.merged)
        np.savez(
            path,
            images=self.images,
            labels=self.labels,
            split=self.split,
            class_names=np.array(self.class_names),
            report=np.array(json.dumps({**report, "official": self.official})),  # a JSON string
        )

    @classmethod
    def load(cls, path: Path) -> Prepared:
        with np.load(path) as f:
            report = json.loads(str(f["report"])) if "report" in f.files else {}
            return cls(
                f["images"],
                f["labels"],
                f["split"],
                [str(c) for c in f["class_names"]],
                report.get("conversions", {}),
                report.get("junk", 0),
                [tuple(entry) for entry in report.get("unused", [])],
                report.get("official", []),
                report.get("duplicates", {}),
                [(name, list(folders)) for name, folders in report.get("merged", [])],
            )
