"""The code digest: docstrings and comments do not count, behaviour does, through every module a regime imports."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pretraining_gap import config, fingerprints, planning, results
from pretraining_gap.grid import Cell

ROOT = Path(__file__).resolve().parents[1]

SOURCE = '''"""A module."""

LIMIT = 3  # a comment


def f(x):
    """Doubles."""
    return 2 * x
'''


def test_a_docstring_comment_or_layout_edit_keeps_the_digest_and_a_behaviour_edit_changes_it(tmp_path):
    file = tmp_path / "m.py"
    file.write_text(SOURCE)
    before = fingerprints.source_digest(file)
    tidied = SOURCE.replace('"""Doubles."""', '"""Doubles its argument:\n    a longer docstring."""')
    file.write_text("# a header comment\n" + tidied.replace("# a comment", "# another comment") + "\n\n")
    assert fingerprints.source_digest(file) == before
    file.write_text(SOURCE.replace("LIMIT = 3", "LIMIT = 4"))
    assert fingerprints.source_digest(file) != before


def test_imports_are_followed_transitively_relative_and_lazy_ones_included():
    probes = fingerprints.imports("pretraining_gap.training.probes")
    assert {"pretraining_gap.config", "pretraining_gap.results", "pretraining_gap.data.prepared"} <= probes
    assert "pretraining_gap.training.loop" not in probes  # the probes never run the training loop
    # what every cell's training reads is built in training/inputs.py: in every regime's digest, the probes' too
    assert "pretraining_gap.training.inputs" in probes
    regimes = fingerprints.imports("pretraining_gap.training.regimes")
    # loop imports early_stopping: found two imports away; grid through config
    assert {"pretraining_gap.training.early_stopping", "pretraining_gap.grid"} <= regimes
    # execution imports the training code inside a function only
    assert "pretraining_gap.training.regimes" in fingerprints.imports("pretraining_gap.execution")
    assert not any(m.startswith("pretraining_gap.analysis") for m in regimes)


@pytest.fixture
def package_copy(tmp_path, monkeypatch) -> Path:
    """A copy of the package that the digests read, so that a test may edit it."""
    copy = tmp_path / "pretraining_gap"
    shutil.copytree(ROOT / "pretraining_gap", copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fingerprints, "ROOT", copy)
    yield copy
    fingerprints.imports.cache_clear()
    fingerprints.code_digest.cache_clear()
    planning.code_digest.cache_clear()


def regime_digest() -> str:
    fingerprints.imports.cache_clear()
    fingerprints.code_digest.cache_clear()
    return fingerprints.code_digest("pretraining_gap.training.regimes")


def test_a_behaviour_edit_two_imports_away_changes_the_regimes_digest(package_copy):
    before = regime_digest()
    stopping = package_copy / "training/early_stopping.py"
    source = stopping.read_text()
    stopping.write_text(source.replace('"""Early stopping', '"""Tidied: early stopping') + "# a note\n")
    assert regime_digest() == before
    stopping.write_text(source.replace("(-1.0, math.inf)", "(-2.0, math.inf)"))
    assert regime_digest() != before


def test_the_train_stages_file_covers_the_runners_the_registry_names(package_copy):
    """stages/train.py reaches each runner by name only (config.Regime.runner): its digest file must still move
    when a runner's module does, and a regime's own digest must move with its runner alone."""
    train = ROOT / "stages/train.py"
    named = config.runner_modules()
    scratch = package_copy / "training/scratch.py"
    before = fingerprints.script_fingerprint(train, named)["digest"]
    regime_before = {name: planning_digest(name) for name in ("scratch", "finetune")}
    scratch.write_text(scratch.read_text() + "\nEXTRA = 1\n")
    fingerprints.imports.cache_clear()
    assert "pretraining_gap.training.scratch" not in fingerprints.script_imports(train)  # by name only
    assert fingerprints.script_fingerprint(train, named)["digest"] != before
    assert planning_digest("scratch") != regime_before["scratch"]
    assert planning_digest("finetune") == regime_before["finetune"]


def planning_digest(regime: str) -> str:
    fingerprints.imports.cache_clear()
    fingerprints.code_digest.cache_clear()
    planning.code_digest.cache_clear()
    return planning.code_digest(regime)


def test_the_log_says_which_part_of_a_cells_identity_changed():
    cell = Cell("digits", "tiny", "finetune", 1, 1)
    found = {"regime": {"lr": [0.001]}, "seed": 1, "code_digest": "a", "data_digest": "d", "libraries": {}}
    stored = results.CellResult.of(
        cell,
        status="finished",
        fingerprint=planning.fingerprint(found),
        identity_digests=planning.parts(found),
        started_ms=0,
        finished_ms=1,
    )
    assert planning.why(None, found) == "new"
    assert planning.why(stored, found | {"code_digest": "b"}) == "code changed"
    assert planning.why(stored, found | {"seed": 2, "data_digest": "e"}) == "config, data changed"
    assert planning.why(stored, found | {"weights_digest": "w"}) == "weights changed"


def test_a_result_file_the_schema_rejects_is_named_in_the_log(tmp_path, caplog):
    file = tmp_path / "finetune/0001-per-class_seed-1.json"
    file.parent.mkdir()
    file.write_text('{"dataset": "digits", "status": "finished"}')
    assert results.read(file) is None
    assert str(file) in caplog.text and "backbone: Field required" in caplog.text
