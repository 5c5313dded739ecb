"""DVC stage report: the one-page HTML report; in MLflow, per dataset × backbone, the parent run of its cells with
the learning curves as metric histories (step = examples per class), the report, the tables and the figures.

Reads params.yaml: study, datasets, backbones, training, regimes (the settings the report prints).
"""

import json
import logging
import shlex
from pathlib import Path

import interpreter  # noqa: F401  first: a Python without the project stops here, in one line

from pretraining_gap import cli

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


def arguments():
    parser = cli.parser(__doc__)
    parser.add_argument(
        "--table", type=Path, default=Path("results/cells.csv"), help="tidy table, one row per cell"
    )
    parser.add_argument(
        "--tables", type=Path, default=Path("results/tables"), help="folder of analysis tables (CSV)"
    )
    parser.add_argument("--metrics", type=Path, default=Path("metrics/summary.json"), help="DVC metrics file")
    parser.add_argument("--plots", type=Path, default=Path("plots"), help="folder of PNG figures")
    parser.add_argument("--out", type=Path, default=Path("reports/index.html"), help="the report (HTML)")
    return parser


def main(args) -> None:
    from pretraining_gap import config, tracking
    from pretraining_gap.analysis import report

    p = config.load()
    tracker = tracking.Tracker(p.study.name)
    summary, figures = json.loads(args.metrics.read_text()), sorted(args.plots.glob("*.png"))
    page = report.build(report.read_tables(args.tables), summary["incomplete"], figures, p, tracker.commit)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page)
    tables = sorted(args.tables.glob("*.csv"))
    for (dataset, backbone), curves in tracking.curves(args.tables).items():
        others = [f"_{b}_" for b in p.study.backbones if b != backbone]
        mine = [
            f for f in figures if f.name.startswith(f"{dataset}_") and not any(o in f.name for o in others)
        ]
        scalars = numbers(summary.get(dataset, {}).get(backbone, {}))
        tracker.log_study(
            dataset, backbone, curves, scalars, [args.out, args.table, args.metrics, *tables, *mine]
        )
    log.info(
        "report -> %s (%d figures); headline:\n%s",
        args.out,
        len(figures),
        "\n".join(report.headlines(*(report.read_tables(args.tables)[k] for k in ("gap", "crossover")))),
    )
    serve = shlex.join(tracking.ui_command(tracker.uri))
    log.info("MLflow: %s%s", f"`{serve}` (or `make ui`), then " if serve else "", tracker.runs_url())


if __name__ == "__main__":
    cli.run(arguments(), main)
