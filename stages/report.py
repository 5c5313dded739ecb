"""DVC stage report: the one-page HTML report, and the MLflow summary run with the headline numbers, the report,
the tables and the figures."""

import argparse
import json
import logging
from pathlib import Path

from pretraining_gap import cli, config, tracking
from pretraining_gap.analysis import report

log = logging.getLogger("report")


def numbers(tree: dict, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of metrics/summary.json, as flat MLflow metric names (text leaves stay in the JSON)."""
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
    parser.add_argument("--metrics", type=Path, default=Path("metrics/summary.json"), help="DVC metrics file")
    parser.add_argument("--plots", type=Path, default=Path("plots"), help="folder of PNG figures")
    parser.add_argument("--out", type=Path, default=Path("reports/index.html"), help="the report (HTML)")
    args = parser.parse_args()
    p = config.load()
    tracker = tracking.Tracker(p.study.name)
    summary, figures = json.loads(args.metrics.read_text()), sorted(args.plots.glob("*.png"))
    page = report.build(report.read_tables(args.tables), summary["incomplete"], figures, p, tracker.commit)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page)
    tables = sorted(args.tables.glob("*.csv"))
    tracker.log_summary(
        f"{p.study.name} · summary", numbers(summary), [args.out, args.table, args.metrics, *tables, *figures]
    )
    log.info(
        "report -> %s (%d figures); headline:\n%s",
        args.out,
        len(figures),
        "\n".join(report.headlines(*(report.read_tables(args.tables)[k] for k in ("gap", "crossover")))),
    )


if __name__ == "__main__":
    cli.run(main)
