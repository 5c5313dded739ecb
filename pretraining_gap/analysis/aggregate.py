"""Aggregation: read the grid's cell results and write the tables, the DVC metrics, the curves and the figures."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import results
from ..config import Params
from ..grid import ALL
from . import benefits, curves, plots

# cells.csv: every scalar field of a cell result, with the arm beside the regime (per-evaluation histories and
# per-layer values stay in the result files)
COLUMNS = [
    "arm",
    *(
        c
        for c in results.COLUMNS
        if c not in ("history", "transferability", "val_accuracy_by_lr", "traceback")
    ),
]


@dataclass
class Aggregated:
    cells: pd.DataFrame  # one row per grid cell, finished or not (status column)
    tables: dict[str, pd.DataFrame]  # name → table, also written as results/tables/<name>.csv
    metrics: dict  # metrics/summary.json
    figures: list[Path] = field(default_factory=list)

    @property
    def finished(self) -> pd.DataFrame:
        return self.cells[self.cells.status == "finished"]


def load_cells(params: Params, root: Path) -> pd.DataFrame:
    """One row per cell of the current grid (cells outside it, an old size say, are left out), one column per
    result field. A cell without a result file gets status "missing"; failed and missing cells are kept so they
    are reported, and left out of every mean."""
    rows = []
    for cell in params.cells():
        result = results.read(results.path(results.group_dir(root, cell), cell))
        if result is None:
            rows.append(
                {
                    "dataset": cell.dataset,
                    "backbone": cell.backbone,
                    "regime": cell.regime,
                    "depth": cell.depth,
                    "examples_per_class": cell.examples_per_class,
                    "seed": cell.seed,
                    "status": "missing",
                    "reason": "no result file (run `dvc repro`)",
                }
            )
        else:
            rows.append(result.model_dump())
    table = pd.DataFrame(rows).reindex(columns=results.COLUMNS)
    # a size as a number: `all` is the mean pool images per class (classes may differ), so curves and fits use it
    table["size"] = table.examples_per_class.astype(str)
    every = table.examples_per_class == ALL
    table.loc[every, "examples_per_class"] = table.train_images[every] / table.classes[every]
    table["examples_per_class"] = pd.to_numeric(table.examples_per_class)
    table["depth"] = pd.to_numeric(table["depth"], errors="coerce")
    table["test_accuracy"] = pd.to_numeric(table["test_accuracy"], errors="coerce")
    table["arm"] = curves.arm_names(table.regime, table.depth)
    return table


def incomplete(cells: pd.DataFrame) -> dict[str, str]:
    """Cell → why it has no accuracy: failed (with its reason) or missing."""
    bad = cells[(cells.status != "finished") | cells.test_accuracy.isna()]
    return {
        f"{r.dataset}/{r.backbone}/{r.arm}/{r.examples_per_class}/seed{r.seed}": (
            f"{r.status}: {r.reason if isinstance(r.reason, str) else 'no test accuracy'}"
        )
        for r in bad.itertuples()
    }


def analyse(cells: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Every table of the study from the finished cells."""
    done = cells[(cells.status == "finished") & cells.test_accuracy.notna()]
    summary, gap = curves.summarise(done), curves.gaps(done)
    effective = curves.effective_data(summary)
    return {
        "accuracy": summary,
        "gap": gap,
        "crossover": curves.crossover(gap),
        "effective_data": effective,
        "transfer_exponent": curves.transfer_exponents(effective),
        "benefits": benefits.summarise(done),
        "transferability": curves.transferability(done),
    }


def _number(value) -> float | None:
    return None if value is None or np.isnan(value) else round(float(value), 4)


def headline(cells: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> dict:
    """The compact metrics/summary.json: cell counts and incomplete cells, then per dataset → backbone → arm the
    accuracy at the smallest and largest size and, for pretrained arms, the gap with its interval there, the
    crossover, the effective data transferred at the smallest size and the exponent α. Full tables: results/tables/."""
    out: dict = {
        "cells": {
            "grid": len(cells),
            **{s: int((cells.status == s).sum()) for s in ("finished", "failed", "missing")},
        },
        "incomplete": incomplete(cells),
    }
    accuracy = tables["accuracy"]
    for (dataset, backbone, arm), part in accuracy.groupby(["dataset", "backbone", "arm"], sort=True):
        node = out.setdefault(dataset, {}).setdefault(backbone, {}).setdefault(arm, {})
        for row in _ends(part).itertuples():
            node[f"accuracy_at_{row.examples_per_class}"] = _number(row.mean)
        key = (
            (tables["gap"].dataset == dataset)
            & (tables["gap"].backbone == backbone)
            & (tables["gap"].arm == arm)
        )
        for row in _ends(tables["gap"][key]).itertuples():
            node[f"gap_at_{row.examples_per_class}"] = _number(row.gap)
            node[f"gap_at_{row.examples_per_class}_low"] = _number(row.low)
            node[f"gap_at_{row.examples_per_class}_high"] = _number(row.high)
        for row in _rows(tables["crossover"], dataset, backbone, arm):
            node["crossover"] = int(row.crossover) if row.status == "reached" else row.status
        effective = _rows(tables["effective_data"].sort_values("examples_per_class"), dataset, backbone, arm)
        if effective:
            node[f"transferred_at_{effective[0].examples_per_class}"] = _number(effective[0].transferred)
            node[f"transferred_at_{effective[0].examples_per_class}_is"] = effective[0].kind
        for row in _rows(tables["transfer_exponent"], dataset, backbone, arm):
            node["alpha"] = _number(row.alpha)
    return out


def _ends(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the smallest and the largest size (none for an empty table)."""
    table = table.sort_values("examples_per_class")
    return table.iloc[[0, -1]] if len(table) else table


def _rows(table: pd.DataFrame, dataset: str, backbone: str, arm: str) -> list:
    return list(
        table[(table.dataset == dataset) & (table.backbone == backbone) & (table.arm == arm)].itertuples()
    )


def write_tables(
    cells: pd.DataFrame, tables: dict[str, pd.DataFrame], table: Path, tables_dir: Path, curves_dir: Path
) -> None:
    """cells.csv (one row per grid cell), results/tables/<name>.csv, and one CSV per arm for `dvc plots`."""
    table.parent.mkdir(parents=True, exist_ok=True)
    cells.reindex(columns=COLUMNS).to_csv(table, index=False)
    tables_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_csv(tables_dir / f"{name}.csv", index=False)
    for (dataset, backbone, arm), curve in tables["accuracy"].groupby(["dataset", "backbone", "arm"]):
        out = curves_dir / dataset / backbone / f"{arm}.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        curve.rename(columns={"mean": "test_accuracy"})[
            ["examples_per_class", "test_accuracy", "stderr"]
        ].to_csv(out, index=False)


def read_costs(costs_dir: Path, dataset: str) -> dict[str, dict]:
    """Backbone → its cost record (results/costs/<dataset>/<backbone>.json), for the backbones that have one."""
    folder = Path(costs_dir) / dataset
    return (
        {f.stem: json.loads(f.read_text()) for f in sorted(folder.glob("*.json"))} if folder.is_dir() else {}
    )


def draw(
    cells: pd.DataFrame, tables: dict[str, pd.DataFrame], plots_dir: Path, costs_dir: Path
) -> list[Path]:
    """The figure set of each dataset × backbone, and the cost figure of each dataset with cost records."""
    figures = []
    finished = cells[cells.status == "finished"]
    for (dataset, backbone), summary in tables["accuracy"].groupby(["dataset", "backbone"], sort=True):

        def part(name, dataset=dataset, backbone=backbone):
            frame = tables[name]
            return frame[(frame.dataset == dataset) & (frame.backbone == backbone)]

        name, stem = f"{dataset} · {backbone}", plots_dir / f"{dataset}_{backbone}"
        crossing = part("crossover")
        figures.append(
            plots.accuracy_vs_size(summary, f"{name}: test accuracy", Path(f"{stem}_accuracy.png"))
        )
        if not part("gap").empty:
            figures.append(
                plots.gap_vs_size(part("gap"), crossing, f"{name}: pretraining gap", Path(f"{stem}_gap.png"))
            )
        if not part("effective_data").empty:
            figures.append(
                plots.effective_data(
                    part("effective_data"),
                    f"{name}: effective data transferred",
                    Path(f"{stem}_effective_data.png"),
                )
            )
        runs = finished[(finished.dataset == dataset) & (finished.backbone == backbone)]
        if runs.history.map(lambda h: isinstance(h, dict)).any():
            figures.append(
                plots.learning_curves(runs, f"{name}: validation curves", Path(f"{stem}_learning.png"))
            )
        if not part("transferability").empty:
            figures.append(
                plots.transferability(
                    part("transferability"),
                    f"{name}: per-layer transferability",
                    Path(f"{stem}_transferability.png"),
                )
            )
        if summary.depth.notna().any():
            figures.append(
                plots.accuracy_vs_depth(
                    summary, f"{name}: accuracy vs transfer depth", Path(f"{stem}_depth.png")
                )
            )
    for dataset, summary in tables["accuracy"].groupby("dataset", sort=True):
        costs = read_costs(costs_dir, dataset)
        if costs:
            figures.append(
                plots.accuracy_vs_cost(
                    summary,
                    costs,
                    f"{dataset}: accuracy vs inference cost",
                    plots_dir / f"{dataset}_cost.png",
                )
            )
    return figures


def run(
    params: Params,
    cells_root: Path,
    table: Path,
    tables_dir: Path,
    curves_dir: Path,
    metrics: Path,
    plots_dir: Path,
    costs_dir: Path,
) -> Aggregated:
    cells = load_cells(params, cells_root)
    tables = analyse(cells)
    write_tables(cells, tables, table, tables_dir, curves_dir)
    summary = headline(cells, tables)
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps(summary, indent=1))
    return Aggregated(cells, tables, summary, draw(cells, tables, plots_dir, costs_dir))
