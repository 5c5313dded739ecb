"""DVC stage train: every cell (regime x size x seed) of one dataset x backbone; finished cells are kept.

Reads params.yaml: study, datasets.<dataset>, backbones.<backbone>, training, regimes.
"""

from pathlib import Path

import interpreter  # noqa: F401  first: a Python without the project stops here, in one line

from pretraining_gap import cli


def arguments():
    parser = cli.parser(__doc__)
    for key in ("dataset", "backbone"):
        parser.add_argument(key, help=f"a name listed in study.{key}s of params.yaml")
    parser.add_argument("--prepared", type=Path, required=True, help="the prepared dataset (.npz)")
    parser.add_argument("--subsets", type=Path, required=True, help="per-seed class orderings (.json)")
    parser.add_argument("--features", type=Path, required=True, help="cached backbone features (.npy)")
    parser.add_argument(
        "--out", type=Path, required=True, help="folder of result files, one sub-folder per regime"
    )
    return parser


def main(args) -> None:
    from pretraining_gap import config, execution, planning, tracking
    from pretraining_gap.training import regimes

    params = config.load()
    execution.start_workers()
    regimes.check_backbone(params, args.backbone)
    tracker = tracking.Tracker(params.study.name)
    inputs = planning.Inputs.load(params, args.backbone, args.prepared, args.subsets, args.features)
    plan = planning.plan(params, args.dataset, args.backbone, inputs, args.out)
    execution.run(plan, params, args.prepared, args.features, args.out, tracker)


if __name__ == "__main__":
    cli.run(arguments(), main)
