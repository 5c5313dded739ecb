"""DVC stage subsample: per seed, a seeded ordering of each class's pool; size k takes the first k (nested).

Reads params.yaml: study.seeds, study.sizes, datasets.<dataset>.
"""

import logging
from pathlib import Path

import interpreter  # noqa: F401  first: a Python without the project stops here, in one line

from pretraining_gap import cli

log = logging.getLogger("subsample")


def arguments():
    parser = cli.parser(__doc__)
    parser.add_argument("prepared", type=Path, help="the prepared dataset (.npz)")
    parser.add_argument("--out", type=Path, required=True, help="the .json file of per-seed class orderings")
    return parser


def main(args) -> None:
    from pretraining_gap import config
    from pretraining_gap.data import datasets, subsets
    from pretraining_gap.data.prepared import Prepared

    params = config.load()
    study, name = params.study, args.prepared.stem
    data = Prepared.load(args.prepared)
    # prepare checked the sizes too, but it does not rerun when only study.sizes grows
    datasets.check_class_sizes(
        name, params.datasets[name], data.labels, data.split, data.class_names, study.sizes, data.official
    )
    subsets.save(args.out, subsets.by_seed(data, study.seeds))
    log.info("seeds %s, sizes %s examples per class -> %s", study.seeds, study.sizes, args.out)


if __name__ == "__main__":
    cli.run(arguments(), main)
