"""The label budget: how many examples per class each arm needs to reach a target test accuracy, and how many
labels pretraining saves, read off the fitted learning curves (learning_curves) with their bootstrap over seeds and
test images.

For a target accuracy t and a fitted error curve e(n), the budget is the smallest n of a grid (PER_DECADE points
per decade, from the smallest measured size to the cap) from which on the predicted accuracy 1 − e(n) stays at or
above t, the same reading as the crossover's. It is "within the measured sizes", "beyond the measured sizes" (an
extrapolation from the fitted law, and said so), "beyond the cap" (inf: the fitted floor, or the law's slope,
does not get there before the cap) or "at the smallest size". Its interval: the percentiles of the refits'
budgets, inf counted as beyond every finite budget (numpy's "lower"/"higher", no interpolation).

Labels saved at a target, per pretrained arm: scratch's budget over the arm's (a ratio) and their difference in
examples per class (× the classes: images), with intervals from the paired refits (the same draws of seeds and
test images for both arms).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .learning_curves import ArmFit, Curve, predict_accuracy, refit_interval, size_grid
from .seeds import ARM, SCRATCH

# the target test accuracies (fractions). Not yet a params.yaml key: the params schema (config.py) is part of every
# cell's code identity, so a new key there retrains every cell; it moves to `analysis.targets` with the next change
# that retrains them anyway
TARGETS = (0.9, 0.95, 0.99)
WITHIN, BEYOND_MEASURED, BEYOND_CAP, AT_SMALLEST, NOT_FITTED = (
    "within the measured sizes",
    "beyond the measured sizes",
    "beyond the cap",
    "at the smallest size",
    "not fitted",
)
COLUMNS = [
    *ARM,
    "target",
    "examples_per_class",
    "low",
    "high",
    "status",
    "scratch_examples_per_class",
    "ratio",
    "ratio_low",
    "ratio_high",
    "saved_per_class",
    "saved_low",
    "saved_high",
]


def examples_needed(curve: Curve, target: float, grid: np.ndarray) -> float:
    """Smallest n of `grid` from which on (to its end) the predicted accuracy of `curve` is at least `target`
    (fraction); inf when it is not at the grid's end."""
    reached = predict_accuracy(curve, grid) >= target
    settled = np.logical_and.accumulate(reached[::-1])[::-1]
    return float(grid[np.argmax(settled)]) if settled[-1] else np.inf


def _status(n: float, smallest: float, largest: float) -> str:
    if np.isinf(n):
        return BEYOND_CAP
    if n <= smallest:
        return AT_SMALLEST
    return BEYOND_MEASURED if n > largest else WITHIN


def _budgets(fit: ArmFit, target: float, grid: np.ndarray) -> tuple[float, np.ndarray]:
    """The budget on the fit and on each refit (NaN for a failed refit)."""
    point = examples_needed(fit.curve, target, grid)
    refits = np.array([examples_needed(r, target, grid) if r is not None else np.nan for r in fit.replicates])
    return point, refits


def label_budget(fits: list[ArmFit], cap: float, level: float, targets=TARGETS) -> pd.DataFrame:
    """Per arm and target accuracy: the examples per class needed, its interval and status (module docstring), and
    for every non-scratch arm, the labels it saves against scratch: `ratio` (scratch's budget / the arm's) and
    `saved_per_class` (the difference, examples per class), each with its interval (NaN where either budget is
    beyond the cap). Columns: COLUMNS."""
    rows = []
    for group in sorted({fit.key[:2] for fit in fits}):
        arms = [fit for fit in fits if fit.key[:2] == group and fit.curve is not None]
        if not arms:
            continue
        grid = size_grid(min(fit.sizes[0] for fit in arms), cap)
        base = next((fit for fit in arms if fit.key[2] == SCRATCH), None)
        for target in targets:
            scratch_point, scratch_refits = _budgets(base, target, grid) if base else (np.nan, np.array([]))
            for fit in arms:
                point, refits = _budgets(fit, target, grid)
                row = dict(zip(ARM, fit.key)) | {"target": target, "examples_per_class": point}
                row["low"], row["high"] = refit_interval(refits, level)
                row["status"] = _status(point, fit.sizes[0], fit.sizes[-1])
                if base is not None and fit is not base and len(refits) == len(scratch_refits):
                    with np.errstate(invalid="ignore", divide="ignore"):
                        finite = np.isfinite(scratch_refits) & np.isfinite(refits)
                        ratios = np.where(finite, scratch_refits / refits, np.nan)
                        saved = np.where(finite, scratch_refits - refits, np.nan)
                    both = np.isfinite(point) and np.isfinite(scratch_point)
                    row |= {
                        "scratch_examples_per_class": scratch_point,
                        "ratio": scratch_point / point if both else np.nan,
                        "saved_per_class": scratch_point - point if both else np.nan,
                    }
                    row["ratio_low"], row["ratio_high"] = (
                        refit_interval(ratios, level) if both else (np.nan, np.nan)
                    )
                    row["saved_low"], row["saved_high"] = (
                        refit_interval(saved, level) if both else (np.nan, np.nan)
                    )
                rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)
