"""A study's parent run per dataset × backbone (`digits · efficientnet_lite0`): the cells' runs are its children, and
the report stage gives it the study's answer.

It carries the learning curves as metric histories whose step is the size in examples per class, `accuracy/<arm>`
(mean test accuracy over seeds, a fraction) and `gap_points/<arm>` (the arm minus scratch, in accuracy points), so
MLflow's own line charts draw them. MLflow's steps are integers: the whole pool (`all`) is its mean examples per
class, rounded (109.7 -> 110). Beside them: the headline numbers of metrics/ as metrics (their text as tags), the
study's settings as params, the answer's sentences as the run's description, the report and tables as artifacts.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

from . import views
from .cell_runs import flatten, log_batches
from .store import Experiment, one_opener

# analysis table: (its value column, the metric prefix, the factor to the metric's unit)
CURVE_TABLES = {"accuracy": ("mean", "accuracy", 1), "gap": ("points", "gap_points", 100)}


def study_name(dataset: str, backbone: str) -> str:
    return f"{dataset} · {backbone}"


def step(examples_per_class: str | float) -> int:
    """A size as MLflow's integer step: '10' or '10.0' -> 10, the whole pool's mean '109.7' -> 110."""
    return round(float(examples_per_class))


def curves(tables: Path) -> dict[tuple[str, str], dict[str, dict[int, float]]]:
    """Per dataset × backbone, its parent run's metric histories read from the analysis tables accuracy.csv and
    gap.csv (CURVE_TABLES), each mapping a size's step to its value; a table that is missing gives none."""
    found: dict[tuple[str, str], dict[str, dict[int, float]]] = {}
    for table, (column, prefix, factor) in CURVE_TABLES.items():
        file = Path(tables) / f"{table}.csv"
        if not file.exists():
            continue
        with file.open(newline="") as f:
            for row in csv.DictReader(f):
                if row.get(column):
                    group = found.setdefault((row["dataset"], row["backbone"]), {})
                    by_step = group.setdefault(f"{prefix}/{row['arm']}", {})
                    by_step[step(row["examples_per_class"])] = float(row[column]) * factor
    return found


def _key(key: str) -> str:
    """A size key of metrics/ as it reads best: '1.0' -> '1', '109.7' stays; any other key as it is."""
    try:
        return f"{float(key):g}"
    except ValueError:
        return key


def headlines(tree: dict, prefix: str = "") -> tuple[dict[str, float], dict[str, str]]:
    """The leaves of a metrics tree (one dataset × backbone of analysis.aggregate.read_metrics: arm -> its numbers)
    as dotted names (`finetune.gap.109.7`): the numbers (metrics) and the text (tags, such as `finetune.crossover`)."""
    numbers, texts = {}, {}
    for key, value in tree.items():
        name = f"{prefix}{_key(key)}"
        if isinstance(value, dict):
            more_numbers, more_texts = headlines(value, f"{name}.")
            numbers.update(more_numbers)
            texts.update(more_texts)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            numbers[name] = float(value)
        else:
            texts[name] = str(value)
    return numbers, texts


def parent(experiment: Experiment, dataset: str, backbone: str) -> str:
    """The parent run of dataset × backbone: the oldest there is, else a new, empty one (its summary comes with the
    report stage). Under the store's lock, so two train stages asking together make one."""
    which = {"kind": "study", "dataset": dataset, "backbone": backbone}
    with one_opener(experiment.uri):
        found = experiment.runs(which)
        if found:
            return min(found, key=lambda r: r.info.start_time).info.run_id
        run_id = experiment.create_run(study_name(dataset, backbone), which)
        experiment.client.set_terminated(run_id, "FINISHED")
        return run_id


def _log_summary(experiment, run_id, curves, scalars, texts, params, artifacts) -> None:
    """log_study's summary, logged to the run `run_id`."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    metrics = [
        Metric(name, float(v), now, size) for name, by_size in curves.items() for size, v in by_size.items()
    ]
    metrics += [Metric(name, float(value), now, 0) for name, value in scalars.items()]
    log_batches(experiment, run_id, metrics, [Param(k, v) for k, v in flatten(params).items()])
    for name, text in texts.items():
        experiment.client.set_tag(run_id, name, text)
    for artifact in map(Path, artifacts):  # a folder keeps its name and tree
        if artifact.is_dir():
            experiment.client.log_artifacts(run_id, str(artifact), artifact.name)
        else:
            experiment.client.log_artifact(run_id, str(artifact))


def log_study(
    experiment: Experiment,
    dataset: str,
    backbone: str,
    curves: dict[str, dict[int, float]],
    scalars: dict[str, float],
    artifacts: list[Path],
    texts: dict[str, str] | None = None,
    params: dict | None = None,
) -> str:
    """The parent run of dataset × backbone with its summary, replacing the ones before (and the old layout's
    `summary` runs); its id. `curves`: a metric name (`accuracy/finetune`) to its value per step (curves());
    `scalars`: numbers logged once (step 0); `texts`: tags, the NOTE tag (views.NOTE) being the run's description;
    `params`: a nested dict of settings; `artifacts`: files or folders. The cells' runs become its children, and
    the `curves` view shows every curve metric of the experiment's parent runs."""
    which = {"kind": "study", "dataset": dataset, "backbone": backbone}
    cells = experiment.runs({"kind": "cell", "dataset": dataset, "backbone": backbone})
    start = min((r.info.start_time for r in cells), default=None)
    run_id = experiment.create_run(study_name(dataset, backbone), which, start)
    _log_summary(experiment, run_id, curves, scalars, texts or {}, params or {}, artifacts)
    for cell in cells:
        experiment.client.set_tag(cell.info.run_id, "mlflow.parentRunId", run_id)
    for old in experiment.runs(which) + experiment.runs({"kind": "summary"}):
        if old.info.run_id != run_id:
            experiment.client.delete_run(old.info.run_id)
    end = max((r.info.end_time or 0 for r in cells), default=None) or int(time.time() * 1000)
    experiment.client.set_terminated(run_id, "FINISHED", end)
    names = {key for run in experiment.runs({"kind": "study"}) for key in run.data.metrics}  # every parent's
    views.set_curves_view(experiment, names)
    return run_id
