"""DVC stage report: the one-page HTML report, and the MLflow summary run with the headline numbers, the report,
the tables and the figures.

Reads params.yaml: study, datasets, backbones, training, regimes, analysis (the settings it prints).
"""

import argparse
import logging
from pathlib import Path

import pandas as pd

from pretraining_gap import cli, config, tracking

log = logging.getLogger("report")


def numbers(tree: dict, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of the metrics tree (aggregate.read_metrics), as flat MLflow metric names such as
    `digits.efficientnet_lite0.finetune.gap.1` (text leaves stay in the files)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(numbers(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = float(value)
    return flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--table", type=Path, default=Path("results/cells.csv"), help="tidy table, one row per cell"
    )
    parser.add_argument(
        "--tables", type=Path, default=Path("results/tables"), help="folder of analysis tables (CSV)"
    )
    parser.add_argument(
        "--metrics",
        type=Path,
        default=Path("metrics"),
        help="folder of DVC metrics (summary.json, one per arm)",
    )
    parser.add_argument("--plots", type=Path, default=Path("plots"), help="folder of PNG figures")
    parser.add_argument("--out", type=Path, default=Path("reports/index.html"), help="the report (HTML)")
    args = parser.parse_args()
    p = config.load()
    from pretraining_gap.analysis import aggregate, report

    tracker = tracking.Tracker(p.study.name)
    tables, figures = report.read_tables(args.tables), sorted(args.plots.glob("*.png"))
    cells = pd.read_csv(args.table) if args.table.exists() else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report.build(tables, cells, figures, p, tracker.commit))
    tracker.log_summary(
        f"{p.study.name} · summary",
        numbers(aggregate.read_metrics(args.metrics)),
        [args.out, args.table, args.metrics, *sorted(args.tables.glob("*.csv")), *figures],
    )
    said = report.headlines(tables, p.analysis) if len(tables["gap"]) else {}
    log.info(
        "report -> %s (%d figures); the answer:\n%s",
        args.out,
        len(figures),
        "\n".join(f"{d} · {b} · {s}" for (d, b), sentences in said.items() for s in sentences),
    )


if __name__ == "__main__":
    cli.run(main)
