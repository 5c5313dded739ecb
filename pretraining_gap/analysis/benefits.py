"""The three benefits of transfer (Torrey & Shavlik), read off each cell's validation curve and test accuracy:
higher start, higher slope, higher asymptote."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .curves import GROUP

MEASURES = ["start", "steps_to_90pct_odds", "area", "final"]


def steps_to_odds_fraction(steps, accuracies, epsilon: float, fraction: float = 0.9) -> int:
    """The step of the first evaluation whose odds p / (1 − p) reach `fraction` of the best odds (Kornblith et al.
    2019, Fig. 8): how fast a run gets close to its best. Accuracies are clipped to [ε, 1 − ε] (scales.clip_epsilon)
    so a perfect score has finite odds."""
    p = np.clip(np.asarray(accuracies, float), epsilon, 1 - epsilon)
    odds = p / (1 - p)
    return int(np.asarray(steps)[np.argmax(odds >= fraction * odds.max())])


def area(steps, accuracies) -> float:
    """Area under the validation curve divided by the steps it spans: the curve's mean accuracy over training."""
    steps, accuracies = np.asarray(steps, float), np.asarray(accuracies, float)
    if len(steps) < 2:
        return float(accuracies[0])
    return float(np.trapezoid(accuracies, steps) / (steps[-1] - steps[0]))


def per_cell(cells: pd.DataFrame, epsilon: float) -> pd.DataFrame:
    """One row per cell with a validation history: accuracy at the first evaluation, steps to 90% of the best odds,
    normalised area under the curve, and final test accuracy."""
    rows = []
    for _, cell in cells.iterrows():
        history = cell.get("history")
        if not isinstance(history, dict) or not history.get("val_accuracy"):
            continue
        steps, accuracy = history["step"], history["val_accuracy"]
        rows.append(
            {
                **{k: cell[k] for k in GROUP},
                "seed": cell["seed"],
                "start": accuracy[0],
                "steps_to_90pct_odds": steps_to_odds_fraction(steps, accuracy, epsilon),
                "area": area(steps, accuracy),
                "final": cell["test_accuracy"],
            }
        )
    return pd.DataFrame(rows, columns=[*GROUP, "seed", *MEASURES])


def summarise(cells: pd.DataFrame, epsilon: float) -> pd.DataFrame:
    """The benefits per arm and size, averaged over seeds; pretrained arms also get their difference to scratch."""
    table = per_cell(cells, epsilon).groupby(GROUP, dropna=False, sort=True)[MEASURES].mean().reset_index()
    scratch = table[table.regime == "scratch"].set_index(["dataset", "backbone", "examples_per_class"])[
        MEASURES
    ]
    partner = scratch.reindex(pd.MultiIndex.from_frame(table[["dataset", "backbone", "examples_per_class"]]))
    for measure in MEASURES:
        table[f"{measure}_vs_scratch"] = table[measure].to_numpy() - partner[measure].to_numpy()
    return table
