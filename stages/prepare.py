"""DVC stage prepare: decode a dataset once, resize it to the study resolution, fix its pool/val/test split.

Logs, and keeps in the prepared file (`Prepared.conversions`, `junk`, `unused`), how many images of each conversion
kind it converted, the junk files it skipped and every other file it did not use.

Reads params.yaml: study.backbones, study.sizes, backbones.<each>, datasets.<dataset>. As the study's first stage
it also checks every backbone's weights, so a bad backbone fails here, before any training.
"""

import logging
from pathlib import Path

import interpreter  # noqa: F401  first: a Python without the project stops here, in one line

from pretraining_gap import cli

log = logging.getLogger("prepare")


def arguments():
    parser = cli.parser(__doc__)
    parser.add_argument("dataset", help="name of a block under 'datasets:' in params.yaml")
    parser.add_argument("--out", type=Path, required=True, help="the .npz file to write")
    return parser


def main(args) -> None:
    from pretraining_gap import config
    from pretraining_gap.data import datasets
    from pretraining_gap.data.prepared import POOL, TEST, VAL
    from pretraining_gap.training import backbones

    params = config.load()
    for name in params.study.backbones:
        backbones.check(name, params.backbones[name])
    cfg = params.datasets[args.dataset]
    prepared = datasets.prepare(args.dataset, cfg, params.study.sizes)
    prepared.save(args.out)
    counts = {name: len(prepared.part(code)) for name, code in (("pool", POOL), ("val", VAL), ("test", TEST))}
    log.info(
        "%s: %d classes, %s images at %d px -> %s",
        args.dataset,
        len(prepared.class_names),
        counts,
        cfg.resolution,
        args.out,
    )
    kinds = ", ".join(f"{kind} {count}" for kind, count in prepared.conversions.items())
    log.info("%s: images converted to 8-bit RGB, by kind (README): %s", args.dataset, kinds)
    if prepared.junk:
        log.info("%s: junk skipped (hidden files, Thumbs.db, ...): %d", args.dataset, prepared.junk)
    if prepared.unused:
        log.warning(
            "%s: files not used (%d):%s",
            args.dataset,
            len(prepared.unused),
            "".join(f"\n    {file}: {reason}" for file, reason in prepared.unused),
        )


if __name__ == "__main__":
    cli.run(arguments(), main)
