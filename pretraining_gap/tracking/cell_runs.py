"""A cell's MLflow run, a child of its study's parent run: named by what differs between cells
(`finetune · 5/class · seed 1`), with its identity as tags, its config and what was chosen on validation as params,
its per-evaluation curves by optimisation step, its final numbers, its result file and its prepared data. Logging a
cell again replaces its run, never duplicates it.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..config import REGIMES
from ..grid import Cell
from ..results import CellResult
from .store import Experiment

# a cell's final numbers (step 0); the chosen lr / C are params, the per-evaluation curves are histories
FINAL_METRICS = (
    "test_accuracy",
    "test_loss",
    "best_val_accuracy",
    "steps",
    "best_step",
    "budget_steps",
    "train_seconds",
    "images_per_second",
    "tuning_steps",
    "winners_curse",
)
# chosen on validation: params (each regime's own result fields, config.Regime.chosen)
CHOSEN_PARAMS = tuple(dict.fromkeys(field for regime in REGIMES.values() for field in regime.chosen))
CURVES = ("train_loss", "val_accuracy", "val_loss")  # per evaluation, step = optimisation step
BATCH = {"metrics": 1000, "params": 100}  # MLflow's limits per log_batch call


def child_name(cell: Cell) -> str:
    """A cell's run name under its study's parent run: what differs between cells, first."""
    return f"{cell.arm} · {cell.examples_per_class}/class · seed {cell.seed}"


def logged_fingerprints(experiment: Experiment, dataset: str, backbone: str) -> dict[str, str]:
    """Cell key to the fingerprint of its run, for the cells of one dataset × backbone."""
    runs = experiment.runs({"kind": "cell", "dataset": dataset, "backbone": backbone})
    # a run left RUNNING by a killed process is incomplete: it does not count, and logging replaces it
    return {
        run.data.tags["cell"]: run.data.tags.get("fingerprint")
        for run in runs
        if run.info.status in ("FINISHED", "FAILED")
    }


def flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    """A nested dict as dotted keys to text: {'a': {'b': 1}} -> {'a.b': '1'}."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


def log_batches(experiment: Experiment, run_id: str, metrics: list, params: list) -> None:
    """Metrics and params in as few calls as MLflow's batch limits allow."""
    client, (m, p) = experiment.client, BATCH.values()
    for i in range(0, len(metrics), m):
        client.log_batch(run_id, metrics=metrics[i : i + m])
    for i in range(0, len(params), p):
        client.log_batch(run_id, params=params[i : i + p])


def _tags(cell: Cell, result: CellResult, parent_id: str) -> dict[str, str]:
    tags = {
        "kind": "cell",
        "cell": cell.key,
        "dataset": cell.dataset,
        "backbone": cell.backbone,
        "regime": cell.regime,
        "examples_per_class": str(cell.examples_per_class),
        "seed": str(cell.seed),
        "fingerprint": result.fingerprint,
        "mlflow.parentRunId": parent_id,
    }
    if cell.depth is not None:
        tags["depth"] = str(cell.depth)
    if phases := _phases(result):  # chain-thaw's phase order
        tags["phases"] = " → ".join(phases)
    if result.status == "failed":
        tags["failure"] = result.reason
    return tags


def _phases(result: CellResult) -> list[str]:
    return list(dict.fromkeys((result.history or {}).get("phase", [])))


def _history(result: CellResult) -> list:
    """The per-evaluation curves by step, each at the time it was made (results of older code lack it: then the
    cell's end), and chain-thaw's `phase` metric (the phase's index) at every evaluation."""
    from mlflow.entities import Metric

    history = result.history or {}
    steps = history.get("step", [])
    times = history.get("time_ms") or [result.finished_ms] * len(steps)
    metrics = [
        Metric(key, float(value), at, step)
        for key in CURVES
        if key in history
        for step, value, at in zip(steps, history[key], times)
        if value is not None and math.isfinite(value)  # no training loss before the first step (NaN; null)
    ]
    phases = _phases(result)
    return metrics + [
        Metric("phase", phases.index(p), at, step)
        for step, p, at in zip(steps, history.get("phase", []), times)
    ]


def _finals(cell: Cell, result: CellResult) -> list:
    """The final numbers at step 0; `examples_per_class` as a number, so the runs table sorts 2 before 10 (the
    whole pool, `all`, as its mean over classes), and each layer's transferability."""
    from mlflow.entities import Metric

    finals = {key: getattr(result, key) for key in FINAL_METRICS}
    if isinstance(cell.examples_per_class, int):
        finals["examples_per_class"] = cell.examples_per_class
    elif result.train_images and result.classes:
        finals["examples_per_class"] = result.train_images / result.classes
    end = result.finished_ms
    metrics = [Metric(key, float(value), end, 0) for key, value in finals.items() if value is not None]
    return metrics + [
        Metric(f"transferability/{layer}", t, end, 0) for layer, t in (result.transferability or {}).items()
    ]


def _params(result: CellResult, config: dict) -> list:
    """The cell's config (flattened) and what was chosen on validation."""
    from mlflow.entities import Param

    chosen = {key: getattr(result, key, None) for key in CHOSEN_PARAMS}
    return [Param(k, v) for k, v in flatten(config).items()] + [
        Param(k, f"{v:g}" if isinstance(v, float) else str(v)) for k, v in chosen.items() if v is not None
    ]


def _log_input(experiment: Experiment, run_id: str, data: dict) -> None:
    from mlflow.entities import Dataset, DatasetInput, InputTag

    dataset = Dataset(data["name"], data["digest"], "local", data["source"], profile=data.get("profile"))
    experiment.client.log_inputs(run_id, [DatasetInput(dataset, [InputTag("mlflow.data.context", "train")])])


def log_cell(
    experiment: Experiment,
    parent_id: str,
    cell: Cell,
    result: CellResult,
    config: dict,
    result_file: Path,
    data: dict | None = None,
) -> str:
    """The cell's run under the parent run `parent_id`, replacing any run of the same cell; its id.

    `config`: the cell's identity (nested dict) as params; `data`: name, digest, source (a JSON string) and profile
    of the prepared data, or None. A failed cell's run ends FAILED with its reason in the `failure` tag and its
    traceback, if any, as traceback.txt."""
    for old in experiment.runs({"kind": "cell", "cell": cell.key}):
        experiment.client.delete_run(old.info.run_id)
    run_id = experiment.create_run(child_name(cell), _tags(cell, result, parent_id), result.started_ms)
    log_batches(experiment, run_id, _history(result) + _finals(cell, result), _params(result, config))
    if data:
        _log_input(experiment, run_id, data)
    experiment.client.log_artifact(run_id, str(result_file))
    if result.traceback:
        experiment.client.log_text(run_id, result.traceback, "traceback.txt")
    experiment.client.set_terminated(run_id, result.status.upper(), result.finished_ms)
    return run_id
