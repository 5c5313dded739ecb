"""DVC stage cost: parameters, FLOPs per image and measured images/s of one backbone at one dataset's resolution.

Reads params.yaml: datasets.<dataset>.resolution, backbones.<backbone>.model, training.batch_size.
"""

import json
import logging
from pathlib import Path

import interpreter  # noqa: F401  first: a Python without the project stops here, in one line

from pretraining_gap import cli

log = logging.getLogger("cost")


def arguments():
    parser = cli.parser(__doc__)
    parser.add_argument("dataset", help="name of a block under 'datasets:' in params.yaml (its resolution)")
    parser.add_argument("backbone", help="name of a block under 'backbones:' in params.yaml")
    parser.add_argument(
        "--prepared", type=Path, required=True, help="the prepared dataset (.npz), for its classes"
    )
    parser.add_argument(
        "--seconds", type=float, default=1.5, help="seconds of timed training, then of inference"
    )
    parser.add_argument("--out", type=Path, required=True, help="the .json file to write")
    return parser


def main(args) -> None:
    import numpy as np

    from pretraining_gap import config, cost
    from pretraining_gap.training import device

    params = config.load()
    with np.load(args.prepared) as f:  # reads only this member, not the images
        num_classes = len(f["class_names"])
    result = cost.measure(
        params.backbones[args.backbone],
        num_classes,
        params.datasets[args.dataset].resolution,
        params.training.batch_size,
        args.seconds,
        device.choose(),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"dataset": args.dataset, "backbone": args.backbone, **result}, indent=1))
    log.info(
        "%s at %d px: %.2f M parameters, %.3f GFLOPs/image, %.0f train / %.0f inference images/s -> %s",
        args.backbone,
        result["resolution"],
        result["parameters"] / 1e6,
        result["gflops_per_image"],
        result["train_images_per_second"],
        result["inference_images_per_second"],
        args.out,
    )


if __name__ == "__main__":
    cli.run(arguments(), main)
