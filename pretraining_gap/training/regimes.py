"""What every regime's training of one cell shares: its splits (its inputs are in inputs.py), its budgets, and
choosing its settings on validation; and the regime registry's runners, looked up by name.

Each regime is a registry entry (`config.REGIMES`: its options, traits and runner); its runner lives in a module
of its own, named after it (docs/adding-a-regime.md adds one):

scratch.py    random init, every layer trained (its own learning rates and a longer budget)
probes.py     pixels: 1-NN, logistic regression or an RBF SVM on raw pixels (no pretraining: a strong baseline);
              linear: logistic regression on cached frozen features (Kornblith et al. 2019)
frozen.py     dense layers on cached frozen features (the lecture's model 2)
finetune.py   every layer trained from the pretrained weights
chainthaw.py  new layers, then each pretrained layer group alone, first to last, then all (Felbo et al. 2017)
depth.py      the first k layer groups pretrained, the rest re-initialised, then trained (Yosinski et al. 2014)
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import timm
import torch
from torch import nn

from ..config import REGIMES, Params, Regime, Training
from ..data.prepared import TEST, VAL
from ..grid import Cell
from ..results import Outcome
from . import backbones, loop, tuning
from .inputs import CellInputs

# A run converged when its best evaluation came before the last fifth of its step budget: one still improving at
# the end of its budget was stopped, not finished, and understates its arm.
CONVERGED = 0.8


# A builder makes a fresh model for one setting (a learning rate, or a depth-k pair): a member of the grid's run.
Builder = Callable[[float | tuple], loop.Member]
# A trainer trains members (one architecture: fused) on a budget: each one's Fit, or its Diverged error.
Trainer = Callable[[list[loop.Member], loop.Budget], list[loop.Fit | loop.Diverged]]


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


@dataclass(frozen=True)
class Grid:
    """How a regime compares its settings on validation: `search(run, score)` tries them (tuning.py), `fields(best)`
    are the result fields of the one chosen (`config.Regime.chosen`)."""

    search: Callable[[Callable, Callable], tuning.Search]
    fields: Callable[[Any], dict[str, Any]]


def rates(cfg: Regime) -> Grid:
    """The grid of most gradient regimes: their learning rates `cfg.lr`, one step past an edge the best sits on."""
    return Grid(lambda run, score: tuning.search(cfg.lr, run, score), lambda best: {"lr": best})


Trial = tuple[nn.Module, loop.Fit] | None  # a setting's trained model and its Fit; None: it diverged


@dataclass
class _Runs:
    """Builds and trains settings (`run(settings, budget)`), counting the time, the images and the divergences
    of every run."""

    build: Builder
    train: Trainer
    budget: loop.Budget  # unless a run names its own
    seconds: float = 0.0
    images: int = 0
    diverged: list[loop.Diverged] = field(default_factory=list)

    def __call__(self, settings: list, budget: loop.Budget | None = None) -> list[Trial]:
        budget = budget or self.budget
        members = [self.build(setting) for setting in settings]
        start = time.perf_counter()
        fits = self.train(members, budget)
        self.seconds += time.perf_counter() - start
        self.diverged.extend(fit for fit in fits if isinstance(fit, loop.Diverged))
        self.images += budget.batch_size * sum(
            fit.step if isinstance(fit, loop.Diverged) else fit.steps for fit in fits
        )
        return [
            None if isinstance(fit, loop.Diverged) else (member.model, fit)
            for member, fit in zip(members, fits)
        ]


def _score(trial: Trial) -> tuple[float, ...]:
    """Validation accuracy, then lower loss; a diverged run loses to every other."""
    return (-math.inf,) if trial is None else (trial[1].best[0], -trial[1].best[1])


def best_setting(
    inputs: CellInputs,
    split: Split,
    build: Builder,
    train: Trainer,
    plan: loop.Budget,
    choosing: loop.Budget,
    grid: Grid,
) -> tuple[Outcome, nn.Module]:
    """Train the regime's settings (`grid`: e.g. its learning rates, fused by loop.fit; one step past an edge the
    best sits on, tuning.py) on the `choosing` budget; keep the best on validation (accuracy, then loss).

    When `choosing` is shorter than `plan`, the chosen setting then trains once more on the whole `plan`
    (successive halving with one rung: the settings are compared on a shorter schedule of their own, the winner
    is trained to convergence), and that final run is kept unless the run that chose its setting is more accurate
    on validation (`_final_rung`). A setting whose run diverges loses; the cell fails only when every one does.
    """
    runs = _Runs(build, train, choosing)
    found = grid.search(runs, _score)
    if found.trial is None:
        raise runs.diverged[0]
    (model, fit), budget = _final_rung(found, runs, plan, choosing)
    test_accuracy, test_loss = loop.evaluate(model, *split.test, inputs.device)
    outcome = Outcome(
        test_accuracy=test_accuracy,
        test_loss=test_loss,
        best_val_accuracy=fit.best[0],
        train_seconds=runs.seconds,
        images_per_second=runs.images / runs.seconds,
        steps=fit.steps,
        best_step=fit.best_step,
        budget_steps=budget.steps,
        batch_size=budget.batch_size,
        converged=fit.best_step < CONVERGED * budget.steps,
        **grid.fields(found.best),
        val_accuracy_by_lr={
            _lr_name(lr): trial[1].best[0] if trial else None for lr, trial in found.tried.items()
        },
        choosing_steps=None if choosing == plan else choosing.steps,
        kept_run=None if choosing == plan else "final" if budget == plan else "choosing",
        at_grid_edge=found.at_edge,
        history=fit.history,
    )
    return outcome, model


def _final_rung(
    found: tuning.Search, runs: _Runs, plan: loop.Budget, choosing: loop.Budget
) -> tuple[tuple[nn.Module, loop.Fit], loop.Budget]:
    """The run to keep and its budget: the chosen setting's run on the whole `plan` when the settings were compared
    on a shorter `choosing` budget, unless the run that chose it is more accurate on validation. A longer run at a
    rate on the edge of stability can collapse; keeping it would charge the arm for an unlucky run when it has a
    better one in hand."""
    if choosing == plan:
        return found.trial, choosing
    final = runs([found.best], plan)[0]
    # accuracy alone: at equal accuracy the longer run's surer predictions cost loss on its few errors
    if final is not None and final[1].best[0] >= found.trial[1].best[0]:
        return final, plan
    return found.trial, choosing


def _lr_name(lr: float | tuple) -> str:
    """'0.001', '0.001 0.01' (a depth-k pair), 'group 0.001' (scratch with GroupNorm)."""
    values = lr if isinstance(lr, tuple) else (lr,)
    return " ".join(v if isinstance(v, str) else f"{v:g}" for v in values)


def budgets(cfg: Regime, n_train: int, training: Training) -> tuple[loop.Budget, loop.Budget]:
    """The cell's budget (the subset-size rule, `loop.budget`, times the regime's multiplier), and the budget its
    settings are compared on: the regime's shorter one when it has one and settings to choose from, else the
    same (`config.Regime.multipliers`)."""
    multiplier, shorter = cfg.multipliers
    plan = loop.budget(n_train, training, multiplier)
    return plan, loop.budget(n_train, training, shorter) if shorter and cfg.candidates > 1 else plan


def gradient(
    inputs: CellInputs,
    split: Split,
    build: Builder,
    grid: Grid | None = None,
    augment: bool = True,
    fuse: bool = True,
) -> tuple[Outcome, nn.Module]:
    """The grid's settings (default: the learning rates, `rates`) trained together (`loop.fit`), then the chosen
    one on the whole budget when they were compared on a shorter one (`budgets`)."""
    plan, choosing = budgets(inputs.regime, len(split.train[0]), inputs.training)

    def train(members: list[loop.Member], budget: loop.Budget) -> list[loop.Fit | loop.Diverged]:
        return loop.fit(
            members,
            split.train,
            split.val,
            budget,
            inputs.training,
            inputs.cell.seed,
            inputs.device,
            augment=augment,
            evaluate_start=True,  # step 0: the start each arm has before any training (jumpstart)
            fuse=fuse,
            desc=inputs.cell.run_name,
        )

    return best_setting(inputs, split, build, train, plan, choosing, grid or rates(inputs.regime))


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
    """Roughly the cell's work, for ordering the cells longest first: its backbone training steps over its grid;
    0 on cached features or pixels (chain-thaw: one phase per setting)."""
    cfg = params.regime(cell.regime)
    if cfg.on_features or not cfg.gradient:
        return 0
    plan, choosing = budgets(cfg, n_train, params.training)
    return choosing.steps * cfg.candidates + (plan.steps if choosing != plan else 0)


Runner = Callable[[CellInputs], tuple[Outcome, object]]  # one cell: its outcome and its trained model


def runner(regime: str) -> Runner:
    """The registered regime's runner (`config.Regime.runner`, "module:function"), imported now."""
    return resolve(REGIMES[regime].runner)


def resolve(name: str) -> Callable:
    """The function a registry entry names as "module:function" (a runner, a backbone check), imported now."""
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)
