"""DVC stage aggregate: cell results to the tidy table, DVC metrics and plots, PNG figures and an MLflow summary run."""

import argparse
import json
import logging
from pathlib import Path

from pretraining_gap import aggregate, params, tracking

log = logging.getLogger("aggregate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cells", type=Path, default=Path("results/cells"), help="folder of per-cell result files")
    parser.add_argument("--table", type=Path, default=Path("results/cells.csv"), help="tidy table, one row per cell")
    parser.add_argument("--curves", type=Path, default=Path("results/curves"), help="folder of CSVs for dvc plots")
    parser.add_argument("--metrics", type=Path, default=Path("metrics/summary.json"), help="DVC metrics file")
    parser.add_argument("--plots", type=Path, default=Path("plots"), help="folder of PNG figures")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    p = params.load()
    out = aggregate.run(p, args.cells, args.table, args.curves, args.metrics, args.plots)
    tracking.Tracker(p["study"]["name"]).log_summary(f"{p['study']['name']} · summary", out.headline,
                                                     [args.table, args.metrics, *out.figures])
    log.info("%d cells -> %s, %s, %d figures", out.cells, args.table, args.metrics, len(out.figures))
    log.info("summary:\n%s", json.dumps(out.headline, indent=1))


if __name__ == "__main__":
    main()
