"""Validation accuracy of each learning rate in a grid, for one regime, at a few sizes (seed 1).

The study's learning rates in params.yaml were chosen with this script; it reads only the validation split.
Example: python tools/validation_sweep.py finetune --lr 3e-4 1e-3 3e-3 --sizes 1 10
"""

import argparse
import copy

from pretraining_gap import datasets, params, regimes, subsets


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("regime", choices=["scratch", "finetune"])
    parser.add_argument("--lr", type=float, nargs="+", required=True, help="peak learning rates to try")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10], help="examples per class")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    args = parser.parse_args()
    p = params.load()
    data = datasets.prepare(args.dataset, p["datasets"][args.dataset], args.sizes)
    orderings = subsets.class_orderings(data.labels, data.part(datasets.POOL), seed=1)
    for lr in args.lr:
        trial = copy.deepcopy(p)
        trial["regimes"][args.regime]["lr"] = lr
        scores = []
        for n in args.sizes:
            cell = params.Cell(args.dataset, args.backbone, args.regime, n, 1)
            result, _ = regimes.RUNNERS[args.regime](cell, trial, data, subsets.subset(orderings, n))
            scores.append(f"{n}/class {result['best_val_accuracy']:.3f}")
        print(f"{args.regime} lr={lr:g}: validation accuracy " + ", ".join(scores), flush=True)


if __name__ == "__main__":
    main()
