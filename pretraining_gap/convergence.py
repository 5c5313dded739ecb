"""Convergence as evidence: each gradient arm's chosen configuration trained again at twice its budget, at the
study's smallest and largest size, and whether validation moves by more than the margin.

Reads a finished study (`dvc repro`): params.yaml, the prepared data, subsets and features under data/, and the
result files under results/cells/. For the first seed of each dataset x backbone, each gradient arm's cell at the
smallest and the largest size: its chosen options alone, trained by the same selection procedure on a one-rung
ladder of twice the budget its kept run reached (one cosine cycle). Writes results/convergence.csv (one row per
cell: the budget, validation accuracy then and now, the change) and prints it; the report lists the arms whose
validation moved by more than `analysis.margin`. Outside the default study's time: `make convergence-check`
(`pretraining-gap convergence`, then the report again).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

OUT = Path("results/convergence.csv")


def narrowed(raw: dict, regime: str, options: dict, multiplier: float) -> dict:
    """params.yaml's raw dict with the regime's block cut to one candidate (`options`) and a one-rung ladder."""
    from .config import REGIMES

    trial = yaml.safe_load(yaml.safe_dump(raw))
    block = trial["regimes"][regime]
    if regime == "scratch":
        key = "lr" if options["norm"] == "batch" else "group_norm_lr"
        block.update(lr=None, group_norm_lr=None)
        block[key] = [options["lr"]]
    else:
        block.update({k: [v] if isinstance(block.get(k), list) else v for k, v in options.items()})
    trial["training"]["ladder"] = [multiplier]
    trial["study"]["regimes"] = [name for name in trial["study"]["regimes"] if not REGIMES[name].gradient]
    trial["study"]["regimes"].append(regime)
    return trial


def check(raw: dict, dataset: str, backbone: str) -> list[dict]:
    """The rows of one dataset x backbone."""
    import torch

    from . import config, planning, results
    from .grid import ALL
    from .training import device, loop, regimes

    params = config.validate(raw)
    data = Path("data")
    inputs = planning.Inputs.load(
        params,
        backbone,
        data / "prepared" / f"{dataset}.npz",
        data / "subsets" / f"{dataset}.json",
        data / "features" / dataset / f"{backbone}.npy",
    )
    sizes = sorted(params.study.sizes, key=lambda n: np.inf if n == ALL else n)
    rows = []
    for cell in params.cells(dataset, backbone):
        ends = (sizes[0], sizes[-1])
        if (
            not params.regime(cell.regime).gradient
            or cell.depth is not None
            or cell.seed != params.study.seeds[0]
        ):
            continue  # depth-k's cells are left out: one per k
        if cell.examples_per_class not in ends:
            continue
        found = results.read(results.path(Path("results/cells") / dataset / backbone, cell))
        if found is None or found.status != "finished":
            continue
        train_idx = inputs.train_idx(cell)
        base = loop.budget(len(train_idx), params.training).steps
        options = {k: getattr(found, k) for k in params.regime(cell.regime).candidate_options()[0]}
        trial = config.validate(narrowed(raw, cell.regime, options, 2 * found.budget_steps / base))
        cell_inputs = regimes.CellInputs.of(
            trial, cell, inputs.data, train_idx, inputs.features, device.choose()
        )
        torch.manual_seed(cell.seed)
        again, _ = regimes.runner(cell.regime)(cell_inputs)
        rows.append(
            {
                "dataset": dataset,
                "backbone": backbone,
                "arm": cell.arm,
                "examples_per_class": cell.examples_per_class,
                "seed": cell.seed,
                "options": " ".join(f"{k}={v}" for k, v in options.items()),
                "budget_steps": found.budget_steps,
                "val_accuracy": found.best_val_accuracy,
                "twice_budget_steps": again.budget_steps,
                "twice_val_accuracy": again.best_val_accuracy,
                "val_change": round(again.best_val_accuracy - found.best_val_accuracy, 4),
                "moved": abs(again.best_val_accuracy - found.best_val_accuracy) > params.analysis.margin,
            }
        )
    return rows


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=OUT, help="the table to write (CSV)")


def main(args: argparse.Namespace) -> None:
    from . import config

    raw = yaml.safe_load(Path("params.yaml").read_text())
    study = config.validate(raw).study
    rows = [row for d in study.datasets for b in study.backbones for row in check(raw, d, b)]
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.to_string(index=False))
    print(f"-> {args.out}")
