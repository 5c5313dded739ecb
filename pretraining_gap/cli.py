"""What every stage script shares: logging, and a user's mistake shown as one message instead of a traceback."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from .grid import ParamsError


def run(main: Callable[[], None]) -> None:
    from .execution import StudyError
    from .tracking import TrackingError

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        main()
    except (ParamsError, TrackingError, StudyError) as error:
        sys.exit(f"error: {error}")
