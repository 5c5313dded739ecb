"""Transfer regimes: what each starts from and what it trains, for one cell of the grid.

scratch    random init, every layer trained (its own learning rate and a longer budget)
linear     logistic regression on cached frozen features (Kornblith et al. 2019)
frozen     dense layers on cached frozen features (the lecture's model 2)
finetune   every layer trained from the pretrained weights
chainthaw  new layers, then each pretrained layer group alone, first to last, then all (Felbo et al. 2017)
depth      the first k layer groups pretrained, the rest re-initialised, then trained (Yosinski et al. 2014)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import timm
import torch
from torch import nn

from . import backbones, layer_groups, training
from .datasets import TEST, VAL, Prepared
from .params import Cell, ParamsError

# A builder makes a fresh model for one learning rate: (model, optimiser param groups, modules kept in eval mode).
Builder = Callable[[float], tuple[nn.Module, list[dict], tuple[nn.Module, ...]]]
Trainer = Callable[[nn.Module, list[dict], tuple[nn.Module, ...]], training.Fit]


@dataclass
class _Data:
    """A cell's model inputs: train / validation / test as (inputs, labels) tensors."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]


def _split(data: Prepared, train_idx: np.ndarray, inputs: Callable[[np.ndarray], torch.Tensor]) -> _Data:
    def part(idx):
        return inputs(idx), torch.from_numpy(data.labels[idx])

    return _Data(part(train_idx), part(data.part(VAL)), part(data.part(TEST)))


def _image_split(params: dict, cell: Cell, data: Prepared, train_idx: np.ndarray) -> _Data:
    # The input statistics the architecture's weights expect; a randomly initialised copy carries them.
    mean, std = backbones.normalisation(timm.create_model(params["backbones"][cell.backbone]["model"]))
    return _split(data, train_idx, lambda idx: training.to_input(data.images[idx], mean, std))


def _grid(cfg: dict) -> list[float]:
    return cfg["lr"] if isinstance(cfg["lr"], list) else [cfg["lr"]]


def _best_lr(cell: Cell, cfg: dict, split: _Data, build: Builder, train: Trainer) -> tuple[dict, nn.Module]:
    """Train once per learning rate of the regime's grid; keep the best on validation (accuracy, then loss)."""
    best, scores, seconds = None, {}, 0.0
    for lr in _grid(cfg):
        model, groups, eval_modules = build(lr)
        fit = train(model, groups, eval_modules)
        scores[f"{lr:g}"], seconds = fit.best[0], seconds + fit.seconds
        if best is None or (fit.best[0], -fit.best[1]) > (best[2].best[0], -best[2].best[1]):
            best = (lr, model, fit)
    lr, model, fit = best
    test_accuracy, test_loss = training.evaluate(model, *split.test)
    return {"test_accuracy": test_accuracy, "test_loss": test_loss, "best_val_accuracy": fit.best[0],
            "train_seconds": seconds, "images_per_second": fit.images_per_second, "steps": fit.steps,
            "best_step": fit.best_step, "lr": lr, "val_accuracy_by_lr": scores, "history": fit.history}, model


def _gradient(cell: Cell, params: dict, split: _Data, build: Builder, multiplier: float = 1.0,
              augment: bool = True) -> tuple[dict, nn.Module]:
    """One `training.fit` per learning rate, with the subset-size step budget times `multiplier`."""
    train_cfg = params["training"]
    plan = training.budget(len(split.train[0]), train_cfg, multiplier)

    def train(model, groups, eval_modules):
        return training.fit(model, groups, split.train, split.val, plan, train_cfg, cell.seed, augment=augment,
                            eval_modules=eval_modules, desc=cell.run_name)

    result, model = _best_lr(cell, params["regimes"][cell.regime], split, build, train)
    return {**result, "budget_steps": plan.steps, "batch_size": plan.batch_size}, model


def _pretrained(params: dict, cell: Cell, num_classes: int) -> nn.Module:
    return backbones.create(params["backbones"][cell.backbone], num_classes, pretrained=True, seed=cell.seed)


def scratch(cell, params, data, train_idx, features=None):
    cfg = params["regimes"]["scratch"]

    def build(lr):
        model = backbones.create(params["backbones"][cell.backbone], len(data.class_names), False, cell.seed)
        return model, [{"params": list(model.parameters()), "lr": lr}], ()

    return _gradient(cell, params, _image_split(params, cell, data, train_idx), build, cfg["budget_multiplier"])


def finetune(cell, params, data, train_idx, features=None):
    """All layers from the pretrained weights; the head's learning rate is `lr`, the backbone's `lr` × scale."""
    cfg = params["regimes"]["finetune"]

    def build(lr):
        model = _pretrained(params, cell, len(data.class_names))
        head = set(model.get_classifier().parameters())
        groups = [{"params": list(head), "lr": lr},
                  {"params": [p for p in model.parameters() if p not in head], "lr": lr * cfg["backbone_lr_scale"]}]
        return model, groups, training.batchnorms(model) if cfg["batchnorm"] == "frozen" else ()

    result, model = _gradient(cell, params, _image_split(params, cell, data, train_idx), build)
    return {**result, "transferability": _transferability(params, cell, len(data.class_names), model)}, model


def _transferability(params: dict, cell: Cell, num_classes: int, finetuned: nn.Module) -> dict[str, float]:
    """T per pretrained layer group, against the seeded random init and the pretrained weights."""
    cfg = params["backbones"][cell.backbone]
    random = backbones.create(cfg, num_classes, pretrained=False, seed=cell.seed).state_dict()
    pretrained = _pretrained(params, cell, num_classes).state_dict()
    tuned = {k: v.detach().cpu() for k, v in finetuned.state_dict().items()}
    return layer_groups.transferability(random, pretrained, tuned, layer_groups.groups(finetuned)[:-1])


def depth(cell, params, data, train_idx, features=None):
    """AnB (`transferred: frozen`) or AnB+ (`finetune`): keep the first k groups, re-initialise the rest."""
    cfg = params["regimes"]["depth"]
    frozen_transfer = cfg["transferred"] == "frozen"

    def build(lr):
        model = _pretrained(params, cell, len(data.class_names))
        groups = layer_groups.groups(model)[:-1]  # the classifier is new in every regime
        kept = {name for _, names in groups[:cell.depth] for name in names}
        kept_modules = {name.rsplit(".", 1)[0] for name in kept}
        random = backbones.create(params["backbones"][cell.backbone], len(data.class_names), False, cell.seed)
        state = {k: v if k.rsplit(".", 1)[0] in kept_modules else random.state_dict()[k]
                 for k, v in model.state_dict().items()}
        model.load_state_dict(state)
        for name, p in model.named_parameters():
            p.requires_grad_(not (frozen_transfer and name in kept))
        modules = dict(model.named_modules())
        kept_bn = tuple(m for name, m in modules.items() if name in kept_modules and m in training.batchnorms(model))
        freeze_bn = frozen_transfer or cfg["batchnorm"] == "frozen"
        return model, [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}], \
            kept_bn if freeze_bn else ()

    return _gradient(cell, params, _image_split(params, cell, data, train_idx), build)


def check_depth(params: dict, backbone: str) -> None:
    """Fail before training when a depth k exceeds the backbone's pretrained layer groups."""
    available = len(layer_groups.groups(timm.create_model(params["backbones"][backbone]["model"]))) - 1
    asked = max(params["regimes"]["depth"]["k"])
    if asked > available:
        raise ParamsError("regimes.depth.k", f"k={asked} asked, but {backbone} has {available} pretrained layer groups",
                          f"keep k between 1 and {available} ({available} is the same as finetune)")


def chainthaw(cell, params, data, train_idx, features=None):
    """New layers, then each pretrained group alone (first to last), then all layers.

    Each phase stops early on validation loss and ends on its best weights, from which the next phase starts;
    a phase that never beats its start leaves the weights as they were.
    """
    cfg, train_cfg = params["regimes"]["chainthaw"], params["training"]
    split = _image_split(params, cell, data, train_idx)
    plan = training.budget(len(train_idx), train_cfg, cfg["phase_budget"])
    phase_cfg = {**train_cfg, "patience": cfg["phase_patience"]}

    def build(lr):
        model = _pretrained(params, cell, len(data.class_names))
        return model, [{"lr": lr}], training.batchnorms(model) if cfg["batchnorm"] == "frozen" else ()

    def train(model, groups, eval_modules):
        named = dict(model.named_parameters())
        *pretrained, (_, head) = layer_groups.groups(model)
        phases = [("new layers", head), *pretrained, ("all layers", list(named))]
        chain = training.Fit()
        chain.history["phase"] = []
        for phase, names in phases:
            for name, p in named.items():
                p.requires_grad_(name in names)
            fit = training.fit(model, [{**groups[0], "params": [named[n] for n in names]}], split.train, split.val,
                               plan, phase_cfg, cell.seed, eval_modules=eval_modules, monitor="loss",
                               evaluate_start=True, desc=f"{cell.run_name} · {phase}")
            for key, values in fit.history.items():
                chain.history[key] += [chain.steps + v for v in values] if key == "step" else values
            chain.history["phase"] += [phase] * len(fit.history["step"])
            chain.best, chain.best_step = fit.best, chain.steps + fit.best_step
            chain.steps += fit.steps
            chain.seconds += fit.seconds
        chain.images_per_second = chain.steps * plan.batch_size / chain.seconds
        return chain

    result, model = _best_lr(cell, cfg, split, build, train)
    return {**result, "budget_steps": plan.steps * (len(layer_groups.groups(model)) + 1),
            "batch_size": plan.batch_size}, model


def frozen(cell, params, data, train_idx, features):
    """Dense layers (`hidden` widths, ReLU, dropout) on cached frozen features; the backbone never runs here."""
    cfg = params["regimes"]["frozen"]
    x = torch.from_numpy(features).float()
    # Centred and scaled by the training subset alone, so one learning-rate grid suits every backbone's features.
    x = (x - x[train_idx].mean(0)) / x[train_idx].std().clamp_min(1e-12)
    split = _split(data, train_idx, lambda idx: x[idx])

    def build(lr):
        torch.manual_seed(cell.seed)
        widths = [x.shape[1], *cfg["hidden"]]
        layers = [m for a, b in zip(widths, widths[1:]) for m in (nn.Linear(a, b), nn.ReLU(), nn.Dropout(cfg["dropout"]))]
        head = nn.Sequential(*layers, nn.Linear(widths[-1], len(data.class_names)))
        return head, [{"params": list(head.parameters()), "lr": lr}], ()

    return _gradient(cell, params, split, build, augment=False)


def linear(cell, params, data, train_idx, features):
    """Logistic regression on cached frozen features; the regularisation C is chosen on validation."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    start = time.perf_counter()
    val, test = data.part(VAL), data.part(TEST)
    fits = [LogisticRegression(C=c, max_iter=2000).fit(features[train_idx], data.labels[train_idx])
            for c in sorted(params["regimes"]["linear"]["C"])]
    scores = [f.score(features[val], data.labels[val]) for f in fits]
    best = fits[int(np.argmax(scores))]  # first of ties: the strongest regularisation
    seconds = time.perf_counter() - start
    return {"test_accuracy": best.score(features[test], data.labels[test]),
            "test_loss": log_loss(data.labels[test], best.predict_proba(features[test]), labels=best.classes_),
            "best_val_accuracy": max(scores), "train_seconds": seconds, "C": best.C}, best


def steps_at_most(cell: Cell, params: dict, n_train: int) -> int:
    """Roughly the cell's work: its backbone training steps over the lr grid, 0 on cached features (the order in
    which cells go to the workers; chain-thaw's early-stopped phases are counted as one budget)."""
    if cell.regime in FEATURE_REGIMES:
        return 0
    cfg = params["regimes"][cell.regime]
    return training.budget(n_train, params["training"], cfg.get("budget_multiplier", 1)).steps * len(_grid(cfg))


# Each runner: (cell, params, prepared data, training indices, cached features) -> (result dict, trained model).
RUNNERS = {"scratch": scratch, "linear": linear, "frozen": frozen, "finetune": finetune, "chainthaw": chainthaw,
           "depth": depth}
FEATURE_REGIMES = {"linear", "frozen"}  # trained on features cached once per dataset × backbone
