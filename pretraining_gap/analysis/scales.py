"""The pretraining gap on three scales, paired by seed: accuracy points, log-odds and the error ratio.

A gap can shrink on one scale while it grows on another (DESIGN.md): scratch 60 % against pretrained 80 % is
+20 points, +0.98 in log-odds and 2x fewer errors; 95 % against 99 % is +4 points but +1.65 in log-odds and 5x
fewer errors. A report sentence therefore names its scale, and this module gives all three:

- points: mean over seeds of (pretrained − scratch accuracy), a fraction (0.01 = 1 point);
- log-odds: mean over seeds of logit(pretrained) − logit(scratch), i.e. the difference of the log-odds means that
  Kornblith, Shlens & Le (CVPR 2019) average accuracies with;
- error ratio: scratch error / pretrained error ("2.1x fewer errors"), the geometric mean over seeds of the per-seed
  ratios, so that its interval comes from a paired t interval on log ratios.

Accuracies are clipped to [ε, 1 − ε] (errors to [ε, 1]) so a perfect score stays finite, with ε = 1 / (2 × test
images): half an image, below any measurable accuracy step.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import noise
from .seeds import ARM, SCRATCH


def clip_epsilon(test_images: int) -> float:
    """ε = 1 / (2 N) for a test set of N images: half an image (1e-3 for the default digits test set, 50 images
    in each of 10 classes)."""
    return 1 / (2 * test_images)


def logit(accuracy, epsilon: float) -> np.ndarray:
    """log(p / (1 − p)) of accuracies (fractions) clipped to [ε, 1 − ε]."""
    p = np.clip(np.asarray(accuracy, dtype=float), epsilon, 1 - epsilon)
    return np.log(p / (1 - p))


def sigmoid(x) -> np.ndarray:
    """The inverse of `logit`."""
    return 1 / (1 + np.exp(-np.asarray(x, dtype=float)))


def gap_scales(cells: pd.DataFrame, level: float, epsilon: float, scratch: str = SCRATCH) -> pd.DataFrame:
    """Per non-scratch arm and size, the gap to scratch on the three scales, paired by seed, with t intervals that
    carry both seed and test-image noise (noise.estimate; per size, uncorrected: descriptive; decisions are
    `equivalence`'s job).

    `cells`: one row per finished cell (dataset, backbone, regime, arm, examples_per_class, seed, test_accuracy, and
    test_logits, test_labels where stored). Returns columns dataset, backbone, regime, arm, examples_per_class,
    seeds, noise (the sources the intervals carry: noise.SEEDS, IMAGES or BOTH), pretrained_accuracy,
    scratch_accuracy (means, fractions), points, points_low, points_high (fractions), logodds, logodds_low,
    logodds_high (nats of odds), error_ratio, error_ratio_low, error_ratio_high (scratch errors per pretrained
    error: the geometric mean over seeds, its interval from the log ratios').
    """
    pairs = noise.paired_correct(cells, scratch)
    rows = []
    for key, part in pairs.groupby([*ARM, "examples_per_class"], sort=True):
        row = dict(zip([*ARM, "examples_per_class"], key))
        row |= {
            "seeds": len(part),
            "pretrained_accuracy": part.pretrained.mean(),
            "scratch_accuracy": part.scratch.mean(),
        }
        sides = (part.pretrained, part.scratch, list(part.pretrained_correct), list(part.scratch_correct))
        for scale, name in (("points", "points"), ("logodds", "logodds"), ("log_ratio", "error_ratio")):
            estimate = noise.estimate(*noise.gaps(*sides, scale, epsilon))
            values = (estimate.mean, *estimate.interval(level))
            row[name], row[f"{name}_low"], row[f"{name}_high"] = (
                np.exp(values) if name == "error_ratio" else values
            )
            row["noise"] = estimate.sources
        rows.append(row)
    columns = [
        *ARM,
        "examples_per_class",
        "seeds",
        "noise",
        "pretrained_accuracy",
        "scratch_accuracy",
        "points",
        "points_low",
        "points_high",
        "logodds",
        "logodds_low",
        "logodds_high",
        "error_ratio",
        "error_ratio_low",
        "error_ratio_high",
    ]
    return pd.DataFrame(rows, columns=columns)
