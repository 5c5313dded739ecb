"""Open the study in MLflow's UI: print the links to its runs and its learning curves, then serve its store.

MLflow 3.17 opens an experiment on its GenAI overview (traces, tokens, no runs); these links open the "Model
training" views instead: the cells' table sorted by size, and the parent runs' learning-curve charts.
Run from the study's folder (`make ui`): pretraining-gap ui [--port 5000]
"""

from __future__ import annotations

import argparse
import os


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=5000, help="the port the UI listens on")
    parser.add_argument("--links", action="store_true", help="print the links and stop (no server)")


def main(args: argparse.Namespace) -> None:
    from . import config, tracking

    tracker = tracking.Tracker(config.load().study.name)
    serve = tracking.ui_command(tracker.uri)  # none: the store is a tracking server, its own UI
    base = f"http://127.0.0.1:{args.port}" if serve else None
    print(f"cells:  {tracker.runs_url(base)}\ncurves: {tracker.runs_url(base, 'curves')}", flush=True)
    if serve and not args.links:
        os.execvp(serve[0], [*serve, "--port", str(args.port), "--workers", "1"])
