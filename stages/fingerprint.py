"""DVC stage fingerprint (always run, cheap: no torch): what the other stages compute and start from, as small
files they depend on instead of raw code folders and weights files. A docstring or comment edit keeps every file;
a behaviour edit changes the file of each stage whose code imports it; a weights file replaced at the same path
changes its backbone's file.

Reads params.yaml: study.backbones, backbones.
"""

import logging
from pathlib import Path

import interpreter  # noqa: F401  first: a Python without the project stops here, in one line

from pretraining_gap import cli

log = logging.getLogger("fingerprint")


def arguments():
    parser = cli.parser(__doc__)
    parser.add_argument("scripts", type=Path, nargs="+", help="the stage scripts whose code to digest")
    parser.add_argument(
        "--out", type=Path, required=True, help="folder of the digest files (code/, weights/)"
    )
    return parser


def main(args) -> None:
    from pretraining_gap import config, fingerprints, weights

    params = config.load()
    found = {name: weights.digest(params.backbones[name]) for name in params.study.backbones}
    # the train stage reaches each regime's runner by name, through the registry
    files = fingerprints.write(args.out, args.scripts, found, named={"train": config.runner_modules()})
    log.info("%d digest files -> %s", len(files), args.out)


if __name__ == "__main__":
    cli.run(arguments(), main)
