"""Test losses on a comparable scale: temperature scaling fitted on each cell's validation split.

A test loss measures calibration as much as fit: an overconfident model that is right as often scores a larger
cross-entropy, and scratch's models on a handful of images can score worse than a uniform guess (3.49 nats against
ln 10 = 2.30 at 1 per class on digits). Effective data transferred compares losses across arms and budgets, so each
cell's losses are first put on one footing: its logits are divided by the temperature T that minimises the
cross-entropy of its own validation split (Guo, Pleiss, Sun & Weinberger 2017, "On Calibration of Modern Neural
Networks", section 4.2), then its test loss is recomputed. T changes no prediction (accuracy stays), and test
chooses nothing. The probes' stored scores (log-probabilities, or an SVM's decision values) are scaled the same way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.special import log_softmax

LOG_T = (-5.0, 5.0)  # temperatures searched: e^−5 to e^5


def cross_entropy(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean cross-entropy (nats) of logits (N × classes) / temperature against labels (N,)."""
    scores = log_softmax(np.asarray(logits, dtype=float) / temperature, axis=1)
    return float(-scores[np.arange(len(labels)), np.asarray(labels)].mean())


def temperature(logits, labels) -> float:
    """The T in e^LOG_T minimising the cross-entropy of logits / T on (logits, labels): a bounded scalar search on
    log T (scipy.optimize.minimize_scalar)."""
    logits, labels = np.asarray(logits, dtype=float), np.asarray(labels)
    found = optimize.minimize_scalar(
        lambda log_t: cross_entropy(logits, labels, np.exp(log_t)), bounds=LOG_T, method="bounded"
    )
    return float(np.exp(found.x))


def calibrated_losses(cells: pd.DataFrame) -> pd.Series:
    """Each cell's test loss (nats) after temperature scaling on its validation split; NaN for a cell stored without
    its per-image validation and test outputs."""
    columns = ["val_logits", "val_labels", "test_logits", "test_labels"]
    outputs = cells.reindex(columns=columns)
    losses = []
    for val_logits, val_labels, test_logits, test_labels in outputs.itertuples(index=False):
        if not all(isinstance(v, list) and v for v in (val_logits, val_labels, test_logits, test_labels)):
            losses.append(np.nan)
            continue
        t = temperature(val_logits, val_labels)
        losses.append(cross_entropy(test_logits, test_labels, t))
    return pd.Series(losses, index=cells.index, dtype=float)
