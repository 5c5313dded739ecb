"""Time the aggregate and report stages on a study's committed results, without training a cell.

The per-cell result files (results/cells/) are not committed; results/cells.csv is. This writes one result file per
finished row of a cells.csv into a temporary study folder (with the repository's params.yaml and results/costs/,
and the prepared dataset made by `stages/prepare.py`), then runs `python stages/aggregate.py` and
`python stages/report.py` there, each timed as a whole process (start-up included), and prints the wall times.
Per-evaluation histories are not in the CSV, so the rebuilt cells have none (no validation-curve figure, no
benefits table); per-layer transferability is not either, unless `--transferability` gives a table of per-size
means (results/tables/transferability.csv), whose T is then given to every seed of that size.
MLflow logging of the report stage goes to a store inside the temporary folder.

  python -m benchmarks.time_analysis                                    # the committed default study
  python -m benchmarks.time_analysis --keep /tmp/default-study          # keep the folder to look at its outputs
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pretraining_gap import results  # noqa: E402
from pretraining_gap.grid import Cell  # noqa: E402


def rebuild_cells(table: Path, out: Path, transferability: Path | None) -> int:
    """One result file per finished row of `table` under out/<dataset>/<backbone>/; returns how many."""
    cells = pd.read_csv(table)
    per_layer = pd.read_csv(transferability) if transferability and transferability.exists() else None
    fields = set(results.CellResult.model_fields)
    count = 0
    for row in cells[cells.status == "finished"].to_dict("records"):
        depth = None if pd.isna(row["depth"]) else int(row["depth"])
        cell = Cell(
            row["dataset"],
            row["backbone"],
            row["regime"],
            int(row["examples_per_class"]),
            int(row["seed"]),
            depth,
        )
        record = {k: v for k, v in row.items() if k in fields and not pd.isna(v)}
        record |= {"started_ms": 0, "finished_ms": 1, "depth": depth}
        for integer in ("steps", "best_step", "budget_steps", "batch_size", "examples_per_class", "seed"):
            if integer in record:
                record[integer] = int(record[integer])
        if per_layer is not None:
            mine = per_layer[
                (per_layer.dataset == cell.dataset)
                & (per_layer.backbone == cell.backbone)
                & (per_layer.regime == cell.regime)
                & (per_layer.examples_per_class == cell.examples_per_class)
            ].sort_values("order")
            if len(mine):
                record["transferability"] = dict(zip(mine.group, mine["T"].astype(float)))
        results.write(
            results.path(results.group_dir(out, cell), cell), results.CellResult.model_validate(record)
        )
        count += 1
    return count


def timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of a child process: on a shared machine the CPU time is the steadier figure."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{cwd / 'mlflow.db'}"
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return time.perf_counter() - start, cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.time_analysis",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cells", type=Path, default=ROOT / "results/cells.csv", help="a study's cells.csv")
    parser.add_argument(
        "--transferability",
        type=Path,
        default=None,
        help="per-size mean T table to give the cells (optional)",
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="study folder to keep (default: a temporary one)"
    )
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="time-analysis-"))
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "params.yaml", folder / "params.yaml")
    shutil.copytree(ROOT / "results/costs", folder / "results/costs", dirs_exist_ok=True)
    count = rebuild_cells(args.cells, folder / "results/cells", args.transferability)
    datasets = sorted(pd.read_csv(args.cells).dataset.unique())
    for dataset in datasets:
        prepared = folder / f"data/prepared/{dataset}.npz"
        if not prepared.exists():
            timed([sys.executable, str(ROOT / "stages/prepare.py"), dataset, "--out", str(prepared)], folder)
    aggregate = timed([sys.executable, str(ROOT / "stages/aggregate.py")], folder)
    report = timed([sys.executable, str(ROOT / "stages/report.py")], folder)
    print(f"{count} cells rebuilt from {args.cells} in {folder}")
    print(f"aggregate stage: {aggregate[0]:.1f} s wall, {aggregate[1]:.1f} s CPU (process start-up included)")
    print(f"report stage:    {report[0]:.1f} s wall, {report[1]:.1f} s CPU (MLflow summary run included)")
    if args.keep is None:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
