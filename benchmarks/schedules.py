"""One run per candidate up the ladder (a cosine cycle per rung, warm-restarted: loop.cycles) against separate cosine
runs, one per budget: validation accuracy at each budget, and the optimisation steps each way costs.

Each arm trains one candidate (its options given below) at each size, seed 1, one thread, on params.yaml's digits
split; the ladder's run through the selection procedure (training/selection.py) with that one candidate, climbing
while validation gains, and the cosine runs with a one-rung ladder each (warm-up, then cosine decay to 0). Reads
validation only. Example (about 20 minutes on one core):
python -m benchmarks.schedules --sizes 10 50 --ladder 1 2 4 8
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch
import yaml

from pretraining_gap import config
from pretraining_gap.data import datasets, subsets
from pretraining_gap.data.prepared import POOL
from pretraining_gap.grid import Cell
from pretraining_gap.training import features, regimes

ARMS = {  # an arm's one candidate: the options its params block gets
    "scratch": ("scratch", {"lr": [0.01], "group_norm_lr": None}),  # batch norm
    "finetune": ("finetune", {"lr": [0.001], "batchnorm": ["frozen"]}),
    "frozen": ("frozen", {"lr": [0.001], "dropout": [0.2]}),
}


def one(
    raw: dict, regime: str, block: dict, ladder: list[float], data, train_idx, feats, size: int, **training
):
    """Validation accuracy at each rung's steps, the steps and the seconds of one candidate's run (`training`:
    more of the training block's keys)."""
    trial = copy.deepcopy(raw)
    trial["regimes"][regime].update(block)
    trial["training"].update(ladder=ladder, **training)
    trial["study"]["regimes"] = [regime]
    params = config.validate(trial)
    cell = Cell("digits", "efficientnet_lite0", regime, size, 1)
    inputs = regimes.CellInputs.of(params, cell, data, train_idx, feats, torch.device("cpu"))
    outcome, _ = regimes.runner(regime)(inputs)
    (entry,) = outcome.trace
    return {r["steps"]: r["val_accuracy"] for r in entry["rungs"][1:]}, entry["steps"], outcome.train_seconds


def digits():
    """params.yaml as read, digits prepared by it, seed 1's class orderings and Lite0's frozen features; one thread."""
    torch.set_num_threads(1)
    raw = yaml.safe_load(open("params.yaml"))
    params = config.validate(raw)
    data = datasets.prepare("digits", params.datasets["digits"], params.study.sizes)
    orders = subsets.class_orderings(data.labels, data.part(POOL), 1)
    feats = features.extract(params.backbones["efficientnet_lite0"], data.images, torch.device("cpu"))
    return raw, data, orders, feats


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--ladder", type=float, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    args = parser.parse_args()
    raw, data, orders, feats = digits()
    print(f"{'arm':14} {'per class':>9}  {'ladder (one run)':40}  {'cosine (one run per budget)':40}")
    for size in args.sizes:
        train_idx = np.sort(np.concatenate([order[:size] for order in orders.values()]))
        for name in args.arms:
            regime, block = ARMS[name]
            cycles, steps, seconds = one(raw, regime, block, args.ladder, data, train_idx, feats, size)
            cosine, cost, cosine_seconds = {}, 0, 0.0
            for m in args.ladder:
                found, used, took = one(raw, regime, block, [m], data, train_idx, feats, size)
                cosine |= found
                cost, cosine_seconds = cost + used, cosine_seconds + took
            left = " / ".join(f"{a:.3f}" for a in cycles.values()) + f" ({steps} steps, {seconds:.0f} s)"
            right = (
                " / ".join(f"{a:.3f}" for a in cosine.values()) + f" ({cost} steps, {cosine_seconds:.0f} s)"
            )
            print(f"{name:14} {size:9}  {left:40}  {right:40}", flush=True)


if __name__ == "__main__":
    main()
