"""DVC stage features: frozen pretrained backbone features of every prepared image, for the feature regimes.

Reads params.yaml: backbones.<backbone>.
"""

import logging
from pathlib import Path

import interpreter  # noqa: F401  first: a Python without the project stops here, in one line

from pretraining_gap import cli

log = logging.getLogger("features")


def arguments():
    parser = cli.parser(__doc__)
    parser.add_argument("backbone", help="name of a block under 'backbones:' in params.yaml")
    parser.add_argument("prepared", type=Path, help="the prepared dataset (.npz)")
    parser.add_argument(
        "--out", type=Path, required=True, help="the .npy file of features (images x dimensions)"
    )
    return parser


def main(args) -> None:
    import numpy as np

    from pretraining_gap import config
    from pretraining_gap.data.prepared import Prepared
    from pretraining_gap.training import backbones, device, features

    cfg = config.load().backbones[args.backbone]
    backbones.check(args.backbone, cfg)
    feats = features.extract(cfg, Prepared.load(args.prepared).images, device.choose())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, feats)
    log.info("%s: %d x %d features -> %s", args.backbone, *feats.shape, args.out)


if __name__ == "__main__":
    cli.run(arguments(), main)
