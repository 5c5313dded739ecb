"""DVC stage prepare: decode a dataset once, resize it to the study resolution, fix its pool/val/test split."""

import argparse
import logging
from pathlib import Path

from pretraining_gap import backbones, cli, datasets, params

log = logging.getLogger("prepare")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset", help="name of a block under 'datasets:' in params.yaml")
    parser.add_argument("--out", type=Path, required=True, help="the .npz file to write")
    args = parser.parse_args()
    p = params.load()
    for name in p["study"]["backbones"]:  # the study's first stage: a bad backbone fails here, not hours later
        backbones.check(name, p["backbones"][name])
    cfg = p["datasets"][args.dataset]
    prepared = datasets.prepare(args.dataset, cfg, p["study"]["sizes"])
    prepared.save(args.out)
    counts = {name: len(prepared.part(code)) for name, code in
              (("pool", datasets.POOL), ("val", datasets.VAL), ("test", datasets.TEST))}
    log.info("%s: %d classes, %s images at %d px -> %s", args.dataset, len(prepared.class_names), counts,
             cfg["resolution"], args.out)


if __name__ == "__main__":
    cli.run(main)
