"""From cell results to curves: mean and standard error over seeds, and the pretraining gap per size."""

from __future__ import annotations

import numpy as np
import pandas as pd

GROUP = ["dataset", "backbone", "regime", "examples_per_class"]


def summarise(cells: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, backbone, regime and size: mean test accuracy, its standard error over seeds, seed count."""
    grouped = cells.groupby(GROUP)["test_accuracy"]
    table = grouped.agg(mean="mean", seeds="count", std=lambda a: a.std(ddof=1) if len(a) > 1 else np.nan)
    table["stderr"] = table["std"] / np.sqrt(table["seeds"])
    return table.drop(columns="std").reset_index()


def gaps(cells: pd.DataFrame) -> pd.DataFrame:
    """Per pretrained regime and size: mean over seeds of (pretrained − scratch), paired by seed (shared subsets)."""
    keys = ["dataset", "backbone", "examples_per_class", "seed"]
    scratch = cells[cells.regime == "scratch"].set_index(keys)["test_accuracy"]
    rows = []
    for regime, part in cells[cells.regime != "scratch"].groupby("regime"):
        paired = part.set_index(keys)["test_accuracy"] - scratch.reindex(part.set_index(keys).index)
        paired = paired.dropna().rename("gap").reset_index()
        for (dataset, backbone, size), seeds in paired.groupby(["dataset", "backbone", "examples_per_class"]):
            n = len(seeds)
            rows.append({"dataset": dataset, "backbone": backbone, "regime": regime, "examples_per_class": size,
                         "gap": seeds.gap.mean(), "stderr": seeds.gap.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan,
                         "seeds": n})
    return pd.DataFrame(rows, columns=["dataset", "backbone", "regime", "examples_per_class", "gap", "stderr", "seeds"])


def summary_metrics(summary: pd.DataFrame, gap: pd.DataFrame) -> dict:
    """Nested dict for metrics/summary.json: dataset → backbone → size → regime mean/stderr and gap."""
    out: dict = {}
    for row in summary.itertuples():
        node = out.setdefault(row.dataset, {}).setdefault(row.backbone, {}).setdefault(f"{row.examples_per_class}_per_class", {})
        node[row.regime] = {"test_accuracy": round(row.mean, 4), "stderr": _round(row.stderr)}
    for row in gap.itertuples():
        node = out[row.dataset][row.backbone][f"{row.examples_per_class}_per_class"]
        node[f"gap_{row.regime}_vs_scratch"] = {"mean": round(row.gap, 4), "stderr": _round(row.stderr)}
    return out


def _round(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 4)
