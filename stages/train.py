"""DVC stage train: every cell (regime x size x seed) of one dataset x backbone; finished cells are kept.

Reads params.yaml: study, datasets.<dataset>, backbones.<backbone>, training, regimes.
"""

import argparse
from pathlib import Path

from pretraining_gap import cli, config, execution, planning, tracking


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for key in ("dataset", "backbone"):
        parser.add_argument(key, help=f"a name listed in study.{key}s of params.yaml")
    parser.add_argument("--prepared", type=Path, required=True, help="the prepared dataset (.npz)")
    parser.add_argument("--subsets", type=Path, required=True, help="per-seed class orderings (.json)")
    parser.add_argument("--features", type=Path, required=True, help="cached backbone features (.npy)")
    parser.add_argument(
        "--out", type=Path, required=True, help="folder of result files, one sub-folder per regime"
    )
    args = parser.parse_args()
    params = config.load()
    execution.start_workers()
    if "depth" in params.study.regimes:
        from pretraining_gap.training import regimes

        regimes.check_depth(params, args.backbone)
    tracker = tracking.Tracker(params.study.name)
    inputs = planning.Inputs.load(params, args.backbone, args.prepared, args.subsets, args.features)
    plan = planning.plan(params, args.dataset, args.backbone, inputs, args.out)
    execution.run(plan, params, args.prepared, args.features, args.out, tracker)


if __name__ == "__main__":
    cli.run(main)
