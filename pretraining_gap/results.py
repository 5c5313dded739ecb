"""Cell result files: the source of truth for a cell, written atomically, keyed by a fingerprint.

A result's `status` is "finished" (it has test_accuracy) or "failed" (it has `reason` instead). Either is kept
while its fingerprint holds: a failed cell fails again the same way with the same config and code, so it is
retried only when one of them changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from .params import Cell

_TMP = ".tmp"  # suffix of a result file being written
# Library files whose code decides a cell's result: a change to any of them redoes the cells.
_CODE = ("backbones.py", "convolutions.py", "datasets.py", "features.py", "layer_groups.py", "regimes.py", "subsets.py", "training.py")


def group_dir(root: Path, cell: Cell) -> Path:
    """The folder of one dataset × backbone, all regimes: one train stage's DVC output."""
    return Path(root) / cell.dataset / cell.backbone


def path(group: Path, cell: Cell) -> Path:
    depth = "" if cell.depth is None else f"k{cell.depth}_"
    return Path(group) / cell.regime / f"{depth}{cell.examples_per_class:04d}-per-class_seed-{cell.seed}.json"


def fingerprint(config: dict) -> str:
    """Hash of everything a cell's result depends on: its resolved config and the library code."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    here = Path(__file__).parent
    for name in _CODE:
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:16]


def write(file: Path, result: dict) -> None:
    """Write-then-rename, so a killed process never leaves a half-written result."""
    file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=file.parent, suffix=_TMP, delete=False) as tmp:
        json.dump(result, tmp, indent=1)
    os.replace(tmp.name, file)


def remove_partial(group: Path) -> None:
    """Delete temporary files a killed process left behind, so they never reach DVC's cache."""
    for tmp in Path(group).glob(f"*/*{_TMP}"):
        tmp.unlink()


def read(file: Path) -> dict | None:
    return json.loads(file.read_text()) if file.exists() else None


def current(file: Path, expected_fingerprint: str) -> dict | None:
    """The stored result (finished or failed) if it was made with the same config and code, else None."""
    result = read(file)
    return result if result and result.get("fingerprint") == expected_fingerprint else None
