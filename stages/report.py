"""DVC stage report: the one-page HTML report; in MLflow, per dataset × backbone, the parent run of its cells with
the learning curves as metric histories (step = examples per class), the headline numbers, the report, the tables
and the figures.

Reads params.yaml: study, datasets, backbones, training, regimes, analysis (the settings it prints).
"""

import logging
import shlex
from pathlib import Path

import interpreter  # noqa: F401  first: a Python without the project stops here, in one line

from pretraining_gap import cli

log = logging.getLogger("report")


def arguments():
    parser = cli.parser(__doc__)
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
    parser.add_argument(
        "--convergence",
        type=Path,
        default=Path("results/convergence.csv"),
        help="the convergence check's table, where `make convergence-check` ran",
    )
    parser.add_argument("--out", type=Path, default=Path("reports/index.html"), help="the report (HTML)")
    return parser


def main(args) -> None:
    import pandas as pd

    from pretraining_gap import config, tracking
    from pretraining_gap.analysis import aggregate, report

    p = config.load()
    tracker = tracking.Tracker(p.study.name)
    tables, figures = report.read_tables(args.tables), sorted(args.plots.glob("*.png"))
    cells = pd.read_csv(args.table) if args.table.exists() else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    convergence = pd.read_csv(args.convergence) if args.convergence.exists() else None
    args.out.write_text(report.build(tables, cells, figures, p, tracker.commit, convergence))
    metrics = aggregate.read_metrics(args.metrics)
    said = report.headlines(tables, p.analysis) if len(tables["gap"]) else {}
    answers = report.answer_lines(tables, p.analysis)
    settings = p.model_dump(mode="json", include={"study", "analysis"})
    for (dataset, backbone), curves in tracking.curves(args.tables).items():
        others = [f"_{b}_" for b in p.study.backbones if b != backbone]
        mine = [
            f for f in figures if f.name.startswith(f"{dataset}_") and not any(o in f.name for o in others)
        ]
        scalars, texts = tracking.headlines(metrics.get(dataset, {}).get(backbone, {}))
        if sentences := said.get((dataset, backbone)):  # the answer, as the run's description
            texts[tracking.NOTE] = "\n\n".join([answers.get((dataset, backbone), ""), *sentences]).strip()
        tracker.log_study(
            dataset,
            backbone,
            curves,
            scalars,
            [args.out, args.table, args.metrics, args.tables, *mine],
            texts,
            settings,
        )
    log.info(
        "report -> %s (%d figures); the answer:\n%s",
        args.out,
        len(figures),
        "\n".join(f"{d} · {b}: {line}" for (d, b), line in answers.items()),
    )
    serve = shlex.join(tracking.ui_command(tracker.uri))
    log.info("MLflow: %s%s", f"`{serve}` (or `make ui`), then " if serve else "", tracker.runs_url())


if __name__ == "__main__":
    cli.run(arguments(), main)
