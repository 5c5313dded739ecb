"""Two selection protocols side by side: one seed of the default study trained by each (a git revision each), on
the same data, scored on half of validation that chose nothing for either.

Validation (`datasets.<name>.val_per_class` per class) is cut in two halves, alternately within each class: the
first stays validation (every choice and every stop of both protocols), the second becomes the "test" split that
the result files score, and the real test split is set aside unread. Each revision runs in a git worktree of its
own (under --work), with its own params.yaml as committed and the seed given; both read the prepared file, the
subsets and the features made once, by the newer revision's stages. Cells train one worker at a time by default
(--workers), so cell-seconds are one core's.

Prints, per arm and protocol: cells, cell-seconds, the mean held-out-half accuracy over the sizes, the mean
validation accuracy of the kept runs, and tuning steps where the protocol records them; writes the same as JSON.
Example (about an hour on 2 cores): python -m benchmarks.protocols --old 62cf50e --new HEAD
`--only old` / `--only new` runs one side; a later run reuses the results a side already has (its worktree's
results/ folder), so the two can run at different times on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from pretraining_gap.data.prepared import TEST, UNUSED, VAL, Prepared

DATASET, BACKBONE = "digits", "efficientnet_lite0"


def worktree(work: Path, name: str, rev: str) -> Path:
    """A detached worktree of `rev` at work/name (made once, then checked out at `rev` again: the data and results
    it holds are untracked by git and stay)."""
    path = work / name
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), rev], check=True)
    subprocess.run(["git", "-C", str(path), "checkout", "--quiet", "--force", "--detach", rev], check=True)
    return path


def narrow(root: Path, seed: int, val_per_class: int, test_per_class: int | None = None) -> None:
    """The worktree's params.yaml with one seed and the split's sizes per class (test: as committed if None)."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["study"]["seeds"] = [seed]
    params["datasets"][DATASET]["val_per_class"] = val_per_class
    if test_per_class:
        params["datasets"][DATASET]["test_per_class"] = test_per_class
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def held_out_half(prepared: Prepared) -> Prepared:
    """Validation's second half (alternate images of each class) as the test split; the real test split unused."""
    split = prepared.split.copy()
    split[split == TEST] = UNUSED
    for label in np.unique(prepared.labels):
        val = np.flatnonzero((prepared.split == VAL) & (prepared.labels == label))
        split[val[1::2]] = TEST
    prepared.split = split
    return prepared


def stage(root: Path, *argv: str, workers: int) -> None:
    env = {**os.environ, "PRETRAINING_GAP_WORKERS": str(workers), "PYTHONPATH": str(root)}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    subprocess.run([sys.executable, *argv], cwd=root, env=env, check=True)


def shared_inputs(new: Path, sides: list[Path], seed: int, val_per_class: int, workers: int) -> None:
    """The prepared file (validation halved), subsets and features, made by the newer revision, copied to each;
    each side's params.yaml then names the halves' sizes."""
    data = new / "data"
    prepared = data / "prepared" / f"{DATASET}.npz"
    half = val_per_class // 2
    if not prepared.exists():
        narrow(new, seed, val_per_class)
        stage(new, "stages/prepare.py", DATASET, "--out", str(prepared), workers=workers)
        held_out_half(Prepared.load(prepared)).save(prepared)
        narrow(new, seed, val_per_class - half, half)
        subsets = data / "subsets" / f"{DATASET}.json"
        stage(new, "stages/subsample.py", str(prepared), "--out", str(subsets), workers=workers)
        feats = data / "features" / DATASET / f"{BACKBONE}.npy"
        stage(new, "stages/features.py", BACKBONE, str(prepared), "--out", str(feats), workers=workers)
    for side in sides:
        narrow(side, seed, val_per_class - half, half)
        if side != new:
            subprocess.run(["cp", "-rT", str(data), str(side / "data")], check=True)


def train(root: Path, workers: int) -> Path:
    out = root / "results" / "cells" / DATASET / BACKBONE
    data = root / "data"
    stage(
        root,
        "stages/train.py",
        DATASET,
        BACKBONE,
        "--prepared",
        str(data / "prepared" / f"{DATASET}.npz"),
        "--subsets",
        str(data / "subsets" / f"{DATASET}.json"),
        "--features",
        str(data / "features" / DATASET / f"{BACKBONE}.npy"),
        "--out",
        str(out),
        workers=workers,
    )
    return out


def summary(out: Path) -> dict[str, dict]:
    """Per arm: cells, cell-seconds, mean held-out-half accuracy, mean validation accuracy, tuning steps."""
    arms: dict[str, dict] = {}
    for file in sorted(out.glob("*/*.json")):
        result = json.loads(file.read_text())
        if result["status"] != "finished":
            continue
        arm = arms.setdefault(
            result["regime"], {"cells": 0, "seconds": 0.0, "held_out": [], "val": [], "steps": []}
        )
        arm["cells"] += 1
        arm["seconds"] += result["train_seconds"]
        arm["held_out"].append(result["test_accuracy"])
        arm["val"].append(result["best_val_accuracy"])
        if "tuning_steps" in result:
            arm["steps"].append(result["tuning_steps"])
    return {
        name: {
            "cells": arm["cells"],
            "cell_seconds": round(arm["seconds"], 1),
            "held_out_accuracy": round(float(np.mean(arm["held_out"])), 4),
            "val_accuracy": round(float(np.mean(arm["val"])), 4),
            "tuning_steps_per_cell": round(float(np.mean(arm["steps"]))) if arm["steps"] else None,
        }
        for name, arm in sorted(arms.items())
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--old", required=True, help="the revision of today's protocol, e.g. 62cf50e")
    parser.add_argument("--new", default="HEAD", help="the revision of the protocol measured against it")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--val-per-class", type=int, default=40, help="validation images per class, both halves"
    )
    parser.add_argument("--workers", type=int, default=1, help="cells trained at once")
    parser.add_argument(
        "--only", choices=["old", "new"], help="run one side (the other's results are reused)"
    )
    parser.add_argument("--work", type=Path, default=Path("benchmarks/out/protocols"))
    args = parser.parse_args()
    sides = {"old": worktree(args.work, "old", args.old), "new": worktree(args.work, "new", args.new)}
    shared_inputs(sides["new"], list(sides.values()), args.seed, args.val_per_class, args.workers)
    table = {}
    for name, root in sides.items():
        out = root / "results" / "cells" / DATASET / BACKBONE
        if args.only in (None, name):
            out = train(root, args.workers)
        table[name] = summary(out)
    (args.work / "summary.json").write_text(json.dumps(table, indent=1))
    print(
        f"{'arm':10} {'protocol':8} {'cells':>5} {'cell-s':>8} {'held-out':>9} {'val':>6} {'tuning steps':>12}"
    )
    for arm in sorted({a for side in table.values() for a in side}):
        for name, side in table.items():
            row = side.get(arm)
            if row:
                steps = row["tuning_steps_per_cell"] or "-"
                print(
                    f"{arm:10} {name:8} {row['cells']:5} {row['cell_seconds']:8.0f} "
                    f"{row['held_out_accuracy']:9.3f} {row['val_accuracy']:6.3f} {steps:>12}"
                )
    for name, side in table.items():
        print(f"{name}: {sum(r['cell_seconds'] for r in side.values()):.0f} cell-seconds in all")


if __name__ == "__main__":
    main()
