"""From cell results to per-size summaries: accuracy per arm and size, and per-layer transferability beside the
optimisation steps it was measured after.

An *arm* is one line of the study's figures: a regime, or a regime at one transfer depth k (`depth_k3`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .scales import logit, sigmoid

ARM = ["dataset", "backbone", "arm", "regime", "depth"]
GROUP = [*ARM, "examples_per_class"]


def arm_names(regime: pd.Series, depth: pd.Series) -> pd.Series:
    """`finetune`, or `depth_k3` for the depth regime at k = 3."""
    with_depth = regime + "_k" + depth.astype("Int64").astype(str)
    return regime.where(depth.isna(), with_depth)


def summarise(cells: pd.DataFrame, epsilon: float) -> pd.DataFrame:
    """Per arm and size: mean test accuracy, its standard error over seeds, seed count, and the log-odds mean
    (mean of logit(accuracy) over seeds mapped back to an accuracy; Kornblith et al. 2019). Accuracies are
    fractions."""
    grouped = cells.groupby(GROUP, dropna=False, sort=True)["test_accuracy"]
    table = grouped.agg(
        mean="mean",
        seeds="count",
        std=lambda a: a.std(ddof=1) if len(a) > 1 else np.nan,
        logodds_mean=lambda a: float(sigmoid(logit(a, epsilon).mean())),
    )
    table["stderr"] = table["std"] / np.sqrt(table["seeds"])
    return table.drop(columns="std").reset_index()


TRANSFERABILITY = [*GROUP, "group", "order", "T", "T_low", "T_high", "seeds", "steps", "best_step", "lr"]


def _rates(values: pd.Series) -> str:
    """The chosen learning rates of a size's seeds: '0.001', or '0.0003/0.001' where they differ."""
    return "/".join(f"{v:g}" for v in sorted(set(values.dropna())))


def transferability(cells: pd.DataFrame) -> pd.DataFrame:
    """Per-layer transferability T (Chen et al., arXiv 2212.00399) of the cells that recorded it, per arm, size
    and layer group: T's mean over seeds with its range over seeds (T_low, T_high; NaN with one seed), the seed
    count, the mean optimisation steps (`steps`) and kept step (`best_step`) of those cells, and their chosen
    learning rates (`lr`). T grows with a layer's weight scale and the rate, and shrinks with the steps taken, so it
    is compared between sizes only beside their steps and rates.
    `order` keeps the network order of the groups."""
    if "transferability" not in cells:
        return pd.DataFrame(columns=TRANSFERABILITY)
    rows = [
        {
            **{k: cell[k] for k in GROUP},
            "group": name,
            "order": order,
            "T": value,
            "steps": cell.get("steps"),
            "best_step": cell.get("best_step"),
            "lr": cell.get("lr"),
        }
        for _, cell in cells.iterrows()
        if isinstance(cell["transferability"], dict)
        for order, (name, value) in enumerate(cell["transferability"].items())
    ]
    table = pd.DataFrame(rows, columns=[*GROUP, "group", "order", "T", "steps", "best_step", "lr"])
    for column in ("T", "steps", "best_step", "lr"):
        table[column] = pd.to_numeric(table[column], errors="coerce")
    summary = (
        table.groupby([*GROUP, "group"], dropna=False, sort=False)
        .agg(
            order=("order", "first"),
            T=("T", "mean"),
            T_low=("T", "min"),
            T_high=("T", "max"),
            seeds=("T", "count"),
            steps=("steps", "mean"),
            best_step=("best_step", "mean"),
            lr=("lr", _rates),
        )
        .reset_index()
        .sort_values([*GROUP, "order"], ignore_index=True)
        .reindex(columns=TRANSFERABILITY)
    )
    alone = summary.seeds < 2  # one seed has no range: no T_low = T_high that reads as a certainty
    summary.loc[alone, ["T_low", "T_high"]] = np.nan
    return summary
