"""Validation accuracy of each learning rate in a grid, for one regime, at a few sizes (seed 1).

The study's learning rates in params.yaml were chosen with this script; it reads only the validation split.
Run from the study's root folder (it reads its params.yaml).
Example: python -m tools.validation_sweep finetune --lr 3e-4 1e-3 3e-3 --sizes 1 10
"""

import argparse
import copy
from pathlib import Path

import yaml

from pretraining_gap import config
from pretraining_gap.data import datasets, subsets
from pretraining_gap.data.prepared import POOL
from pretraining_gap.grid import Cell


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tools.validation_sweep",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("regime", choices=["scratch", "finetune"])
    parser.add_argument("--lr", type=float, nargs="+", required=True, help="peak learning rates to try")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10], help="examples per class")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    args = parser.parse_args()
    from pretraining_gap.training import device, regimes  # torch and timm: after --help

    raw = yaml.safe_load(Path("params.yaml").read_text())
    params = config.validate(raw)
    data = datasets.prepare(args.dataset, params.datasets[args.dataset], args.sizes)
    orderings = subsets.class_orderings(data.labels, data.part(POOL), seed=1)
    on = device.choose()
    for lr in args.lr:
        trial = copy.deepcopy(raw)
        trial["regimes"][args.regime]["lr"] = lr
        trial = config.validate(trial)
        scores = []
        for n in args.sizes:
            cell = Cell(args.dataset, args.backbone, args.regime, n, 1)
            inputs = regimes.CellInputs.of(trial, cell, data, subsets.subset(orderings, n), None, on)
            outcome, _ = regimes.RUNNERS[args.regime](inputs)
            scores.append(f"{n}/class {outcome.best_val_accuracy:.3f}")
        print(f"{args.regime} lr={lr:g}: validation accuracy " + ", ".join(scores), flush=True)


if __name__ == "__main__":
    main()
