"""Aggregation: read the grid's cell results and write the table, the DVC metrics, the curves and the figures."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import curves, plots, results
from .params import cells as grid_cells

COLUMNS = ["dataset", "backbone", "regime", "examples_per_class", "seed", "test_accuracy", "test_loss",
           "best_val_accuracy", "train_seconds", "images_per_second", "steps", "best_step", "budget_steps",
           "batch_size", "C", "fingerprint"]


@dataclass
class Aggregated:
    cells: int
    figures: list[Path]
    headline: dict[str, float]


def load_cells(params: dict, root: Path) -> pd.DataFrame:
    """One row per cell of the current grid; cells outside the grid (an old size, say) are left out."""
    rows, missing = [], []
    for cell in grid_cells(params):
        result = results.read(results.path(results.group_dir(root, cell), cell))
        (rows.append(result) if result else missing.append(cell.key))
    if missing:
        raise FileNotFoundError(f"{len(missing)} cells have no result under {root}: {missing[:5]}… run `dvc repro`")
    return pd.DataFrame(rows).reindex(columns=COLUMNS)


def run(params: dict, cells_root: Path, table: Path, curves_dir: Path, metrics: Path, plots_dir: Path) -> Aggregated:
    cells = load_cells(params, cells_root)
    table.parent.mkdir(parents=True, exist_ok=True)
    cells.to_csv(table, index=False)
    summary, gap = curves.summarise(cells), curves.gaps(cells)
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps(curves.summary_metrics(summary, gap), indent=1))
    figures = []
    for (dataset, backbone), part in summary.groupby(["dataset", "backbone"]):
        for regime, curve in part.groupby("regime"):
            out = curves_dir / dataset / backbone / f"{regime}.csv"
            out.parent.mkdir(parents=True, exist_ok=True)
            curve.rename(columns={"mean": "test_accuracy"})[["examples_per_class", "test_accuracy", "stderr"]].to_csv(out, index=False)
        figures.append(plots.accuracy_vs_size(
            part, f"{dataset} · {backbone}: pretrained vs scratch", plots_dir / f"{dataset}_{backbone}_accuracy.png"))
    headline = {f"{r.dataset}.{r.backbone}.gap_{r.regime}.{r.examples_per_class}_per_class": r.gap for r in gap.itertuples()}
    return Aggregated(len(cells), figures, headline)
