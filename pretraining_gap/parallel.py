"""Independent jobs (cells) in worker processes of one thread each.

On a small CPU, a cell's small convolutions (32 px, batch 32) do not keep two threads busy: two single-threaded
cells side by side train more images per second than one cell with two threads (benchmarks/speed_levers.py parallel).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import TypeVar

from . import progress

Job = TypeVar("Job")


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def workers(device_type: str) -> int:
    """Worker processes for a group's cells: $PRETRAINING_GAP_WORKERS if set, else one per core on a CPU (each
    single-threaded) and one on a GPU (the cells share the device)."""
    if os.environ.get("PRETRAINING_GAP_WORKERS"):
        return int(os.environ["PRETRAINING_GAP_WORKERS"])
    return available_cores() if device_type == "cpu" else 1


def _single_thread(log_level: int, terminal_lock, lines) -> None:
    """One thread for torch and for the BLAS under numpy / scikit-learn: two workers already fill two cores, and
    more threads than cores spin-wait on each other (the linear probe ran 4x slower that way). Logs warnings and
    errors as the parent does (the driver reports each cell; a worker's info lines, such as timm's per-cell
    "Loaded … from checkpoint", would repeat it); its step bars take their own terminal line (progress.py)."""
    import torch
    from threadpoolctl import threadpool_limits

    logging.basicConfig(level=max(log_level, logging.WARNING), format="%(name)s: %(message)s")
    progress.join_workers(terminal_lock, lines)

    torch.set_num_threads(1)
    threadpool_limits(1)


def _context():
    """Workers fork from a server process that imported the job's modules once (POSIX), else are spawned. Never
    forked from the caller: a fork of a process that has started OpenMP threads can hang."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def start_server(workers: int, module: str) -> None:
    """Start the server workers fork from now, importing `module` (torch, timm: ~4 s), so that its start-up
    overlaps the caller's own set-up; without it each worker imports them itself when its first job arrives."""
    if workers > 1 and _context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.set_forkserver_preload([module])
        forkserver.ensure_running()


@contextmanager
def one_thread():
    """One thread for torch and the BLAS while the block runs here, as in a worker: a cell's numbers depend on
    torch's thread count (CPU kernels split their sums by thread; benchmarks/reproducibility.py), so a cell trained
    alone here must get the one thread a worker gives it, or its result would depend on what else was trained."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(threads)


def run(fn: Callable[[Job], dict], jobs: list[Job], workers: int) -> Iterator[tuple[Job, dict]]:
    """(job, fn(job)) as each finishes; `fn` must be a module-level function (it is pickled to the workers).

    With one worker or one job, runs here, in order, with one thread as in a worker (one_thread).
    """
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            with one_thread():
                result = fn(job)
            yield job, result
        return
    context, workers = _context(), min(workers, len(jobs))
    with ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=_single_thread,
        initargs=(logging.getLogger().getEffectiveLevel(), *progress.worker_lines(context, workers)),
    ) as pool:
        futures = {pool.submit(fn, job): job for job in jobs}
        for future in as_completed(futures):
            yield futures[future], future.result()
