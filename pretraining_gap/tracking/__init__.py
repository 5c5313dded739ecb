"""MLflow: one experiment per study; per dataset × backbone a parent run that holds the study's curves and answer,
with one child run per cell; re-logging replaces, never duplicates.

store: where the store is and opening it; views: what the UI shows and the links; cell_runs: a cell's run;
study_run: the parent run. `Tracker` is what the stages use: the study's experiment, opened once.
"""

from __future__ import annotations

from pathlib import Path

from ..grid import Cell
from ..results import CellResult
from . import cell_runs, study_run, views
from .store import TrackingError, open_experiment, study_root, ui_command
from .study_run import curves, headlines
from .views import NOTE

__all__ = [
    "NOTE",
    "Tracker",
    "TrackingError",
    "curves",
    "headlines",
    "ui_command",
]


class Tracker:
    """The study's MLflow experiment `experiment` (study.name). Opening it writes to the store, so a store that
    cannot be written stops the study before any training, with a TrackingError naming MLFLOW_TRACKING_URI; every
    later failure of the store is a TrackingError too."""

    def __init__(self, experiment: str):
        tags = views.experiment_tags(str(study_root()))
        self.experiment = open_experiment(experiment, tags, keep=(views.NOTE,))  # the description: the user's
        self.uri, self.name, self.commit = self.experiment.uri, experiment, self.experiment.commit
        self.experiment_id, self.client = self.experiment.experiment_id, self.experiment.client
        self._parents: dict[tuple[str, str], str] = {}

    def runs_url(self, base: str | None = None, view: str = "cells") -> str:
        """The link to a saved view (views.runs_url): `cells` or `curves`."""
        return views.runs_url(self.experiment, base, view)

    def logged_fingerprints(self, dataset: str, backbone: str) -> dict[str, str]:
        """Cell key to the fingerprint of its finished or failed run, for the cells of one dataset × backbone."""
        with self.experiment.errors("read"):
            return cell_runs.logged_fingerprints(self.experiment, dataset, backbone)

    def log_cell(
        self, cell: Cell, result: CellResult, config: dict, result_file: Path, data: dict | None = None
    ) -> str:
        """One child run for the cell under its study's parent run (cell_runs.log_cell); its id."""
        with self.experiment.errors("write"):
            key = cell.dataset, cell.backbone
            if key not in self._parents:
                self._parents[key] = study_run.parent(self.experiment, *key)
            return cell_runs.log_cell(
                self.experiment, self._parents[key], cell, result, config, result_file, data
            )

    def log_study(
        self,
        dataset: str,
        backbone: str,
        curves: dict[str, dict[int, float]],
        scalars: dict[str, float],
        artifacts: list[Path],
        texts: dict[str, str] | None = None,
        params: dict | None = None,
    ) -> str:
        """The parent run of dataset × backbone with its summary, replacing the one before (study_run.log_study)."""
        with self.experiment.errors("write"):
            run_id = study_run.log_study(
                self.experiment, dataset, backbone, curves, scalars, artifacts, texts, params
            )
        self._parents[dataset, backbone] = run_id
        return run_id
