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
from scipy import stats

from .seeds import ARM, SCRATCH, paired


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


def t_interval(values, level: float) -> tuple[float, float, float]:
    """(mean, low, high): Student t interval for the mean of independent values (n − 1 degrees of freedom);
    low and high are NaN with a single value."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, np.nan, np.nan
    half = stats.t.ppf((1 + level) / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return mean, mean - half, mean + half


def gap_scales(cells: pd.DataFrame, level: float, epsilon: float, scratch: str = SCRATCH) -> pd.DataFrame:
    """Per non-scratch arm and size, the gap to scratch on the three scales with paired t intervals over seeds
    (per size, uncorrected: descriptive; decisions are `equivalence`'s job).

    `cells`: one row per finished cell (dataset, backbone, regime, arm, examples_per_class, seed, test_accuracy).
    Returns columns dataset, backbone, regime, arm, examples_per_class, seeds, pretrained_accuracy,
    scratch_accuracy (means, fractions), points, points_low, points_high (fractions), logodds, logodds_low,
    logodds_high (nats of odds), error_ratio, error_ratio_low, error_ratio_high (scratch errors per pretrained error).
    """
    pairs = paired(cells, "test_accuracy", scratch)
    pairs = pairs.assign(
        points=pairs.pretrained - pairs.scratch,
        logodds=logit(pairs.pretrained, epsilon) - logit(pairs.scratch, epsilon),
        log_ratio=np.log(np.clip(1 - pairs.scratch, epsilon, 1))
        - np.log(np.clip(1 - pairs.pretrained, epsilon, 1)),
    )
    rows = []
    for key, part in pairs.groupby([*ARM, "examples_per_class"], sort=True):
        row = dict(zip([*ARM, "examples_per_class"], key))
        row |= {
            "seeds": len(part),
            "pretrained_accuracy": part.pretrained.mean(),
            "scratch_accuracy": part.scratch.mean(),
        }
        for scale in ("points", "logodds"):
            row[scale], row[f"{scale}_low"], row[f"{scale}_high"] = t_interval(part[scale], level)
        row["error_ratio"], row["error_ratio_low"], row["error_ratio_high"] = np.exp(
            t_interval(part.log_ratio, level)
        )
        rows.append(row)
    columns = [
        *ARM,
        "examples_per_class",
        "seeds",
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
