"""From cell results to curves: accuracy per size, the paired pretraining gap, its crossover, effective data.

An *arm* is one line of the study's figures: a regime, or a regime at one transfer depth k (`depth_k3`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

# Accuracies are clipped to [ε, 1 − ε] before taking log-odds, so 0 and 1 stay finite. ε = 1/(2N) for a test set of
# N = 500 images (digits: 50 per class × 10 classes); a larger test set would allow a smaller ε.
EPSILON = 1e-3
LEVEL = 0.95  # confidence of the gap intervals
ARM = ["dataset", "backbone", "arm", "regime", "depth"]
GROUP = [*ARM, "examples_per_class"]


def arm_names(regime: pd.Series, depth: pd.Series) -> pd.Series:
    """`finetune`, or `depth_k3` for the depth regime at k = 3."""
    with_depth = regime + "_k" + depth.astype("Int64").astype(str)
    return regime.where(depth.isna(), with_depth)


def logit(accuracy, epsilon: float = EPSILON):
    p = np.clip(np.asarray(accuracy, dtype=float), epsilon, 1 - epsilon)
    return np.log(p / (1 - p))


def sigmoid(x):
    return 1 / (1 + np.exp(-np.asarray(x, dtype=float)))


def summarise(cells: pd.DataFrame, epsilon: float = EPSILON) -> pd.DataFrame:
    """Per arm and size: mean test accuracy, its standard error over seeds, seed count, and the log-odds mean
    (mean of logit(accuracy) over seeds mapped back to an accuracy; Kornblith et al. 2019)."""
    grouped = cells.groupby(GROUP, dropna=False, sort=True)["test_accuracy"]
    table = grouped.agg(
        mean="mean",
        seeds="count",
        std=lambda a: a.std(ddof=1) if len(a) > 1 else np.nan,
        logodds_mean=lambda a: float(sigmoid(logit(a, epsilon).mean())),
    )
    table["stderr"] = table["std"] / np.sqrt(table["seeds"])
    return table.drop(columns="std").reset_index()


def gaps(cells: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """Per pretrained arm and size: mean over seeds of (pretrained − scratch), paired by seed (the subsets are shared),
    its standard error and a t interval with n − 1 degrees of freedom (none with a single seed)."""
    keys = ["dataset", "backbone", "examples_per_class", "seed"]
    scratch = cells[cells.regime == "scratch"].set_index(keys)["test_accuracy"]
    pretrained = cells[cells.regime != "scratch"]
    paired = pretrained.assign(
        gap=pretrained.test_accuracy.to_numpy()
        - scratch.reindex(pd.MultiIndex.from_frame(pretrained[keys])).to_numpy()
    )
    rows = []
    for group, part in paired.dropna(subset=["gap"]).groupby(GROUP, dropna=False, sort=True):
        n, mean = len(part), part.gap.mean()
        stderr = part.gap.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
        half = stats.t.ppf((1 + level) / 2, n - 1) * stderr if n > 1 else np.nan
        rows.append(
            {
                **dict(zip(GROUP, group)),
                "gap": mean,
                "stderr": stderr,
                "low": mean - half,
                "high": mean + half,
                "seeds": n,
            }
        )
    return pd.DataFrame(rows, columns=[*GROUP, "gap", "stderr", "low", "high", "seeds"])


def crossover(gap: pd.DataFrame) -> pd.DataFrame:
    """Per pretrained arm: the smallest size from which on (that size and every larger one studied) the gap's interval
    reaches down to 0 — scratch has caught up, or overtaken. `status` says "reached", "not reached" (within the
    studied sizes) or "no interval" (one seed, or a size without a pair)."""
    rows = []
    for group, part in gap.groupby(ARM, dropna=False, sort=True):
        part = part.sort_values("examples_per_class")
        size, status = np.nan, "not reached"
        if part.low.isna().any():
            status = "no interval"
        else:
            caught_up = (part.low <= 0).to_numpy()
            settled = np.flatnonzero(
                np.logical_and.accumulate(caught_up[::-1])[::-1]
            )  # true from here to the end
            if len(settled):
                size, status = part.examples_per_class.iloc[settled[0]], "reached"
        rows.append({**dict(zip(ARM, group)), "crossover": size, "status": status})
    return pd.DataFrame(rows, columns=[*ARM, "crossover", "status"])


def scratch_reaches(
    sizes: np.ndarray, accuracies: np.ndarray, target: float, epsilon: float = EPSILON
) -> tuple[float, str]:
    """Examples per class at which the scratch curve first reaches `target` accuracy, interpolated linearly in
    (log n, logit accuracy) between studied sizes. Returns (n_E, "estimate"), or the studied end with
    "upper bound" (already there at the smallest size) or "lower bound" (never there within the sizes)."""
    x, y, goal = np.log(sizes), logit(accuracies, epsilon), float(logit(target, epsilon))
    if y[0] >= goal:
        return float(sizes[0]), "upper bound"
    for i in range(len(x) - 1):
        if y[i] < goal <= y[i + 1]:
            return float(np.exp(x[i] + (goal - y[i]) / (y[i + 1] - y[i]) * (x[i + 1] - x[i]))), "estimate"
    return float(sizes[-1]), "lower bound"


def effective_data(summary: pd.DataFrame, epsilon: float = EPSILON) -> pd.DataFrame:
    """Effective data transferred (Hernandez et al. 2021) per pretrained arm and size n: D_T = n_E − n, n_E being the
    examples per class scratch needs for the pretrained arm's accuracy (both as log-odds means over seeds). A bound
    (see `scratch_reaches`) makes D_T a bound of the same kind."""
    rows = []
    for _, part in summary.groupby(["dataset", "backbone"], sort=True):
        scratch = part[part.regime == "scratch"].sort_values("examples_per_class")
        if scratch.empty:
            continue
        sizes, accuracies = scratch.examples_per_class.to_numpy(float), scratch.logodds_mean.to_numpy()
        for row in part[part.regime != "scratch"].itertuples():
            n_e, kind = scratch_reaches(sizes, accuracies, row.logodds_mean, epsilon)
            rows.append(
                {
                    **{k: getattr(row, k) for k in GROUP},
                    "n_effective": n_e,
                    "transferred": n_e - row.examples_per_class,
                    "kind": kind,
                }
            )
    return pd.DataFrame(rows, columns=[*GROUP, "n_effective", "transferred", "kind"])


def power_law(sizes, transferred) -> float:
    """Exponent α of D_T ∝ n^α, by least squares in log-log space; needs three or more positive estimates."""
    sizes, transferred = np.asarray(sizes, float), np.asarray(transferred, float)
    keep = transferred > 0
    if keep.sum() < 3:
        return np.nan
    return float(np.polyfit(np.log(sizes[keep]), np.log(transferred[keep]), 1)[0])


def transfer_exponents(effective: pd.DataFrame) -> pd.DataFrame:
    """α per pretrained arm, from the sizes where D_T is an estimate rather than a bound."""
    rows = [
        {**dict(zip(ARM, group)), "alpha": power_law(part.examples_per_class, part.transferred)}
        for group, part in effective[effective.kind == "estimate"].groupby(ARM, dropna=False, sort=True)
    ]
    return pd.DataFrame(rows, columns=[*ARM, "alpha"])


def transferability(cells: pd.DataFrame) -> pd.DataFrame:
    """Per-layer transferability T (arXiv 2212.00399) of fine-tuned cells, averaged over seeds per arm, size and
    layer group; `order` keeps the network order of the groups."""
    if "transferability" not in cells:
        return pd.DataFrame(columns=[*GROUP, "group", "order", "T"])
    rows = [
        {**{k: cell[k] for k in GROUP}, "group": name, "order": order, "T": value}
        for _, cell in cells.iterrows()
        if isinstance(cell["transferability"], dict)
        for order, (name, value) in enumerate(cell["transferability"].items())
    ]
    table = pd.DataFrame(rows, columns=[*GROUP, "group", "order", "T"])
    return (
        table.groupby([*GROUP, "group"], dropna=False, sort=False)
        .agg(order=("order", "first"), T=("T", "mean"))
        .reset_index()
        .sort_values([*GROUP, "order"], ignore_index=True)
    )
