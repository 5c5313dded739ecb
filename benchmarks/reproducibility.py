"""Do reruns of a cell agree, and what makes them differ? Trains the same cells of the default study (params.yaml)
three ways and prints, per cell and way, the test accuracy, the kept step and a digest of the validation curve:

  workers     in a pool of two workers, one thread each: how a study trains its cells on a CPU
  alone       here, as `parallel.run` trains a single cell (one thread, as in a worker)
  N threads   here with torch's default thread count (N = this machine's cores): how a single cell was trained
              before `parallel.one_thread`, and how the plain way (benchmarks/plain_way.py) trains every cell

Two ways that print the same digest trained bit for bit the same cell. Example (a few minutes on 2 cores):
python -m benchmarks.reproducibility finetune:1:1 finetune:1:2 scratch:1:1
"""

import argparse
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from pretraining_gap import config, execution, parallel
from pretraining_gap.data import datasets, subsets
from pretraining_gap.data.prepared import POOL
from pretraining_gap.grid import Cell
from pretraining_gap.training import features


def digest(result) -> str:
    curve = {k: v for k, v in (result.history or {}).items() if k != "time_ms"}
    return hashlib.sha256(json.dumps([result.test_accuracy, curve]).encode()).hexdigest()[:10]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("cells", nargs="+", help="regime:examples_per_class:seed, e.g. finetune:1:1")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    args = parser.parse_args()
    params = config.load()
    cells = [
        Cell(args.dataset, args.backbone, r, int(k), int(s)) for r, k, s in (c.split(":") for c in args.cells)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = datasets.prepare(args.dataset, params.datasets[args.dataset], params.study.sizes)
        data.save(tmp / "data.npz")
        seeds = sorted({c.seed for c in cells})
        subsets.save(
            tmp / "subsets.json", {s: subsets.class_orderings(data.labels, data.part(POOL), s) for s in seeds}
        )
        on_features = any(params.regime(c.regime).on_features for c in cells)
        feats = (
            features.extract(params.backbones[args.backbone], data.images, torch.device("cpu"))
            if on_features
            else np.zeros((1, 1), np.float32)
        )
        np.save(tmp / "features.npy", feats)
        jobs = [
            execution.Job(c, params, tmp / "data.npz", tmp / "subsets.json", tmp / "features.npy", "")
            for c in cells
        ]
        threads = torch.get_num_threads()
        ways = {
            "workers": {job.cell: result for job, result in parallel.run(execution.train_cell, jobs, 2)},
            "alone": {job.cell: next(parallel.run(execution.train_cell, [job], 1))[1] for job in jobs},
            f"{threads} threads": {job.cell: execution.train_cell(job) for job in jobs},
        }
    print(f"{'cell':<50}" + "".join(f"{way:>28}" for way in ways))
    for cell in cells:
        results = [ways[way][cell] for way in ways]
        print(
            f"{cell.run_name:<50}"
            + "".join(f"{r.test_accuracy:>9.3f} step {r.best_step:>4} {digest(r)}" for r in results)
        )


if __name__ == "__main__":
    main()
