"""A new regime is one registry entry: here a made-up one (`headonly`, docs/adding-a-regime.md) is registered by a
test, without touching the package, and goes through the schema, the grid, the plan and a cell's training."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from pydantic import Field

from conftest import tiny_params, tiny_weights
from pretraining_gap import config, execution, planning, results
from pretraining_gap.data import datasets, subsets
from pretraining_gap.data.prepared import POOL
from pretraining_gap.grid import ParamsError
from pretraining_gap.results import Outcome
from pretraining_gap.training import features, loop, regimes


class Headonly(config.Regime):
    """The worked example's options: a grid of learning rates for the new head."""

    runner = f"{__name__}:headonly"
    colour, marker, summary = "tab:pink", "*", "only the new head trained, on the frozen pretrained backbone"
    lr: config.LearningRates = Field(description="AdamW peak learning rate(s) of the head", examples=[0.01])


def headonly(inputs: regimes.CellInputs) -> tuple[Outcome, torch.nn.Module]:
    """The worked example's runner: the pretrained backbone frozen (batch-norm statistics too), the head trained."""

    def build(options: dict) -> loop.Member:
        lr, model = options["lr"], regimes.pretrained(inputs)
        head = list(model.get_classifier().parameters())
        for p in model.parameters():
            p.requires_grad_(any(p is q for q in head))
        return loop.Member(model, [{"params": head, "lr": lr}], loop.batchnorms(model))

    return regimes.gradient(inputs, regimes.image_split(inputs), build)


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(config.REGIMES, "headonly", Headonly)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict:
    """Tiny digits prepared, their subsets and cached features, as the stages before train write them."""
    base = tmp_path_factory.mktemp("workspace")
    raw = tiny_params(tiny_weights(base / "tiny.safetensors"))
    raw["study"].update(sizes=[2, 3], seeds=[1])
    typed = config.validate(raw)  # before the made-up regime joins it
    raw["study"]["regimes"] = ["headonly"]
    raw["regimes"]["headonly"] = {"lr": [0.01, 0.1]}
    data = datasets.prepare("digits", typed.datasets["digits"], typed.study.sizes)
    data.save(base / "digits.npz")
    subsets.save(base / "subsets.json", {1: subsets.class_orderings(data.labels, data.part(POOL), 1)})
    feats = features.extract(typed.backbones["tiny"], data.images, torch.device("cpu"))
    np.save(base / "features.npy", feats)
    return {"raw": raw, "files": (base / "digits.npz", base / "subsets.json", base / "features.npy")}


def test_a_registered_regime_is_validated_planned_and_trained(registered, workspace, tmp_path):
    params = config.validate(workspace["raw"])
    assert isinstance(params.regime("headonly"), Headonly)
    cells = params.cells()
    assert [(c.regime, c.examples_per_class, c.depth) for c in cells] == [
        ("headonly", 2, None),
        ("headonly", 3, None),
    ]

    prepared, subsets_file, features_file = workspace["files"]
    inputs = planning.Inputs.load(params, "tiny", prepared, subsets_file, features_file)
    out = tmp_path / "cells"
    plan = planning.plan(params, "digits", "tiny", inputs, out)
    assert set(plan.to_train) == set(cells) and not plan.kept
    identity = plan.identities[cells[0]]
    assert (
        identity["regime"] == {"lr": [0.01, 0.1]} and "weights_digest" in identity
    )  # pretrained: its weights
    n_train = len(plan.train_idx[cells[0]])
    base, ladder = loop.budget(n_train, params.training).steps, params.training.ladder
    assert plan.work[cells[0]] == round(base * (2 * ladder[0] + ladder[-1]))  # two rates, the shared ladder

    cell = cells[0]
    job = execution.Job(cell, params, plan.fingerprint(cell), plan.train_idx[cell], prepared, features_file)
    result = execution.train_cell(job)
    assert result.status == "finished", result.reason
    tried = [entry["options"]["lr"] for entry in result.trace]
    assert {0.01, 0.1} <= set(tried) and result.lr in tried and result.candidates == 2
    results.write(results.path(out, cell), result)
    again = planning.plan(params, "digits", "tiny", inputs, out)
    assert [c for c, _ in again.kept] == [cell] and again.to_train == [cells[1]]


def test_a_registered_regime_trains_only_what_it_says(registered, workspace):
    params = config.validate(workspace["raw"])
    prepared, subsets_file, features_file = workspace["files"]
    inputs = planning.Inputs.load(params, "tiny", prepared, subsets_file, features_file)
    cell = params.cells()[1]
    data, feats = execution._loaded(prepared, features_file)
    cell_inputs = regimes.CellInputs.of(
        params, cell, data, inputs.train_idx(cell), feats, torch.device("cpu")
    )
    _, model = regimes.runner("headonly")(cell_inputs)
    start = regimes.pretrained(cell_inputs).state_dict()
    classifier = next(name for name, m in model.named_modules() if m is model.get_classifier())
    head = {f"{classifier}.weight", f"{classifier}.bias"}
    for name, value in model.state_dict().items():
        assert torch.equal(value, start[name]) != (name in head), name  # the head moved, nothing else did


def test_a_registered_regime_has_its_options_checked_by_key(registered, workspace):
    raw = copy.deepcopy(workspace["raw"])
    raw["regimes"]["headonly"]["lrr"] = 0.1
    with pytest.raises(ParamsError, match="regimes.headonly.lrr: unknown key. Fix: did you mean 'lr'"):
        config.validate(raw)


def test_an_unregistered_regime_is_an_unknown_key(workspace):
    with pytest.raises(ParamsError, match="regimes.headonly: unknown key") as error:
        config.validate(workspace["raw"])
    assert error.value.key == "regimes.headonly"
