"""Validation accuracy of each learning rate in a grid, for one regime, at a few sizes and seeds.

The study's learning rates and options in params.yaml were chosen with sweeps like this one (docs/choices.md); it
reads only the validation split. Run from the study's root folder (it reads its params.yaml); `--set` varies any
other params key as well, each of its comma-separated values crossed with the learning rates.
Examples:
  pretraining-gap sweep finetune --lr 3e-4 1e-3 3e-3 --sizes 1 10
  pretraining-gap sweep finetune --lr 1e-3 --sizes 10 --set regimes.finetune.batchnorm=frozen,train
"""

from __future__ import annotations

import argparse
import copy
import itertools
from pathlib import Path

import yaml

REGIMES = ["scratch", "finetune", "chainthaw"]  # trained on images, one cell per size (depth's need a k)


def setting(text: str) -> tuple[list[str], list]:
    """'training.max_steps=100,200' -> (['training', 'max_steps'], [100, 200])."""
    key, _, values = text.partition("=")
    if not values:
        raise argparse.ArgumentTypeError(f"{text}: expected KEY=VALUE[,VALUE...]")
    return key.split("."), [yaml.safe_load(v) for v in values.split(",")]


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("regime", choices=REGIMES)
    parser.add_argument("--lr", type=float, nargs="+", required=True, help="peak learning rates to try")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10], help="examples per class")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1], help="subset seeds")
    parser.add_argument("--set", type=setting, nargs="*", default=[], metavar="KEY=V1,V2", help="params keys")
    parser.add_argument("--dataset", default="digits", help="a name listed in datasets of params.yaml")
    parser.add_argument("--backbone", default="efficientnet_lite0", help="a name listed in backbones")


def _with(raw: dict, keys: list[list[str]], values: tuple, lr: float, regime: str) -> dict:
    """A copy of the raw params with each dotted key set to its value, and the regime's learning rate."""
    trial = copy.deepcopy(raw)
    for key, value in zip(keys, values):
        block = trial
        for part in key[:-1]:
            block = block[part]
        block[key[-1]] = value
    trial["regimes"][regime]["lr"] = lr
    return trial


def main(args: argparse.Namespace) -> None:
    """One line per setting: its best validation accuracy at each size and seed."""
    from . import config
    from .data import datasets, subsets
    from .grid import Cell
    from .training import device, regimes  # torch and timm

    raw = yaml.safe_load(Path("params.yaml").read_text())
    params = config.validate(raw)
    data = datasets.prepare(args.dataset, params.datasets[args.dataset], args.sizes)
    orderings = subsets.by_seed(data, args.seeds)
    on = device.choose()
    keys = [key for key, _ in args.set]
    for values in itertools.product(*(values for _, values in args.set)):
        for lr in args.lr:
            trial = config.validate(_with(raw, keys, values, lr, args.regime))
            scores = []
            for n, seed in itertools.product(args.sizes, args.seeds):
                cell = Cell(args.dataset, args.backbone, args.regime, n, seed)
                subset = subsets.subset(orderings[seed], n)
                inputs = regimes.CellInputs.of(trial, cell, data, subset, None, on)
                outcome, _ = regimes.runner(args.regime)(inputs)
                scores.append(f"{n}/class seed {seed} {outcome.best_val_accuracy:.3f}")
            label = "".join(f" {'.'.join(k)}={v}" for k, v in zip(keys, values))
            print(f"{args.regime} lr={lr:g}{label}: validation accuracy " + ", ".join(scores), flush=True)
