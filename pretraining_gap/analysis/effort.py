"""How much tuning each arm got, beside what it reached: the check that the one selection procedure
(training/selection.py) treated the arms alike, and the winner's curse of each arm's choice on validation."""

from __future__ import annotations

import pandas as pd

COLUMNS = {  # cells.csv column -> the table's heading (means over the finished cells of the arm)
    "candidates": "first-rung candidates",
    "tuning_steps": "tuning steps per cell",
    "budget_steps": "kept run's budget (steps)",
    "train_seconds": "cell-seconds per cell",
    "best_val_accuracy": "validation accuracy",
    "test_accuracy": "test accuracy",
    "winners_curse": "winner's curse (points)",
}


def table(cells: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, backbone and arm: its finished cells, and the means of `COLUMNS` over them (the winner's curse
    in points: validation's first half minus its second, for the choice made on the first; cells that record it)."""
    done = cells[cells.status == "finished"].copy()
    present = [c for c in COLUMNS if c in done]
    for column in present:
        done[column] = pd.to_numeric(done[column], errors="coerce")
    if "winners_curse" in done:
        done["winners_curse"] = done.winners_curse * 100
    keys = ["dataset", "backbone", "arm"]
    grouped = done.groupby(keys, sort=False)
    found = grouped[present].mean().round(3)
    found.insert(0, "cells", grouped.size())
    return found.reset_index().rename(columns=COLUMNS)


def moved(convergence: pd.DataFrame, margin: float) -> list[str]:
    """The arms whose validation accuracy moved by more than `margin` when their chosen configuration trained at
    twice its budget (`make convergence-check`, pretraining_gap/convergence.py), each as a phrase."""
    if convergence.empty:
        return []
    far = convergence[convergence.val_change.abs() > margin]
    return [
        f"{row.arm} at {row.examples_per_class} per class: {row.val_change * 100:+.1f} points"
        for row in far.itertuples(index=False)
    ]
