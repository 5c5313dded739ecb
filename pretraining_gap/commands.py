"""The study's command line, `pretraining-gap <command>`, run from the study's folder (it reads its params.yaml).

Each command is a module with `arguments(parser)` and `main(args)`; its docstring's first line is its help.
Its libraries are imported in `main`, so `--help` answers at once.
"""

from __future__ import annotations

import argparse

from . import cli, convergence, plan, sweep, ui

COMMANDS = {  # name: module
    "plan": plan,
    "ui": ui,
    "sweep": sweep,
    "convergence": convergence,
}


def parser() -> argparse.ArgumentParser:
    top = cli.parser(__doc__)
    top.prog = "pretraining-gap"
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        command = commands.add_parser(
            name,
            help=module.__doc__.splitlines()[0],
            description=module.__doc__,
            formatter_class=top.formatter_class,
        )
        module.arguments(command)
        command.set_defaults(main=module.main)
    return top


def main() -> None:
    cli.run(parser(), lambda args: args.main(args))


if __name__ == "__main__":
    main()
