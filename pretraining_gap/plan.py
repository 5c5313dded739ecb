"""Before anything runs, per dataset x backbone: the cells that would train (and why: new, or which of code,
config, data, weights, versions changed) and those kept, with the training time estimated from the cost stage's
measurement. No training, no MLflow.

Run from the study's folder after `dvc repro prepare subsample features`: pretraining-gap plan [--params FILE]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="the study's params file")


def main(args: argparse.Namespace) -> None:
    from . import config, planning  # torch and timm (the regimes' code), never MLflow

    logging.getLogger(planning.__name__).setLevel(logging.WARNING)  # printed below, one line per cell
    params = config.load(args.params)
    for dataset in params.study.datasets:
        for backbone in params.study.backbones:
            print("\n".join(planning.preview(params, dataset, backbone)), flush=True)
