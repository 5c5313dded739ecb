"""Cells in parallel: every job runs once, in spawned single-thread workers, or here when there is one worker."""

import os

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
