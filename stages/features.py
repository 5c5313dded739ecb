"""DVC stage features: frozen pretrained backbone features of every prepared image, for the feature regimes.

Reads params.yaml: backbones.<backbone>.
"""

import argparse
import logging
from pathlib import Path

import numpy as np

from pretraining_gap import cli, config
from pretraining_gap.data.prepared import Prepared

log = logging.getLogger("features")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("backbone", help="name of a block under 'backbones:' in params.yaml")
    parser.add_argument("prepared", type=Path, help="the prepared dataset (.npz)")
    parser.add_argument(
        "--out", type=Path, required=True, help="the .npy file of features (images x dimensions)"
    )
    args = parser.parse_args()
    cfg = config.load().backbones[args.backbone]
    from pretraining_gap.training import backbones, device, features

    backbones.check(args.backbone, cfg)
    feats = features.extract(cfg, Prepared.load(args.prepared).images, device.choose())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, feats)
    log.info("%s: %d x %d features -> %s", args.backbone, *feats.shape, args.out)


if __name__ == "__main__":
    cli.run(main)
