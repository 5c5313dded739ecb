"""DVC stage prepare: decode a dataset once, resize it to the study resolution, fix its pool/val/test split.

Logs, and keeps in the prepared file (`Prepared.conversions`, `junk`, `unused`, `duplicates`, `merged`), how many
images of each conversion kind it converted, the junk files it skipped, every other file it did not use, the duplicate
images it found before the split and what it did with them (docs/duplicates.md), and the class folders it merged
because their names differ only in Unicode normalisation.

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

    params = config.load()  # before torch is imported: a mistake in params.yaml is named at once

    from pretraining_gap.data import datasets
    from pretraining_gap.data.duplicates import Report
    from pretraining_gap.data.prepared import POOL, TEST, VAL
    from pretraining_gap.training import backbones

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
    log.info("%s: images converted to 8-bit RGB, by kind (docs/data.md): %s", args.dataset, kinds)
    found = Report(**prepared.duplicates)
    log.info("%s: %s", args.dataset, found.line())
    for group in found.conflicts:  # duplicates: keep, the only setting that lets them through
        log.warning(
            "%s: one image under two classes: %s", args.dataset, " = ".join(f"{f} ({c})" for f, c in group)
        )
    for name, folders in prepared.merged:
        log.info(
            "%s: class folders %s differ only in Unicode normalisation: merged as one class %r (NFC)",
            args.dataset,
            " and ".join(ascii(folder) for folder in folders),
            name,
        )
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
