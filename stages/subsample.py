"""DVC stage subsample: per seed, a seeded ordering of each class's pool; size k takes the first k (nested)."""

import argparse
import logging
from pathlib import Path

from pretraining_gap import datasets, params, subsets

log = logging.getLogger("subsample")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("prepared", type=Path, help="the prepared dataset (.npz)")
    parser.add_argument("--out", type=Path, required=True, help="the .json file of per-seed class orderings")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    study = params.load()["study"]
    data = datasets.Prepared.load(args.prepared)
    orderings = {seed: subsets.class_orderings(data.labels, data.part(datasets.POOL), seed) for seed in study["seeds"]}
    subsets.check_sizes(next(iter(orderings.values())), study["sizes"], data.class_names)
    subsets.save(args.out, orderings)
    log.info("seeds %s, sizes %s examples per class -> %s", study["seeds"], study["sizes"], args.out)


if __name__ == "__main__":
    main()
