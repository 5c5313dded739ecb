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
    p["regimes"]["depth"].update(k=[2], transferred="frozen")
    p["regimes"]["chainthaw"].update(phase_budget=0.5)
    p["regimes"]["scratch"].update(budget_multiplier=1, choosing_multiplier=None)  # beats chance sooner
    p["training"].update(min_steps=40, max_steps=40, evaluations=4, patience=1.0, batch_size=15)
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


def test_chainthaw_phases_run_in_order_and_each_starts_from_the_previous_best(trained):
    result, model = trained("chainthaw")
    history = result.history
    phases = list(dict.fromkeys(history["phase"]))
    groups = [name for name, _ in layer_groups.groups(model)[:-1]]
    assert phases == ["new layers", *groups, "all layers"]
    assert history["step"] == sorted(history["step"])
    for previous, phase in zip(phases, phases[1:]):
        losses = [loss for p, loss in zip(history["phase"], history["val_loss"]) if p == previous]
        start = history["val_loss"][history["phase"].index(phase)]
        assert start == pytest.approx(min(losses), abs=1e-6)  # the best weights were reloaded


def test_learning_rate_grid_is_chosen_on_validation_and_extended_past_its_edge(raw_params, data, feats):
    grid = copy.deepcopy(raw_params)
    grid["regimes"]["frozen"]["lr"] = [1e-7, 1e-6]  # far too low: the best sits at the upper edge
    result, _ = run("frozen", typed(grid), data, feats)
    scores = result.val_accuracy_by_lr
    assert set(scores) == {"1e-07", "1e-06", "1e-05"}  # one step past the edge, in the grid's own ratio
    assert result.lr == max([1e-7, 1e-6, 1e-5], key=lambda lr: (scores[f"{lr:g}"], lr))
    assert result.best_val_accuracy == max(scores.values())
    assert result.at_grid_edge == (result.lr == 1e-5)


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
        "C",
        "classifier",
        "gamma",
        "best_val_accuracy",
        "val_accuracy_by_lr",
        "val_accuracy_by_C",
    )
    assert {k: getattr(honest, k) for k in chosen} == {k: getattr(fooled, k) for k in chosen}
    assert fooled.test_accuracy < 0.5 < honest.test_accuracy


def test_depth_with_every_group_kept_is_finetune(raw_params, params, data, feats):
    """k = all pretrained groups, fine-tuned at finetune's rate, with finetune's head: the same run, step for step."""
    every = layer_groups.groups(backbones.create(params.backbones["tiny"], CLASSES, False, 1))
    same = copy.deepcopy(raw_params)
    same["regimes"]["depth"].update(transferred="finetune", batchnorm="frozen", lr=[1e-3], lr_new=[1e-3])
    same["regimes"]["finetune"].update(lr=[1e-3], backbone_lr_scale=1, batchnorm="frozen")
    depth, _ = run("depth", typed(same), data, feats, depth=len(every) - 1)
    finetune, _ = run("finetune", typed(same), data, feats)
    curves = [
        {k: v for k, v in r.history.items() if k != "time_ms"} for r in (depth, finetune)
    ]  # not the clock
    assert curves[0] == curves[1] and depth.test_accuracy == finetune.test_accuracy


def test_rates_compared_on_a_shorter_budget_then_the_chosen_one_trained_on_the_whole(raw_params, data, feats):
    halving = copy.deepcopy(raw_params)
    halving["regimes"]["scratch"].update(
        lr=[0.01, 0.03], group_norm_lr=[0.001], budget_multiplier=2, choosing_multiplier=1
    )
    result, model = run("scratch", typed(halving), data, feats)
    assert result.choosing_steps == 40 and result.budget_steps == 80  # the module's budget: 40 steps
    assert set(result.val_accuracy_by_lr) >= {"batch 0.01", "batch 0.03", "group 0.001"}
    assert result.val_accuracy_by_lr[f"{result.norm} {result.lr:g}"] == max(
        result.val_accuracy_by_lr.values()
    )
    norms = {type(m).__name__ for m in model.modules() if "Norm" in type(m).__name__}
    assert norms == ({"BatchNormAct2d"} if result.norm == "batch" else {"GroupNormAct"})
    assert result.history["step"][-1] > 40  # the kept run is the long one


@pytest.mark.parametrize("spoil", ["shuffled labels", "diverging"])
def test_a_final_run_worse_on_validation_than_the_run_that_chose_its_rate_is_not_kept(
    spoil, params, data, feats
):
    """Successive halving keeps the long run unless the short run that chose its rate is more accurate on
    validation; a long run that learns nothing (shuffled labels) or diverges leaves the short run's weights, budget
    and history (the 5-per-class scratch cell of seed 4 kept a collapsed long run and fell to 0.49)."""
    cell = Cell("colours", "tiny", "finetune", 10, 1)
    inputs = regimes.CellInputs.of(params, cell, data, data.part(POOL), feats, CPU)
    split = regimes.image_split(inputs)
    choosing = regimes.loop.budget(len(split.train[0]), params.training)
    plan = regimes.loop.budget(len(split.train[0]), params.training, 2)

    def build(lr):
        model = backbones.create(params.backbones["tiny"], CLASSES, True, 1)
        return regimes.loop.Member(model, [{"params": list(model.parameters()), "lr": lr}])

    def train(members, budget, spoilt=None):
        x, y = split.train
        if spoilt == "shuffled labels":
            y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
        if spoilt == "diverging":
            for member in members:
                member.param_groups[0]["lr"] = math.inf
        return regimes.loop.fit(
            members, (x, y), split.val, budget, params.training, 1, CPU, evaluate_start=True
        )

    grid = regimes.rates(params.regime("finetune"))
    honest, _ = regimes.best_setting(inputs, split, build, train, plan, choosing, grid)
    spoilt, model = regimes.best_setting(
        inputs, split, build, lambda m, b: train(m, b, spoil if b == plan else None), plan, choosing, grid
    )
    # on the module's data the longer run is better
    assert honest.kept_run == "final" and honest.budget_steps == plan.steps
    assert spoilt.kept_run == "choosing" and spoilt.budget_steps == choosing.steps
    assert spoilt.best_val_accuracy == spoilt.val_accuracy_by_lr[f"{spoilt.lr:g}"] > 0.5
    assert spoilt.history["step"][-1] <= choosing.steps
    # the model returned is the short run's best weights
    assert regimes.loop.evaluate(model, *split.val, CPU)[0] == spoilt.best_val_accuracy
