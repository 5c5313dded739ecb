"""What Ray costs on one machine: the same train stage on the local worker pool and on a local Ray instance.

One fresh copy of this repository's pipeline, params.yaml narrowed to the grid (first dataset and backbone):
the stages before training (untimed), then the train stage alone timed with `execution.backend: local`, its
cells removed, and timed again with `execution.backend: ray` (a local instance with this machine's cores; the
backend is not part of a cell's identity, so the same cells train). Printed: both walls, their difference per
cell, a bare `ray.init()` + `ray.shutdown()` (Ray's fixed start-up), and whether the two backends gave the
same test accuracies.

  python -m benchmarks.ray_overhead --sizes 1 10 --seeds 1            # a few minutes
  python -m benchmarks.ray_overhead --regimes pixels --seeds 1 2 3    # near-empty cells: scheduling alone
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.benchmark import grid_arguments, grid_params
from tests.study_repo import make_study_repo, study_env


def timed(cmd: list[str], repo: Path, log: Path) -> float:
    start = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run(cmd, cwd=repo, env=study_env(repo), stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed; see {log}")
    return time.perf_counter() - start


def accuracies(repo: Path) -> dict[str, float]:
    files = sorted((repo / "results" / "cells").rglob("*.json"))
    return {f.relative_to(repo).as_posix(): json.loads(f.read_text()).get("test_accuracy") for f in files}


def ray_startup(repo: Path) -> float:
    code = "import time, ray; t = time.perf_counter(); ray.init(); ray.shutdown(); print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ray_overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    grid_arguments(parser)
    parser.add_argument("--keep", type=Path, help="keep the working copy and logs here")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="ray-overhead-"))
    params = grid_params(args).model_dump(mode="json", exclude_none=True)
    repo = make_study_repo(work / "repo", params)
    dataset, backbone = params["study"]["datasets"][0], params["study"]["backbones"][0]
    stage = f"train@{dataset}-{backbone}"
    before = [f"prepare@{dataset}", f"subsample@{dataset}", f"features@{dataset}-{backbone}"]
    timed(["dvc", "repro", *before], repo, work / "before.log")
    walls, results = {}, {}
    for backend in ("local", "ray"):
        shutil.rmtree(repo / "results" / "cells", ignore_errors=True)
        params["execution"] = {"backend": backend}
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        walls[backend] = timed(
            ["dvc", "repro", "--single-item", "--force", stage], repo, work / f"{backend}.log"
        )
        results[backend] = accuracies(repo)
    cells = len(results["local"])
    startup = ray_startup(repo)
    extra = walls["ray"] - walls["local"]
    print(f"{stage}: {cells} cells ({', '.join(params['study']['regimes'])}), logs in {work}")
    print(f"  local pool  {walls['local']:8.1f} s")
    print(f"  local Ray   {walls['ray']:8.1f} s   ({walls['ray'] / walls['local']:.2f}x, {extra:+.1f} s)")
    print(f"  ray.init() + ray.shutdown() alone: {startup:.1f} s")
    print(f"  per cell beyond Ray's start-up: {(extra - startup) / cells * 1000:+.0f} ms")
    same = results["local"] == results["ray"]
    print(f"  test accuracies: {'the same in every cell' if same else 'DIFFER'}")


if __name__ == "__main__":
    main()
