"""DVC stage features: frozen pretrained backbone features of every prepared image, for the frozen regimes."""

import argparse
import logging
from pathlib import Path

import numpy as np

from pretraining_gap import backbones, cli, datasets, features, params

log = logging.getLogger("features")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("backbone", help="name of a block under 'backbones:' in params.yaml")
    parser.add_argument("prepared", type=Path, help="the prepared dataset (.npz)")
    parser.add_argument("--out", type=Path, required=True, help="the .npy file of features (images x dimensions)")
    args = parser.parse_args()
    cfg = params.load()["backbones"][args.backbone]
    backbones.check(args.backbone, cfg)  # runs before any training stage of this backbone (train depends on it)
    feats = features.extract(cfg, datasets.Prepared.load(args.prepared).images)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, feats)
    log.info("%s: %d x %d features -> %s", args.backbone, *feats.shape, args.out)


if __name__ == "__main__":
    cli.run(main)
