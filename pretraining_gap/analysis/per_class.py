"""Per-class accuracy and the per-class gap: which classes pretraining helps most.

Read off each cell's stored per-image test outputs (no retraining). A class's gap is the paired gap of the arm and
scratch on that class's test images alone, with the two-source interval of the `noise` module (seeds, and the
class's test images: 50 per class on digits, so one image is 2 points and the intervals are wide; the table says
how wide).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import noise
from .seeds import ARM, SCRATCH

COLUMNS = [
    *ARM,
    "examples_per_class",
    "class",
    "seeds",
    "images",
    "noise",
    "pretrained_accuracy",
    "scratch_accuracy",
    "gap",
    "gap_low",
    "gap_high",
]


def per_class_gaps(cells: pd.DataFrame, level: float, scratch: str = SCRATCH) -> pd.DataFrame:
    """Per non-scratch arm, size and class: both arms' mean accuracy on the class's test images and the gap
    (fractions) with its t interval at `level` over seeds and those images.

    `cells`: finished cells with test_logits and test_labels (cells without them are left out). Columns: COLUMNS
    (`class`: the label index; `images`: the class's test images).
    """
    if "test_labels" not in cells:
        return pd.DataFrame(columns=COLUMNS)
    pairs = noise.paired_correct(cells, scratch)
    labels = cells.dropna(subset="test_labels").groupby("dataset").test_labels.first()
    rows = []
    for key, part in pairs.groupby([*ARM, "examples_per_class"], sort=True):
        if part.pretrained_correct.isna().any() or part.scratch_correct.isna().any():
            continue
        classes = np.asarray(labels[key[0]])
        for label in np.unique(classes):
            mask = classes == label
            mine = [c[mask] for c in part.pretrained_correct]
            theirs = [c[mask] for c in part.scratch_correct]
            p, q = np.array([c.mean() for c in mine]), np.array([c.mean() for c in theirs])
            gap = noise.estimate(*noise.gaps(p, q, mine, theirs, "points", 0.0))
            low, high = gap.interval(level)
            rows.append(
                {
                    **dict(zip([*ARM, "examples_per_class"], key)),
                    "class": int(label),
                    "seeds": len(part),
                    "images": int(mask.sum()),
                    "noise": gap.sources,
                    "pretrained_accuracy": p.mean(),
                    "scratch_accuracy": q.mean(),
                    "gap": gap.mean,
                    "gap_low": low,
                    "gap_high": high,
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)
