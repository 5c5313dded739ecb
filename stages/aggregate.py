"""DVC stage aggregate: cell results to the tidy table, the answer's tables, DVC metrics and plots, PNG figures.

Reads params.yaml: study, regimes.depth.k (the grid whose cells it reads), backbones (their families, for the
exponent beta), analysis (margin, cap, bootstrap, level).
"""

import logging
from pathlib import Path

import interpreter  # noqa: F401  first: a Python without the project stops here, in one line

from pretraining_gap import cli

log = logging.getLogger("aggregate")


def arguments():
    parser = cli.parser(__doc__)
    parser.add_argument(
        "--cells", type=Path, default=Path("results/cells"), help="folder of per-cell result files"
    )
    parser.add_argument(
        "--table", type=Path, default=Path("results/cells.csv"), help="tidy table, one row per cell"
    )
    parser.add_argument(
        "--tables", type=Path, default=Path("results/tables"), help="folder of analysis tables (CSV)"
    )
    parser.add_argument(
        "--curves", type=Path, default=Path("results/curves"), help="folder of CSVs for dvc plots"
    )
    parser.add_argument(
        "--metrics",
        type=Path,
        default=Path("metrics"),
        help="folder of DVC metrics: summary.json, one file per arm",
    )
    parser.add_argument("--plots", type=Path, default=Path("plots"), help="folder of PNG figures")
    parser.add_argument(
        "--costs",
        type=Path,
        default=Path("results/costs"),
        help="folder of backbone cost records <dataset>/<backbone>.json (optional)",
    )
    parser.add_argument(
        "--forecasts",
        type=Path,
        default=Path("results/forecasts"),
        help="folder of the forecast stage's tables <dataset>/<backbone>.csv (optional)",
    )
    parser.add_argument(
        "--prepared",
        type=Path,
        default=Path("data/prepared"),
        help="folder of prepared datasets <dataset>.npz (class, validation and test counts; optional)",
    )
    return parser


def main(args) -> None:
    from pretraining_gap import config
    from pretraining_gap.analysis import aggregate

    params = config.load()
    out = aggregate.run(
        params,
        args.cells,
        args.table,
        args.tables,
        args.curves,
        args.metrics,
        args.plots,
        args.costs,
        args.prepared,
        args.forecasts,
    )
    for cell in out.tables["incomplete"].itertuples():
        log.warning(
            "left out of the means: %s/%s/%s/%s/seed%s (%s: %s)",
            cell.dataset,
            cell.backbone,
            cell.arm,
            cell.examples_per_class,
            cell.seed,
            cell.status,
            cell.reason,
        )
    log.info(
        "%d of %d cells finished -> %s, %s, %d figures",
        len(out.finished),
        len(out.cells),
        args.table,
        args.metrics,
        len(out.figures),
    )


if __name__ == "__main__":
    cli.run(arguments(), main)
