"""DVC stage forecast: LogME, LEEP, NCE and H-score of one pretrained backbone on every training subset of one
dataset (each seed and size), from its features and ImageNet head at the resolution fine-tuning trains at; seconds
of work, before any training (pretraining_gap/analysis/forecasts.py).

Reads params.yaml: backbones.<backbone>, study.seeds, study.sizes.
"""

import logging
from pathlib import Path

import interpreter  # noqa: F401  first: a Python without the project stops here, in one line

from pretraining_gap import cli

log = logging.getLogger("forecast")


def arguments():
    parser = cli.parser(__doc__)
    parser.add_argument("dataset", help="name of a block under 'datasets:' in params.yaml")
    parser.add_argument("backbone", help="name of a block under 'backbones:' in params.yaml")
    parser.add_argument("--prepared", type=Path, required=True, help="the prepared dataset (.npz)")
    parser.add_argument(
        "--subsets", type=Path, required=True, help="the subsample stage's class orderings (.json)"
    )
    parser.add_argument("--out", type=Path, required=True, help="the .csv file to write, one row per subset")
    return parser


def main(args) -> None:
    from pretraining_gap import config
    from pretraining_gap.analysis import forecasts
    from pretraining_gap.data import subsets
    from pretraining_gap.data.prepared import Prepared
    from pretraining_gap.training import backbones, device, source_outputs

    params = config.load()
    cfg = params.backbones[args.backbone]
    backbones.check(args.backbone, cfg)
    data = Prepared.load(args.prepared)
    features, logits = source_outputs.outputs(cfg, data.images, device.choose())
    if logits is None:
        log.warning("%s: its weights have no 1000-class head: LEEP and NCE are left empty", args.backbone)
    orderings = {seed: subsets.load(args.subsets, seed) for seed in params.study.seeds}
    table = forecasts.by_subset(features, logits, data.labels, orderings, params.study.sizes)
    table.insert(0, "backbone", args.backbone)
    table.insert(0, "dataset", args.dataset)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    log.info(
        "%s on %s at %d px: %d subsets in %.1f s -> %s",
        args.backbone,
        args.dataset,
        data.images.shape[1],
        len(table),
        table.seconds.sum(),
        args.out,
    )


if __name__ == "__main__":
    cli.run(arguments(), main)
