"""A train stage's progress as its user meets it.

On a terminal: one bar for the stage's work, in optimisation steps (cells differ a hundredfold: counting cells
made the estimate swing, as the longest ones run first), and under it one step bar per worker, each on its own
line; log lines print above the bars. In a log (stderr not a terminal): no bars, no carriage returns, one line
per finished cell with the share of the work done and the time left.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from contextlib import contextmanager

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

_line: int | None = (
    None  # this worker's line under the stage's bar (None: the next free line of this process)
)


def interactive() -> bool:
    return sys.stderr.isatty()


def steps(total: int, desc: str) -> Iterable[int]:
    """Steps 1..total with a step bar on a terminal (on the worker's own line), silently in a log."""
    return tqdm(
        range(1, total + 1),
        desc=desc,
        unit="step",
        leave=False,
        position=_line,
        disable=not interactive(),
        dynamic_ncols=True,
    )


def worker_lines(context, workers: int) -> tuple:
    """What the pool's initializer hands `join_workers` in each worker: the terminal's write lock, shared by
    every process, and one free line per worker."""
    lines = context.Queue()
    for line in range(1, workers + 1):
        lines.put(line)
    lock = context.RLock()
    tqdm.set_lock(lock)  # the driver's bar and log lines take it too
    return lock, lines


def join_workers(lock, lines) -> None:
    """In a worker: write to the terminal under the shared lock, on a line of its own."""
    global _line
    tqdm.set_lock(lock)
    _line = lines.get()


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


class Study:
    """The stage's progress over the cells it trains: `finished(work)` as each one arrives."""

    def __init__(self, desc: str, cells: int, work: int):
        self.cells, self.work, self.done_cells, self.done_work = cells, work, 0, 0
        self.start = time.monotonic()
        self.bar = tqdm(
            total=work or cells,  # only feature and pixel cells (no steps): count cells
            desc=desc,
            unit="step" if work else "cell",
            smoothing=0,  # the rate over the whole run: cells arrive in bursts
            position=0,
            disable=not interactive(),
            dynamic_ncols=True,
        )

    def finished(self, work: int) -> str:
        """Count a finished cell of `work` steps; returns what a log line adds (the bar shows it on a terminal):
        the share of the work done and the time left."""
        self.done_cells += 1
        self.done_work += work
        self.bar.update(work if self.work else 1)
        self.bar.set_postfix_str(f"{self.done_cells}/{self.cells} cells")
        share = self.done_work / self.work if self.work else self.done_cells / self.cells
        if not self.bar.disable or not 0 < share < 1:
            return ""
        elapsed = time.monotonic() - self.start
        return f"; {share:.0%} of the work done, about {_duration(elapsed / share - elapsed)} left"

    def close(self) -> None:
        self.bar.close()


@contextmanager
def study(desc: str, cells: int, work: int):
    """The stage's progress; on a terminal, log lines print above the bars meanwhile."""
    progress = Study(desc, cells, work)
    try:
        if progress.bar.disable:
            yield progress
        else:
            with logging_redirect_tqdm():
                yield progress
    finally:
        progress.close()
