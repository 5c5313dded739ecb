"""Cells in parallel: every job runs once, in single-thread workers forked from a preloaded server, or here when
there is one worker."""

import os
import subprocess
import sys
from pathlib import Path

from pretraining_gap import parallel


def _threads_and_pid(job: int) -> dict:
    import torch

    return {"job": job, "threads": torch.get_num_threads(), "pid": os.getpid()}


def test_parallel_runs_every_job_once_in_single_thread_workers():
    done = dict(parallel.run(_threads_and_pid, [1, 2, 3], workers=2))
    assert sorted(done) == [1, 2, 3] and all(done[j]["job"] == j for j in done)
    assert {r["threads"] for r in done.values()} == {1}
    assert os.getpid() not in {r["pid"] for r in done.values()}


def test_parallel_with_one_worker_runs_in_this_process():
    done = dict(parallel.run(_threads_and_pid, [1, 2], workers=1))
    assert {r["pid"] for r in done.values()} == {os.getpid()}


def _study_imported(job: int) -> bool:
    import sys

    return (
        "pretraining_gap.training.regimes" in sys.modules
    )  # this module does not import it: only a preloading server can


def _workers_saw_study(start_server: bool) -> str:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_speed; from pretraining_gap import parallel\n"
        f"if {start_server}: parallel.start_server(2, 'pretraining_gap.training.regimes')\n"
        "print(sorted({r for _, r in parallel.run(test_speed._study_imported, [1, 2, 3], workers=2)}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_workers_fork_from_a_server_that_has_imported_the_study_once():
    assert _workers_saw_study(start_server=True) == "[True]"
    assert _workers_saw_study(start_server=False) == "[False]"
