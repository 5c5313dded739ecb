"""What every regime's training of one cell shares: its splits (its inputs are in inputs.py) and choosing its
candidate on validation (the one procedure of every gradient arm: selection.py); and the regime registry's runners,
looked up by name.

Each regime is a registry entry (`config.REGIMES`: its options, traits and runner); its runner lives in a module
of its own, named after it (docs/adding-a-regime.md adds one):

scratch.py    random init, every layer trained (its own learning rates, batch norm or GroupNorm)
probes.py     pixels: 1-NN, logistic regression or an RBF SVM on raw pixels (no pretraining: a strong baseline);
              linear: logistic regression on cached frozen features (Kornblith et al. 2019)
frozen.py     dense layers on cached frozen features (the lecture's model 2)
finetune.py   every layer trained from the pretrained weights
chainthaw.py  new layers, then each pretrained layer group alone, first to last, then all (Felbo et al. 2017)
depth.py      the first k layer groups pretrained, the rest re-initialised, then trained (Yosinski et al. 2014)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import timm
import torch
from torch import nn

from ..config import REGIMES, Params
from ..data.prepared import TEST, VAL
from ..grid import Cell
from ..results import Outcome
from . import backbones, loop, selection
from .inputs import CellInputs


@dataclass
class Split:
    """A cell's model inputs: train / validation / test as (inputs, labels) tensors."""

    train: loop.Tensors
    val: loop.Tensors
    test: loop.Tensors


def split(inputs: CellInputs, transform: Callable[[np.ndarray], torch.Tensor]) -> Split:
    """The cell's training subset, validation and test split, each image (by index) through `transform`."""
    data = inputs.data

    def part(idx):
        return transform(idx), torch.from_numpy(data.labels[idx])

    return Split(part(inputs.train_idx), part(data.part(VAL)), part(data.part(TEST)))


def image_split(inputs: CellInputs) -> Split:
    """The cell's images as the backbone's normalised inputs (`loop.to_input`)."""
    # The input statistics the architecture's weights expect; a randomly initialised copy carries them.
    mean, std = backbones.normalisation(timm.create_model(inputs.backbone.model))
    return split(inputs, lambda idx: loop.to_input(inputs.data.images[idx], mean, std))


def gradient(
    inputs: CellInputs,
    split: Split,
    build: selection.Builder,
    architecture: tuple[str, ...] = (),
    augment: bool = True,
    fuse: bool = True,
) -> tuple[Outcome, nn.Module]:
    """The regime's candidates (`config.Regime.candidate_options`, each made by `build`) chosen by the one selection
    procedure of every gradient arm (selection.py); candidates with equal `architecture` options train fused."""
    options = inputs.regime.candidate_options()
    return selection.select(inputs, split, options, build, architecture, augment, fuse)


def pretrained(inputs: CellInputs) -> nn.Module:
    """The cell's backbone with its pretrained weights and a seeded new head."""
    return backbones.create(inputs.backbone, inputs.num_classes, pretrained=True, seed=inputs.cell.seed)


def random_init(inputs: CellInputs) -> nn.Module:
    """The cell's architecture, seeded random init (the head as `pretrained`'s)."""
    return backbones.create(inputs.backbone, inputs.num_classes, pretrained=False, seed=inputs.cell.seed)


def check_backbone(params: Params, backbone: str) -> None:
    """Fail before training when a regime of the study asks the backbone for what it does not have (each regime's
    `config.Regime.backbone_check`, e.g. a depth k beyond its pretrained layer groups): ParamsError."""
    model = timm.create_model(params.backbones[backbone].model)
    for name in params.study.regimes:
        check = REGIMES[name].backbone_check
        if check:
            resolve(check)(params.regime(name), backbone, model)


def work(cell: Cell, params: Params, n_train: int) -> int:
    """Roughly the cell's work, for ordering the cells longest first: its candidates' first rung and the ladder's
    top (selection.py); 0 on cached features or pixels."""
    cfg = params.regime(cell.regime)
    if cfg.on_features or not cfg.gradient:
        return 0
    ladder, base = params.training.ladder, loop.budget(n_train, params.training).steps
    return round(base * (cfg.candidates * ladder[0] + ladder[-1]))


Runner = Callable[[CellInputs], tuple[Outcome, object]]  # one cell: its outcome and its trained model


def runner(regime: str) -> Runner:
    """The registered regime's runner (`config.Regime.runner`, "module:function"), imported now."""
    return resolve(REGIMES[regime].runner)


def resolve(name: str) -> Callable:
    """The function a registry entry names as "module:function" (a runner, a backbone check), imported now."""
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)
