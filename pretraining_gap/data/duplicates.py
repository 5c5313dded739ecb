"""Duplicate images, found on the decoded images at the study's resolution before the split, so that no copy of a
test image trains (Barz & Denzler 2020, "Do we train on test data?": near-duplicates of training images for 3.3% of
CIFAR-10's and 10% of CIFAR-100's test images).

- Exact copies: equal pixels at the study's resolution (a copy saved under another name, or re-encoded losslessly).
- Near-duplicates (resized, recompressed, PNG saved as JPEG): a perceptual hash (`imagehash.phash`, 64 bits) within
  `PHASH_BITS` of each other, confirmed by a mean absolute grey difference of at most `GREY_LEVELS` (0..255). The
  rule was chosen on benchmarks/duplicates.py (docs/duplicates.md): no false pair among the 1.6 M pairs of
  scikit-learn's digits, which are full of look-alikes, at 16 and 32 px, and 100% of planted copies of digits,
  96% of planted copies of photo crops at 32 px, found.
- Groups: images joined by either relation, transitively (connected components).

What a dataset does with them (`datasets.<name>.duplicates`) is in `resolve`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import imagehash
import numpy as np
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .prepared import PARTS, UNUSED

PHASH_BITS = 10  # Hamming distance of two 64-bit perceptual hashes: candidates
GREY_LEVELS = 6.0  # mean absolute grey difference (0..255) of a candidate pair: confirmed
_ROWS = 1024  # hashes compared per block: 1,024 x N distances in memory at once


@dataclass
class Found:
    """The duplicate structure of N images: per image, its exact-copy id and its group id."""

    exact: np.ndarray  # (N,) int64: index of the first image with the same pixels (itself when unique)
    group: np.ndarray  # (N,) int64: connected component of exact and near pairs (ids 0..groups - 1)


def _phashes(images: np.ndarray) -> np.ndarray:
    """(N,) uint64 perceptual hashes of (N, H, W, 3) uint8 images."""
    bits = [imagehash.phash(Image.fromarray(image)).hash.flatten() for image in images]
    return np.packbits(np.array(bits, dtype=bool).reshape(len(images), 64), axis=1).view(">u8").ravel()


def _grey(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) @ np.array(
        [0.299, 0.587, 0.114], dtype=np.float32
    )  # ITU-R 601, as Pillow


def near_pairs(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) with i < j of every near-duplicate pair (module docstring) of (N, H, W, 3) uint8 images.

    Cost: N^2 / 2 hash comparisons (1.4 s for 10,000 images on one shared core), then a pixel check per candidate.
    """
    hashes = _phashes(images).astype(np.uint64)
    left, right = [], []
    for start in range(0, len(hashes), _ROWS):
        block = hashes[start : start + _ROWS, None]
        i, j = np.nonzero(np.bitwise_count(block ^ hashes[None, :]) <= PHASH_BITS)
        i += start
        left.append(i[i < j])
        right.append(j[i < j])
    i, j = np.concatenate(left), np.concatenate(right)
    grey = _grey(images)
    close = np.array([np.abs(grey[a] - grey[b]).mean() <= GREY_LEVELS for a, b in zip(i, j)], dtype=bool)
    return i[close], j[close]


def find(images: np.ndarray) -> Found:
    """Exact copies and groups of (N, H, W, 3) uint8 images."""
    first: dict[bytes, int] = {}
    exact = np.array(
        [first.setdefault(hashlib.sha256(image.tobytes()).digest(), k) for k, image in enumerate(images)],
        dtype=np.int64,
    )
    i, j = near_pairs(images)
    i, j = np.concatenate([i, np.arange(len(images))]), np.concatenate([j, exact])
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(len(images), len(images)))
    return Found(exact, connected_components(graph, directed=False)[1].astype(np.int64))


@dataclass
class Report:
    """What `resolve` did, as the prepared file and the log give it."""

    mode: str  # datasets.<name>.duplicates: group, drop or keep
    exact_removed: int = 0  # images dropped: an image of the same class with the same pixels is kept
    near_removed: int = 0  # images dropped (drop): a near-duplicate of the same class is kept
    groups: int = 0  # groups of 2 or more images kept
    grouped_images: int = 0  # images in those groups
    by_parts: dict[str, int] = field(default_factory=dict)  # "pool", "pool+test", ... -> groups spanning them
    conflicts: list[list[tuple[str, str]]] = field(default_factory=list)  # keep: groups under 2+ classes

    def line(self) -> str:
        """One log line that counts what happened."""
        spans = ", ".join(f"{parts} {n}" for parts, n in self.by_parts.items())
        kept = {"group": "each kept within one part", "drop": "", "keep": "each image split on its own"}
        return (
            f"duplicates ({self.mode}): {self.exact_removed} exact copies within a class kept once, "
            f"{self.near_removed} near-duplicates dropped, {self.groups} groups of duplicates kept "
            f"({self.grouped_images} images){', ' + kept[self.mode] if kept[self.mode] else ''}; "
            f"groups by the parts they lie in: {spans or 'none'}"
            + (f"; {len(self.conflicts)} groups under two or more classes" if self.conflicts else "")
        )


def conflicts(found: Found, labels: np.ndarray, names: list[str], classes: list[str]) -> list:
    """Groups whose images carry two or more labels: [[(file, class), ...], ...]."""
    mixed = [g for g in np.unique(found.group) if len(np.unique(labels[found.group == g])) > 1]
    return [[(names[k], classes[labels[k]]) for k in np.flatnonzero(found.group == g)] for g in mixed]


def resolve(found: Found, labels: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray | None, Report]:
    """The images kept (N,) bool, the groups the split must keep whole (None: none), and the report.

    group: an exact copy of an image of its class is dropped, near-duplicates are kept as one group, which the
    split keeps within one part. drop: one image of each group is kept. keep: every image, split on its own (a
    copy of a test image may train; the report counts the groups across parts).
    """
    first_of_group = np.zeros(len(labels), dtype=bool)
    first_of_group[np.unique(found.group, return_index=True)[1]] = True
    exact_copy = found.exact != np.arange(len(labels))
    kept = {"group": ~exact_copy, "drop": first_of_group, "keep": np.ones(len(labels), dtype=bool)}[mode]
    report = Report(mode, int((exact_copy & ~kept).sum()), int((~exact_copy & ~kept).sum()))
    return kept, (found.group if mode == "group" else None), report


def count_parts(report: Report, group: np.ndarray, split: np.ndarray) -> Report:
    """Fill in the groups of 2+ kept images (`group` and `split` of the kept images) by the parts they lie in."""
    used = split != UNUSED
    ids, sizes = np.unique(group[used], return_counts=True)
    spans = {name: 0 for name in ("pool", "val", "test", "pool+val", "pool+test", "val+test")}
    for g in ids[sizes > 1]:
        parts = "+".join(PARTS[code] for code in sorted(set(split[used & (group == g)].tolist())))
        spans[parts] = spans.get(parts, 0) + 1
    report.groups, report.grouped_images = int((sizes > 1).sum()), int(sizes[sizes > 1].sum())
    report.by_parts = spans
    return report
