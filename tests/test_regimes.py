"""Each regime on a tiny separable image set: what it trains, what it leaves alone, and that it learns."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import yaml

from conftest import ROOT, tiny_params, tiny_weights
from pretraining_gap import config
from pretraining_gap.data.datasets import assign_split
from pretraining_gap.data.prepared import POOL, TEST, Prepared
from pretraining_gap.grid import Cell, ParamsError
from pretraining_gap.training import backbones, features, layer_groups, regimes

CPU = torch.device("cpu")

CLASSES, PER_CLASS = 3, 25


def typed(p: dict) -> config.Params:
    return config.Params.model_validate(p)


@pytest.fixture(scope="module")
def raw_params(tmp_path_factory) -> dict:
    p = tiny_params(tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors"))
    p["regimes"] = yaml.safe_load((ROOT / "params.yaml").read_text())["regimes"]
    # two candidates per arm, a three-rung ladder
    p["regimes"]["scratch"].update(lr=[0.03], group_norm_lr=[0.003])
    p["regimes"]["finetune"].update(lr=[0.0003, 0.001], batchnorm=["frozen"])
    p["regimes"]["frozen"].update(lr=[0.0003, 0.001], dropout=[0.2])
    p["regimes"]["chainthaw"].update(lr=[0.001], batchnorm=["frozen", "train"], phase_budget=0.5)
    p["regimes"]["depth"].update(k=[2], transferred="frozen", lr=[0.001], lr_new=[0.003, 0.01])
    p["training"].update(min_steps=40, max_steps=40, batch_size=15, ladder=[0.5, 1, 2], reduction_factor=2)
    return p


@pytest.fixture(scope="module")
def params(raw_params) -> config.Params:
    return typed(raw_params)


@pytest.fixture(scope="module")
def data() -> Prepared:
    """Three colours (red, green, blue) under noise: separable by any model that learns at all."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(CLASSES), PER_CLASS)
    images = rng.integers(0, 90, size=(len(labels), 16, 16, 3))
    images[np.arange(len(labels)), :, :, labels] += 150
    split = assign_split(labels, None, val_per_class=5, test_per_class=10, seed=0)
    return Prepared(images.astype(np.uint8), labels, split, ["red", "green", "blue"])


@pytest.fixture(scope="module")
def feats(params, data):
    return features.extract(params.backbones["tiny"], data.images, CPU)


def run(regime, params, data, feats, depth=None):
    cell = Cell("colours", "tiny", regime, 10, 1, depth)
    return regimes.runner(regime)(regimes.CellInputs.of(params, cell, data, data.part(POOL), feats, CPU))


@pytest.fixture(scope="module")
def trained(params, data, feats):
    """Each regime trained once with the module's params (depth: k = 2, frozen), shared by the tests below."""
    done = {}

    def get(regime):
        if regime not in done:
            done[regime] = run(regime, params, data, feats, depth=2 if regime == "depth" else None)
        return done[regime]

    return get


@pytest.mark.parametrize("regime", config.REGIMES)
def test_every_regime_beats_chance_clearly(regime, trained):
    result, _ = trained(regime)
    assert result.test_accuracy >= 0.8, result.test_accuracy  # chance is 1/3


def test_frozen_regimes_never_run_the_backbone(raw_params, data, feats):
    """With an architecture that cannot even be built, the feature regimes still train: they only read features."""
    broken = copy.deepcopy(raw_params)
    broken["backbones"]["tiny"]["model"] = "no_such_architecture"
    for regime in (name for name, cfg in config.REGIMES.items() if cfg.on_features):
        result, _ = run(regime, typed(broken), data, feats)
        assert result.test_accuracy >= 0.8


def states(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def pretrained(params):
    return states(backbones.create(params.backbones["tiny"], CLASSES, pretrained=True, seed=1))


def test_finetune_trains_every_weight_and_keeps_batchnorm_statistics(params, trained):
    before = pretrained(params)
    result, model = trained("finetune")
    after = states(model)
    for name, _ in model.named_parameters():
        if not name.startswith("classifier"):
            assert not torch.equal(before[name], after[name]), name
    for name in after:
        if name.endswith(("running_mean", "running_var")):
            assert torch.equal(before[name], after[name]), name  # batchnorm: frozen
    assert list(result.transferability) == layer_groups.weight_layers(
        model
    )  # conv and linear weights, in order
    assert not any("bn" in name or "classifier" in name for name in result.transferability)


def test_depth_keeps_the_first_k_groups_bit_identical_when_frozen(params, trained):
    before = pretrained(params)
    _, model = trained("depth")
    after = states(model)
    groups = layer_groups.groups(model)
    kept = {n.rsplit(".", 1)[0] for _, names in groups[:2] for n in names}
    for name in after:
        module = name.rsplit(".", 1)[0]
        if module in kept:
            assert torch.equal(before[name], after[name]), name  # weights and batchnorm statistics
        elif name.endswith("weight") and not module.startswith("classifier"):
            assert not torch.equal(before[name], after[name]), name  # re-initialised, then trained


def test_scratch_starts_from_the_seeded_random_init(params, trained):
    random = states(backbones.create(params.backbones["tiny"], CLASSES, pretrained=False, seed=1))
    _, model = trained("scratch")
    changed = [not torch.equal(random[n], v) for n, v in states(model).items() if n.endswith("weight")]
    assert all(changed)


def test_chainthaw_counts_its_phases_and_trains_all_layers_last(params, trained):
    """Each candidate's phases before all layers (one per pretrained group and the new layers) are in its steps;
    its run up the ladder trains every layer."""
    result, model = trained("chainthaw")
    for entry in result.trace:
        assert entry["steps"] > entry["budget_steps"]  # the phases' steps, then the ladder's run
    before = pretrained(params)
    after = states(model)
    assert all(
        not torch.equal(before[n], after[n]) for n, _ in model.named_parameters() if "classifier" not in n
    )


def test_a_grid_is_extended_one_step_past_the_edge_its_best_sits_on(raw_params, data, feats):
    grid = copy.deepcopy(raw_params)
    grid["regimes"]["frozen"]["lr"] = [1e-7, 1e-6]  # far too low: the best sits at the upper edge
    result, _ = run("frozen", typed(grid), data, feats)
    tried = {entry["options"]["lr"]: entry for entry in result.trace}
    assert sorted(tried) == pytest.approx(
        [1e-7, 1e-6, 1e-5]
    )  # one step past the edge, in the grid's own ratio
    assert [e["extension"] for e in result.trace] == [False, False, True]
    assert result.candidates == 2 and result.at_grid_edge == (result.lr == pytest.approx(1e-5))


def test_depth_larger_than_the_backbone_fails_before_training(raw_params):
    too_deep = copy.deepcopy(raw_params)
    too_deep["regimes"]["depth"]["k"] = [2, 40]
    too_deep["study"]["regimes"] = ["scratch", "depth"]
    with pytest.raises(ParamsError, match="regimes.depth.k.*between 1 and"):
        regimes.check_backbone(typed(too_deep), "tiny")
    too_deep["regimes"]["depth"]["k"] = [2]
    regimes.check_backbone(typed(too_deep), "tiny")  # and GroupNorm fits its channels


@pytest.mark.parametrize("regime", config.REGIMES)
def test_every_registered_regime_names_a_runner_and_checks_that_exist(regime):
    entry = config.REGIMES[regime]
    assert callable(regimes.runner(regime))
    assert entry.backbone_check is None or callable(regimes.resolve(entry.backbone_check))
    assert entry.runner.startswith(entry.modules()[0] + ":")


def test_transferability_on_hand_made_tensors():
    random = {"a": torch.tensor([4.0, -4.0]), "b": torch.tensor([1.0])}
    pretrained = {"a": torch.tensor([1.0, 1.0]), "b": torch.tensor([3.0])}
    finetuned = {"a": torch.tensor([0.0, 2.0]), "b": torch.tensor([3.0])}
    t = layer_groups.transferability(random, pretrained, finetuned, ["a", "b"])
    assert t == {"a": pytest.approx((4 + 6) / 2 / 1.0)}  # 'b' did not move: no T


@pytest.mark.parametrize("regime", ["pixels", "linear", "frozen"])
def test_the_test_split_chooses_nothing(regime, params, data, feats):
    """Scrambled test labels change the test accuracy, never a choice made on validation."""
    scrambled = Prepared(data.images, data.labels.copy(), data.split, data.class_names)
    test = data.part(TEST)
    scrambled.labels[test] = (scrambled.labels[test] + 1) % CLASSES
    honest, _ = run(regime, params, data, feats)
    fooled, _ = run(regime, params, scrambled, feats)
    chosen = (
        "lr",
        "dropout",
        "C",
        "classifier",
        "gamma",
        "best_val_accuracy",
        "val_accuracy_by_C",
        "winners_curse",
    )
    assert {k: getattr(honest, k) for k in chosen} == {k: getattr(fooled, k) for k in chosen}
    assert honest.trace == fooled.trace
    assert fooled.test_accuracy < 0.5 < honest.test_accuracy
    assert len(honest.test_logits) == len(honest.test_labels) == len(test) and honest.val_logits


def test_depth_with_every_group_kept_is_finetune(raw_params, params, data, feats):
    """k = all pretrained groups, fine-tuned at finetune's rate, with finetune's head: the same run, step for step."""
    every = layer_groups.groups(backbones.create(params.backbones["tiny"], CLASSES, False, 1))
    same = copy.deepcopy(raw_params)
    same["regimes"]["depth"].update(transferred="finetune", batchnorm="frozen", lr=[1e-3], lr_new=[1e-3])
    same["regimes"]["finetune"].update(lr=[1e-3], backbone_lr_scale=1, batchnorm=["frozen"])
    same["study"]["regimes"] = ["finetune", "depth"]
    depth, _ = run("depth", typed(same), data, feats, depth=len(every) - 1)
    finetune, _ = run("finetune", typed(same), data, feats)
    curves = [
        {k: v for k, v in r.history.items() if k != "time_ms"} for r in (depth, finetune)
    ]  # not the clock
    assert curves[0] == curves[1] and depth.test_accuracy == finetune.test_accuracy


@pytest.mark.parametrize("regime", [name for name, entry in config.REGIMES.items() if entry.gradient])
def test_every_gradient_arm_climbs_the_one_ladder_by_the_one_rule(regime, params, trained):
    """Read from the cell's trace alone: the same first-rung candidates (2 here), the same rungs, successive
    halving by the same factor, climbing only while the best gained, the same edge rule and the same fallback."""
    result, _ = trained(regime)
    check_trace(result, params.training, base=40)


def check_trace(result, training: config.Training, base: int) -> None:
    """The procedure of training/selection.py, checked on a result's trace."""
    rungs = [round(m * base) for m in training.ladder]
    trace = result.trace
    assert result.candidates == sum(not e["extension"] for e in trace) == 2
    reached = [[r["steps"] for r in e.get("rungs", [])] for e in trace]
    for steps in reached:
        assert steps[0] == 0 and steps[1:] == rungs[: len(steps) - 1]  # a prefix of the one ladder
    top = max(len(steps) - 1 for steps in reached)  # rungs climbed
    assert result.rungs == rungs[:top]

    def best_after(rung: int) -> float:
        return max(r["val_accuracy"] for e in trace for r in e.get("rungs", []) if r["steps"] <= rungs[rung])

    def gained_within(rung: int) -> bool:  # a gain at one of the `climb_patience` rungs up to `rung`
        window = range(max(0, rung - training.climb_patience + 1), rung + 1)
        return any(r == 0 or best_after(r) >= best_after(r - 1) + training.min_gain for r in window)

    for rung in range(1, top):
        going = sum(len(steps) - 1 > rung - 1 for steps in reached)
        assert sum(len(steps) - 1 > rung for steps in reached) <= math.ceil(going / training.reduction_factor)
        assert gained_within(rung - 1)  # it climbed only while gaining
    assert top == len(rungs) or not gained_within(top - 1)  # and stopped when it no longer did
    # the edge rule, where one candidate led after the first rung
    first = [e for e in trace if not e["extension"]]
    after_first = [max(r["val_accuracy"] for r in e.get("rungs", [])[:2]) for e in first]
    leaders = [e["options"] for e, a in zip(first, after_first) if a == max(after_first)]
    extended = [e["options"] for e in trace if e["extension"]]
    if len(leaders) == 1:
        (leader,) = leaders
        at_edge = []
        for key, value in leader.items():
            family = sorted(
                {
                    o[key]
                    for o in (e["options"] for e in first)
                    if all(o[k] == leader[k] for k in o if k != key)
                }
            )
            if not isinstance(value, str) and len(family) >= 2 and value in (family[0], family[-1]):
                at_edge.append(key)
        assert sorted(k for o in extended for k in o if o[k] != leader[k]) == sorted(at_edge)
    finished = [e for e in trace if "best_val_accuracy" in e]
    assert result.best_val_accuracy == max(e["best_val_accuracy"] for e in finished)  # the best of any run
    assert result.tuning_steps == sum(e["steps"] for e in trace)
