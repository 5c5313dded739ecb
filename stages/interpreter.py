"""Imported first by every stage script. DVC runs a stage's `python` as the first one on PATH; when that one lacks
the project (the venv was not activated), the stage stops here with one line naming the interpreter and the fix,
instead of a traceback ending in `ModuleNotFoundError: No module named 'pretraining_gap'`."""

import importlib.util
import sys

if importlib.util.find_spec("pretraining_gap") is None:
    sys.exit(
        f"error: {sys.executable} (the first `python` on PATH, which DVC runs) does not have the project "
        "installed. Fix: `source .venv/bin/activate` (made by `make study`) and run the command again, or run "
        "`make repro`"
    )
