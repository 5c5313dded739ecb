"""Jobs as Ray tasks (`execution.backend: ray`): a local Ray instance, or a cluster the study joins.

The driver (the train stage) submits every job at once and takes the results as they finish; it alone writes
result files and logs to MLflow, so workers need neither the repository nor the tracking store. The stage's
data goes to the object store once (`ray.put`), not once per task. A worker or node lost mid-task makes Ray run
the task again, up to `execution.retries` times; a task still lost after that comes back as a failed result
naming the loss. Ctrl-C cancels the tasks still queued or running; finished results are already written.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .config import Execution
from .grid import ParamsError

Job = TypeVar("Job")
log = logging.getLogger(__name__)


def _connect(cfg: Execution) -> None:
    """Join the cluster at RAY_ADDRESS or `execution.address`, or start a local Ray instance when both are empty."""
    import ray
    from ray.exceptions import RayError

    address = os.environ.get("RAY_ADDRESS") or cfg.address or None
    if ray.is_initialized():
        return
    import pretraining_gap

    # the cluster runs the driver's own copy of the package: the code whose digest is in every cell's identity
    runtime_env = {"py_modules": [pretraining_gap]} if address else None
    try:
        context = ray.init(address=address, runtime_env=runtime_env, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError, RayError) as error:
        token = "auth" in str(error).lower()
        raise ParamsError(
            "execution.address",
            f"cannot reach a Ray cluster at {address}: {error}",
            "set RAY_AUTH_MODE=token here, with the head's ~/.ray/auth_token in ~/.ray/ (docs/cluster.md)"
            if token
            else "start one (`ray start --head`), fix the address (or RAY_ADDRESS), or leave it empty for a local "
            "instance",
        ) from None
    log.info("Ray: %s, dashboard %s", address or "a local instance", context.dashboard_url or "not running")


def packing(cfg: Execution) -> str:
    """How the cells share the cluster, in words: its nodes, CPUs and GPUs, what a cell takes, how many run at
    once (the fewest of what the CPUs and the GPUs allow)."""
    import ray

    have = ray.cluster_resources()
    cpus, gpus = int(have.get("CPU", 0)), int(have.get("GPU", 0))
    at_once = int(cpus // cfg.cpus)
    takes = f"{cfg.cpus:g} CPU"
    if cfg.gpus:
        at_once = min(at_once, int(gpus // cfg.gpus))
        takes += f" and {cfg.gpus:g} GPU ({int(1 // cfg.gpus)} cells per GPU)"
    nodes = sum(node["Alive"] for node in ray.nodes())
    return f"{nodes} nodes, {cpus} CPUs, {gpus} GPUs; a cell takes {takes}: up to {at_once} cells at once"


def _task(fn: Callable[..., Any], job: Any, *shared: Any, log_level: int = logging.INFO) -> tuple[str, Any]:
    """(the node's id and host name, `fn(job, *shared)`) in a Ray worker, with torch's threads matched to the CPUs
    the task was given; its log lines reach the driver's terminal (Ray forwards them, prefixed with the worker)."""
    import socket

    import ray
    import torch

    logging.basicConfig(level=log_level, format="%(name)s: %(message)s")
    context = ray.get_runtime_context()
    torch.set_num_threads(max(1, int(context.get_assigned_resources().get("CPU", 1))))
    return f"{context.get_node_id()[:8]} ({socket.gethostname()})", fn(job, *shared)


def run(
    fn: Callable[..., Any],
    jobs: list[Job],
    cfg: Execution,
    shared: tuple = (),
    lost: Callable[[Job, str], Any] = None,
    name: Callable[[Job], str] = str,
) -> Iterator[tuple[Job, Any]]:
    """(job, fn(job, *shared)) as each task finishes, logging the node it ran on (`name(job)` names it); `shared`
    goes to the object store once. A task whose worker is lost more than `cfg.retries` times gives
    `lost(job, reason)` instead."""
    import ray
    from ray.exceptions import RayError

    _connect(cfg)
    log.info("Ray: %s", packing(cfg))
    remote = ray.remote(_task).options(num_cpus=cfg.cpus, num_gpus=cfg.gpus, max_retries=cfg.retries)
    stored = [ray.put(value) for value in shared]
    level = logging.getLogger().getEffectiveLevel()
    pending = {remote.remote(fn, job, *stored, log_level=level): job for job in jobs}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(done[0])
            try:
                node, result = ray.get(done[0])
                log.info("%s: ran on node %s", name(job), node)
                yield job, result
            except RayError as error:  # the worker or node died on every try
                yield job, lost(job, f"{type(error).__name__}: {error}")
    finally:  # Ctrl-C, or the caller stopped: nothing queued or running goes on
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        for ref in pending:
            ray.cancel(ref, force=True)
        ray.shutdown()  # a local instance stops; on a cluster, only this driver leaves
