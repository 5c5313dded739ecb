"""What every stage script shares: its --help (defaults and the params keys it reads), logging, and a user's
mistake shown as one message instead of a traceback.

Light on purpose: a stage parses its arguments with nothing but this module and argparse imported, so `--help`
answers at once; the study's libraries (pydantic, numpy, torch, MLflow) are imported after parsing.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from .grid import ParamsError, StageError


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The stage's docstring as written (it names the params keys the stage reads), and each option's default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        return action.help if action.default is None else super()._get_help_string(action)


def parser(doc: str) -> argparse.ArgumentParser:
    """The stage's argument parser: its docstring as description, defaults shown in --help."""
    return argparse.ArgumentParser(description=doc, formatter_class=_Help)


def run(parser: argparse.ArgumentParser, main: Callable[[argparse.Namespace], None]) -> None:
    """Parse the arguments, then run `main(args)`; a ParamsError or StageError (TrackingError, StudyError) ends
    the stage with its message alone (exit status 1)."""
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("timm").setLevel(logging.WARNING)  # its "Loaded … from checkpoint", once per cell
    try:
        main(args)
    except (ParamsError, StageError) as error:
        sys.exit(f"error: {error}")
