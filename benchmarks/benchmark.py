"""This project, the project without fusion and the plain way on the same grid, in one run: wall time, ratio,
accuracies, images/s, GFLOP/s.

The project: a temporary copy of this repository (git + DVC), params.yaml narrowed to the grid, timed `dvc repro`
from empty: prepare, subsample, features, train, aggregate, MLflow logging, every process start-up included.
Unfused: the same with `training.fused_members: 1`, each setting of a cell's grid trained alone, one after
another (the same protocol; the same per-layer forms, fusion.py). The plain way (benchmarks/plain_way.py): PNG files
in an ImageFolder layout, written once (timed separately); then per cell a new Python process with timm,
torchvision ImageFolder + PIL transforms and a 2-worker DataLoader decoding every image every epoch (workers kept
across epochs); `linear` trains a linear head by gradient through the frozen backbone; one learning rate per cell
(the middle of the regime's grid), where the project tunes each cell.

All use params.yaml's budgets, optimiser and schedule, and the same subsets, splits,
sizes, seeds and regimes. Achieved GFLOP/s = FLOPs of one training step (torch.utils.flop_counter) x steps / train
seconds, against the fp32 matrix-multiply rate measured here (2048^2 torch.matmul, before and after the run).
The machine may be shared: absolute figures are provisional; the sides run back to back in one run.

  python -m benchmarks.benchmark                                  # the default study grid, all three sides
  python -m benchmarks.benchmark --sides project unfused --regimes scratch finetune --sizes 1 10 50
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

from pretraining_gap import config
from pretraining_gap.config import Params
from tests.study_repo import ROOT, make_study_repo, study_env, write_params


def matmul_gflops(n: int = 2048, seconds: float = 3.0) -> float:
    """fp32 rate of a timed torch.matmul loop, all threads torch uses by default."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.matmul(a, b)
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def step_flops_per_image(params: Params, regime: str) -> float:
    """FLOPs of one training step per image: 3x the forward pass (forward + backward) when the backbone trains,
    the forward pass alone when it is frozen (the head's own FLOPs are negligible). torch's FlopCounterMode counts
    the backward pass of a depthwise convolution as a dense one, about 14x too many for EfficientNet here."""
    forward = forward_flops_per_image(params)
    return forward if config.REGIMES[regime].on_features else 3 * forward


def forward_flops_per_image(params: Params) -> float:
    import timm
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    res = params.datasets[params.study.datasets[0]].resolution
    model = timm.create_model(params.backbones[params.study.backbones[0]].model, num_classes=0).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(8, 3, res, res))
    return counter.get_total_flops() / 8


def grid_arguments(parser: argparse.ArgumentParser, regimes: list[str] | None = None) -> None:
    """--sizes, --seeds and --regimes (narrowed to `regimes` when given), each defaulting to params.yaml's."""
    parser.add_argument("--sizes", type=int, nargs="+", help="examples per class (default: params.yaml's)")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default: params.yaml's)")
    parser.add_argument("--regimes", nargs="+", choices=regimes, help="regimes (default: params.yaml's)")


def grid_params(args) -> Params:
    """params.yaml with the grid narrowed by the command line, checked as the study checks it."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["study"].update(
        sizes=args.sizes or raw["study"]["sizes"],
        seeds=args.seeds or raw["study"]["seeds"],
        regimes=args.regimes or raw["study"]["regimes"],
    )
    return config.validate(raw)


def run_project(params: Params, work: Path, name: str = "project") -> tuple[float, list[dict]]:
    """Timed `dvc repro` from empty in a fresh copy of this repository's pipeline."""
    repo = make_study_repo(work / name, params)
    start = time.perf_counter()
    with open(work / f"{name}.log", "w") as log:
        done = subprocess.run(
            ["dvc", "repro"], cwd=repo, env=study_env(repo), stdout=log, stderr=subprocess.STDOUT
        )
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"dvc repro failed; see {work / f'{name}.log'}")
    return wall, [json.loads(f.read_text()) for f in sorted((repo / "results" / "cells").rglob("*.json"))]


def export_pngs(params: Params, root: Path) -> float:
    """The dataset as PNG files at its source resolution, with the project's fixed split (the user's one-off)."""
    from benchmarks.plain_way import export

    start = time.perf_counter()
    export(*_listed_split(params), root)
    return time.perf_counter() - start


def _listed_split(params: Params):
    """The first dataset's catalogue and the project's fixed pool / validation / test split of it."""
    from pretraining_gap.data import datasets

    name = params.study.datasets[0]
    cfg = params.datasets[name]
    listed = datasets.catalogue(name, cfg)
    return listed, datasets.assign_split(
        listed.labels, listed.official, cfg.val_per_class, cfg.test_per_class, cfg.split_seed
    )


def run_plain(params: Params, work: Path, root: Path) -> tuple[float, list[dict]]:
    """One fresh process per cell, one at a time, in the study's order; the same nested subsets as the project;
    the gradient-trained and feature regimes (not `pixels`). (Two cells side by side, each with torch's 2 threads,
    ran slower than one after the other.)"""
    from pretraining_gap.data import subsets
    from pretraining_gap.data.prepared import POOL, Prepared

    listed, split = _listed_split(params)
    labels = listed.labels
    write_params(work / "params.yaml", params)
    cells = []
    for regime in params.study.regimes:
        if regime == "pixels":
            continue  # scikit-learn on raw pixels: the same code either way
        for seed in params.study.seeds:
            orderings = subsets.class_orderings(labels, Prepared(None, labels, split, []).part(POOL), seed)
            for size in params.study.sizes:
                files = work / f"train_{seed}_{size}.json"
                files.write_text(json.dumps([f"{i:05d}.png" for i in subsets.subset(orderings, size)]))
                cells.append((regime, size, seed, files))

    def run_cell(regime, size, seed, files) -> dict:
        out = work / f"plain_{regime}_{size}_{seed}.json"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.plain_way",
                "cell",
                str(root),
                regime,
                str(size),
                str(seed),
                "--params",
                str(work / "params.yaml"),
                "--train-files",
                str(files),
                "--out",
                str(out),
            ],
            cwd=ROOT,
            env=study_env(ROOT),
            check=True,
            stderr=subprocess.DEVNULL,
        )
        result = json.loads(out.read_text())
        print(
            f"  plain {regime} {size}/class seed {seed}: {result['test_accuracy']:.3f} "
            f"in {result['train_seconds']:.1f} s",
            flush=True,
        )
        return result

    start = time.perf_counter()
    results = [run_cell(*cell) for cell in cells]
    return time.perf_counter() - start, results


def _mean(values) -> str:
    values = list(values)
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f}±{sd:.3f}"


def report(params, sides: dict[str, tuple[float, list[dict]]], export_s, mm_before, mm_after, flops) -> None:
    """sides: name -> (wall seconds, cell results), in the order run."""
    names = list(sides)
    cells = next(iter(sides.values()))[1]
    print(
        f"\nGrid: regimes {params.study.regimes}, sizes {params.study.sizes}, seeds "
        f"{params.study.seeds} ({len(cells)} cells)"
    )
    print(f"{'':30}" + "".join(f"{n:>12}" for n in names))
    print(f"{'wall time, s':30}" + "".join(f"{sides[n][0]:12.1f}" for n in names))
    if "project" in sides:
        print(
            f"{'ratio to the project':30}"
            + "".join(f"{sides[n][0] / sides['project'][0]:11.2f}x" for n in names)
        )
    if export_s is not None:
        print(f"{'  + PNG export (once), s':30}{export_s:12.1f}")
    print(f"fp32 matmul 2048^2: {mm_before:.0f} GFLOP/s before, {mm_after:.0f} after")

    print(
        "\nTest accuracy, mean ± sd over seeds\n"
        + f"{'regime':9}{'size':>5}"
        + "".join(f"{n:>14}" for n in names)
    )
    by = defaultdict(lambda: [[] for _ in names])
    for side, name in enumerate(names):
        for c in sides[name][1]:
            by[c["regime"], c["examples_per_class"]][side].append(c["test_accuracy"])
    for (regime, size), values in sorted(by.items(), key=lambda item: (item[0][0], str(item[0][1]))):
        print(f"{regime:9}{size!s:>5}" + "".join(f"{_mean(v):>14}" for v in values))

    print(
        "\nTraining, per regime (train seconds include the validation passes and every setting of the grids)"
    )
    print(f"{'regime':9}{'side':>9}{'train s':>9}{'img/s':>8}{'GFLOP/s':>9}{'% of matmul':>12}")
    rate = (mm_before + mm_after) / 2
    for regime in params.study.regimes:
        for name in names:
            regime_cells = [c for c in sides[name][1] if c["regime"] == regime]
            if regime == "pixels" or not regime_cells:
                continue
            seconds = sum(c["train_seconds"] for c in regime_cells)
            if name != "plain" and config.REGIMES[regime].on_features:
                print(f"{regime:9}{name:>9}{seconds:9.1f}{'(head on cached features)':>30}")
                continue
            images = sum(_images(c) for c in regime_cells)
            gflops = images * flops[regime] / seconds / 1e9
            print(
                f"{regime:9}{name:>9}{seconds:9.1f}{images / seconds:8.0f}{gflops:9.2f}{100 * gflops / rate:11.1f}%"
            )
    print(
        "\nFLOPs per training image: "
        + ", ".join(f"{r} {f / 1e6:.0f} M" for r, f in flops.items() if r != "forward")
        + f"; forward only {flops['forward'] / 1e6:.0f} M"
    )


def _images(cell: dict) -> float:
    """Training images of a cell over every setting it trained (its grid, fused or not)."""
    return cell["images_per_second"] * cell["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    grid_arguments(parser, regimes=["pixels", "scratch", "linear", "frozen", "finetune"])
    parser.add_argument(
        "--sides",
        nargs="+",
        choices=["project", "unfused", "plain"],
        default=["project", "unfused", "plain"],
        help="what to run, in this order (default: all three)",
    )
    parser.add_argument("--keep", type=Path, help="keep the working files (PNGs, temporary repos, logs) here")
    args = parser.parse_args()
    params = grid_params(args)
    work = Path(args.keep or tempfile.mkdtemp(prefix="benchmark-"))
    work.mkdir(parents=True, exist_ok=True)
    flops = {r: step_flops_per_image(params, r) for r in ("scratch", "finetune", "linear", "frozen")}
    flops["forward"] = forward_flops_per_image(params)
    mm_before = matmul_gflops()
    print(f"fp32 matmul: {mm_before:.0f} GFLOP/s", flush=True)
    sides, export_s = {}, None
    for side in args.sides:
        print(f"{side} ...", flush=True)
        if side == "plain":
            export_s = export_pngs(params, work / "png")
            sides[side] = run_plain(params, work, work / "png")
        else:
            fused = params.training.fused_members if side == "project" else 1
            side_params = params.model_copy(
                update={"training": params.training.model_copy(update={"fused_members": fused})}
            )
            sides[side] = run_project(side_params, work, side)
        print(f"{side}: {sides[side][0]:.1f} s", flush=True)
    mm_after = matmul_gflops()
    report(params, sides, export_s, mm_before, mm_after, flops)
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
