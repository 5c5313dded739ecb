"""DVC stage train: every cell (regime x size x seed) of one dataset x backbone; finished cells are kept."""

import argparse
from pathlib import Path

from pretraining_gap import cli, params, study, tracking


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for key in ("dataset", "backbone"):
        parser.add_argument(key, help=f"a name listed in study.{key}s of params.yaml")
    parser.add_argument("--prepared", type=Path, required=True, help="the prepared dataset (.npz)")
    parser.add_argument("--subsets", type=Path, required=True, help="per-seed class orderings (.json)")
    parser.add_argument("--features", type=Path, required=True, help="cached backbone features (.npy)")
    parser.add_argument("--out", type=Path, required=True, help="folder of per-cell result files, one sub-folder per regime")
    args = parser.parse_args()
    p = params.load()
    study.start_workers()
    tracker = tracking.Tracker(p["study"]["name"])
    study.train(p, args.dataset, args.backbone, args.prepared, args.subsets, args.features, args.out, tracker)


if __name__ == "__main__":
    cli.run(main)
