"""The study's command line, `pretraining-gap <command>`: each command is an entry of COMMANDS (its help, its
arguments, and the function that runs it); the logic lives in the library. Installed by pyproject.toml's
[project.scripts]; `python -m pretraining_gap.commands` is the same."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from . import cli


class Command(NamedTuple):
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], None]


def _plan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="the study's params file")


def _plan(args: argparse.Namespace) -> None:
    from . import config, planning  # torch and timm (the regimes' code), never MLflow

    logging.getLogger(planning.__name__).setLevel(logging.WARNING)  # printed below, one line per cell
    params = config.load(args.params)
    for dataset in params.study.datasets:
        for backbone in params.study.backbones:
            print("\n".join(planning.preview(params, dataset, backbone)), flush=True)


COMMANDS = {
    "plan": Command(
        "before anything runs, per dataset x backbone: the cells that would train (and why: new, or which of "
        "code, config, data, weights, versions changed) and those kept, with the training time estimated from "
        "the cost stage's measurement. Run from the study's root after `dvc repro prepare subsample features`.",
        _plan_arguments,
        _plan,
    ),
}


def main() -> None:
    parser = cli.parser(__doc__)
    parser.prog = "pretraining-gap"
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, command in COMMANDS.items():
        command.arguments(commands.add_parser(name, help=command.help, description=command.help))
    cli.run(parser, lambda args: COMMANDS[args.command].run(args))


if __name__ == "__main__":
    main()
