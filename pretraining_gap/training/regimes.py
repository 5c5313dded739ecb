"""Transfer regimes: what each starts from and what it trains, for one cell of the grid.

scratch    random init, every layer trained (its own learning rate and a longer budget)
pixels     1-NN, logistic regression or an RBF SVM on raw pixels (no pretraining: a strong baseline)
linear     logistic regression on cached frozen features (Kornblith et al. 2019)
frozen     dense layers on cached frozen features (the lecture's model 2)
finetune   every layer trained from the pretrained weights
chainthaw  new layers, then each pretrained layer group alone, first to last, then all (Felbo et al. 2017)
depth      the first k layer groups pretrained, the rest re-initialised, then trained (Yosinski et al. 2014)

Their options and traits are defined in `config.py` (`config.REGIMES`); here is how each trains.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import timm
import torch
from torch import nn

from ..config import Backbone, Chainthaw, Depth, Finetune, Frozen, Params, Regime, Scratch, Training
from ..data.prepared import TEST, VAL, Prepared
from ..grid import Cell, ParamsError
from ..results import Outcome
from . import backbones, layer_groups, loop, probes, tuning

# A run converged when its best evaluation came before the last fifth of its step budget: one still improving at
# the end of its budget was stopped, not finished, and understates its arm.
CONVERGED = 0.8


@dataclass(frozen=True)
class CellInputs:
    """Everything one cell's training reads: its options, its data and the device to train on."""

    cell: Cell
    regime: Regime
    training: Training
    backbone: Backbone
    data: Prepared
    train_idx: np.ndarray  # indices into `data` of the cell's training subset
    features: np.ndarray | None  # cached frozen features (N, D) of every prepared image, for feature regimes
    device: torch.device

    @classmethod
    def of(
        cls,
        params: Params,
        cell: Cell,
        data: Prepared,
        train_idx: np.ndarray,
        features: np.ndarray | None,
        device: torch.device,
    ) -> CellInputs:
        return cls(
            cell,
            params.regime(cell.regime),
            params.training,
            params.backbones[cell.backbone],
            data,
            train_idx,
            features,
            device,
        )

    @property
    def num_classes(self) -> int:
        return len(self.data.class_names)


# A builder makes a fresh model for one setting (a learning rate, or a depth-k pair): a member of the grid's run.
Builder = Callable[[float | tuple], loop.Member]
# A trainer trains members (one architecture: fused) on a budget: each one's Fit, or its Diverged error.
Trainer = Callable[[list[loop.Member], loop.Budget], list[loop.Fit | loop.Diverged]]


@dataclass
class _Data:
    """A cell's model inputs: train / validation / test as (inputs, labels) tensors."""

    train: loop.Tensors
    val: loop.Tensors
    test: loop.Tensors


def _split(inputs: CellInputs, transform: Callable[[np.ndarray], torch.Tensor]) -> _Data:
    data = inputs.data

    def part(idx):
        return transform(idx), torch.from_numpy(data.labels[idx])

    return _Data(part(inputs.train_idx), part(data.part(VAL)), part(data.part(TEST)))


def _image_split(inputs: CellInputs) -> _Data:
    # The input statistics the architecture's weights expect; a randomly initialised copy carries them.
    mean, std = backbones.normalisation(timm.create_model(inputs.backbone.model))
    return _split(inputs, lambda idx: loop.to_input(inputs.data.images[idx], mean, std))


def _best_lr(
    inputs: CellInputs, split: _Data, build: Builder, train: Trainer, plan: loop.Budget, choosing: loop.Budget
) -> tuple[Outcome, nn.Module]:
    """Train the regime's learning-rate grid together (fused, loop.fit; one step past an edge the best sits on,
    tuning.py), or the pairs of a depth-k cell's rates (transferred, new), on the `choosing` budget; keep the best
    on validation (accuracy, then loss). When `choosing` is shorter than `plan`, the chosen rate then trains once
    more on the whole `plan` (successive halving with one rung: the rates are compared on a shorter schedule of
    their own, the winner is trained to convergence). That final run is kept unless the run that chose its rate is
    more accurate on validation: a longer run at a rate on the edge of stability can collapse, and keeping it
    would charge the arm for an unlucky run when it has a better one in hand. A rate whose run diverges loses; the cell
    fails only when every one does."""
    seconds, images, diverged = 0.0, 0, []

    def run(settings: list, budget: loop.Budget = choosing) -> list[tuple[nn.Module, loop.Fit] | None]:
        nonlocal seconds, images
        members = [build(setting) for setting in settings]
        start = time.perf_counter()
        fits = train(members, budget)
        seconds += time.perf_counter() - start
        diverged.extend(fit for fit in fits if isinstance(fit, loop.Diverged))
        steps = sum(fit.step if isinstance(fit, loop.Diverged) else fit.steps for fit in fits)
        images += steps * budget.batch_size
        return [
            None if isinstance(fit, loop.Diverged) else (member.model, fit)
            for member, fit in zip(members, fits)
        ]

    def score(trial) -> tuple[float, ...]:
        return (-math.inf,) if trial is None else (trial[1].best[0], -trial[1].best[1])

    cfg = inputs.regime
    if isinstance(cfg, Depth):
        found = tuning.search_pairs([(a, b) for a in cfg.lr for b in cfg.lr_new], run, score)
    elif isinstance(cfg, Scratch):
        found = tuning.search_families({"batch": cfg.lr, "group": cfg.group_norm_lr}, run, score)
    else:
        found = tuning.search(cfg.lr, run, score)
    if found.trial is None:
        raise diverged[0]
    kept, budget = found.trial, choosing
    if choosing != plan:
        final = run([found.best], plan)[0]
        # accuracy alone: at equal accuracy the longer run's surer predictions cost loss on its few errors
        if final is not None and final[1].best[0] >= found.trial[1].best[0]:
            kept, budget = final, plan
    model, fit = kept
    test_accuracy, test_loss = loop.evaluate(model, *split.test, inputs.device)
    outcome = Outcome(
        test_accuracy=test_accuracy,
        test_loss=test_loss,
        best_val_accuracy=fit.best[0],
        train_seconds=seconds,
        images_per_second=images / seconds,
        steps=fit.steps,
        best_step=fit.best_step,
        budget_steps=budget.steps,
        batch_size=budget.batch_size,
        converged=fit.best_step < CONVERGED * budget.steps,
        **_chosen(cfg, found.best),
        val_accuracy_by_lr={
            _lr_name(lr): trial[1].best[0] if trial else None for lr, trial in found.tried.items()
        },
        choosing_steps=None if choosing == plan else choosing.steps,
        kept_run=None if choosing == plan else "final" if budget == plan else "choosing",
        at_grid_edge=found.at_edge,
        history=fit.history,
    )
    return outcome, model


def _candidates(cfg: Regime) -> int:
    """How many settings a gradient regime's cell compares (before any extension past a grid's edge)."""
    rates = len(cfg.lr) + len(getattr(cfg, "group_norm_lr", None) or [])
    return rates * len(getattr(cfg, "lr_new", [None]))


def _chosen(cfg: Regime, best: float | tuple) -> dict:
    """The outcome's fields for what `_best_lr` chose: a depth-k pair of rates, scratch's (normalisation, rate)."""
    if isinstance(cfg, Depth):
        return {"lr": best[0], "lr_new": best[1]}
    if isinstance(cfg, Scratch):
        return {"norm": best[0], "lr": best[1]}
    return {"lr": best}


def _lr_name(lr: float | tuple) -> str:
    """'0.001', '0.001 0.01' (a depth-k pair), 'group 0.001' (scratch with GroupNorm)."""
    values = lr if isinstance(lr, tuple) else (lr,)
    return " ".join(v if isinstance(v, str) else f"{v:g}" for v in values)


def _budgets(cfg: Regime, n_train: int, training: Training) -> tuple[loop.Budget, loop.Budget]:
    """The cell's budget (the subset-size rule times the regime's multiplier), and the budget its settings are
    compared on: the regime's `choosing_multiplier` when it has one and a grid to choose from, else the same."""
    plan = loop.budget(n_train, training, getattr(cfg, "budget_multiplier", 1))
    shorter = getattr(cfg, "choosing_multiplier", None)
    return plan, loop.budget(n_train, training, shorter) if shorter and _candidates(cfg) > 1 else plan


def _gradient(
    inputs: CellInputs, split: _Data, build: Builder, augment: bool = True, fuse: bool = True
) -> tuple[Outcome, nn.Module]:
    """The grid's settings trained together (`loop.fit`), then the chosen one on the whole budget when they were
    compared on a shorter one (`_budgets`)."""
    plan, choosing = _budgets(inputs.regime, len(split.train[0]), inputs.training)

    def train(members, budget):
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

    return _best_lr(inputs, split, build, train, plan, choosing)


def _pretrained(inputs: CellInputs) -> nn.Module:
    return backbones.create(inputs.backbone, inputs.num_classes, pretrained=True, seed=inputs.cell.seed)


def _random(inputs: CellInputs) -> nn.Module:
    return backbones.create(inputs.backbone, inputs.num_classes, pretrained=False, seed=inputs.cell.seed)


def scratch(inputs: CellInputs) -> tuple[Outcome, nn.Module]:
    def build(setting: tuple[str, float]) -> loop.Member:
        norm, lr = setting
        model = backbones.create(inputs.backbone, inputs.num_classes, False, inputs.cell.seed, norm)
        return loop.Member(model, [{"params": list(model.parameters()), "lr": lr}])

    return _gradient(inputs, _image_split(inputs), build)


def finetune(inputs: CellInputs) -> tuple[Outcome, nn.Module]:
    """All layers from the pretrained weights; the head's learning rate is `lr`, the backbone's `lr` x scale."""
    cfg: Finetune = inputs.regime

    def build(lr: float) -> loop.Member:
        model = _pretrained(inputs)
        head = set(model.get_classifier().parameters())
        groups = [
            {"params": list(head), "lr": lr},
            {"params": [p for p in model.parameters() if p not in head], "lr": lr * cfg.backbone_lr_scale},
        ]
        return loop.Member(model, groups, loop.batchnorms(model) if cfg.batchnorm == "frozen" else ())

    outcome, model = _gradient(inputs, _image_split(inputs), build)
    random, pretrained = _random(inputs).state_dict(), _pretrained(inputs).state_dict()
    tuned = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    layers = layer_groups.weight_layers(model)
    update = {
        "transferability": layer_groups.transferability(random, pretrained, tuned, layers),
        "weight_scale": layer_groups.weight_scale(pretrained, layers),
    }
    return outcome.model_copy(update=update), model


def depth(inputs: CellInputs) -> tuple[Outcome, nn.Module]:
    """AnB (`transferred: frozen`) or AnB+ (`finetune`, Yosinski et al. 2014): keep the first k layer groups,
    re-initialise the rest (weights and batch-norm statistics, from the seeded random init).

    The transferred groups train at `lr`, the re-initialised groups and the head at `lr_new`, a pair chosen on
    validation: one rate for both made the trunk drift under its frozen ImageNet statistics while the few new
    batch norms on top averaged statistics that no longer held (k = 7 fell to chance on validation). The head is
    finetune's seeded head, so k = every group is finetune.
    """
    cfg: Depth = inputs.regime
    frozen_transfer = cfg.transferred == "frozen"

    def build(lrs: tuple[float, float]) -> loop.Member:
        lr, lr_new = lrs
        model, random = _pretrained(inputs), _random(inputs).state_dict()
        *groups, (_, head) = layer_groups.groups(model)
        new = {name for _, names in groups[inputs.cell.depth :] for name in names}
        new_modules = {name.rsplit(".", 1)[0] for name in new}
        model.load_state_dict(
            {k: random[k] if k.rsplit(".", 1)[0] in new_modules else v for k, v in model.state_dict().items()}
        )
        named = dict(model.named_parameters())
        transferred = [n for n in named if n not in new and n not in head]
        for n in transferred:
            named[n].requires_grad_(not frozen_transfer)
        param_groups = [{"params": [named[n] for n in (*head, *sorted(new))], "lr": lr_new}]
        if not frozen_transfer:
            param_groups.append({"params": [named[n] for n in transferred], "lr": lr})
        kept_bn = tuple(
            m for name, m in model.named_modules() if name not in new_modules and m in loop.batchnorms(model)
        )
        return loop.Member(
            model, param_groups, kept_bn if frozen_transfer or cfg.batchnorm == "frozen" else ()
        )

    return _gradient(inputs, _image_split(inputs), build)


def check_backbone(params: Params, backbone: str) -> None:
    """Fail before training when the regimes ask the backbone for what it does not have: a depth k beyond its
    pretrained layer groups, GroupNorm in an architecture whose channels its groups do not divide."""
    model = timm.create_model(params.backbones[backbone].model)
    if "depth" in params.study.regimes:
        available = len(layer_groups.groups(model)) - 1
        asked = max(params.regimes.depth.k)
        if asked > available:
            raise ParamsError(
                "regimes.depth.k",
                f"k={asked} asked, but {backbone} has {available} pretrained layer groups",
                f"keep k between 1 and {available} ({available} is the same as finetune)",
            )
    if "scratch" in params.study.regimes and params.regimes.scratch.group_norm_lr:
        try:
            backbones.group_norm(model)
        except ValueError as error:
            raise ParamsError(
                "regimes.scratch.group_norm_lr",
                f"{backbone} cannot take GroupNorm with {backbones.GROUPS} groups ({error})",
                "remove group_norm_lr: scratch then keeps the architecture's batch norm",
            ) from None


def chainthaw(inputs: CellInputs) -> tuple[Outcome, nn.Module]:
    """New layers, then each pretrained group alone (first to last), then all layers.

    Each phase stops early on validation loss and ends on its best weights, from which the next phase starts;
    a phase that never beats its start leaves the weights as they were.
    """
    cfg: Chainthaw = inputs.regime
    split = _image_split(inputs)
    plan = loop.budget(len(inputs.train_idx), inputs.training, cfg.phase_budget)
    every = max(
        1, plan.steps // inputs.training.evaluations
    )  # a phase is short: evaluated on its own finer grid
    plan = dataclasses.replace(plan, eval_every=every, patience=cfg.phase_patience * every)

    def build(lr: float) -> loop.Member:
        model = _pretrained(inputs)
        return loop.Member(model, [{"lr": lr}], loop.batchnorms(model) if cfg.batchnorm == "frozen" else ())

    def train(members: list[loop.Member], budget: loop.Budget) -> list[loop.Fit | loop.Diverged]:
        """Each member's chain of phases; the members go through each phase together (fused)."""
        named = [dict(member.model.named_parameters()) for member in members]
        *pretrained, (_, head) = layer_groups.groups(members[0].model)
        phases = [("new layers", head), *pretrained, ("all layers", list(named[0]))]
        chains: list[loop.Fit | loop.Diverged] = [loop.Fit() for _ in members]
        for chain in chains:
            chain.history["phase"] = []
        for phase, names in phases:
            going = [i for i, chain in enumerate(chains) if isinstance(chain, loop.Fit)]
            for i in going:
                for name, p in named[i].items():
                    p.requires_grad_(name in names)
            fits = loop.fit(
                [
                    loop.Member(
                        members[i].model,
                        [{**members[i].param_groups[0], "params": [named[i][n] for n in names]}],
                        members[i].eval_modules,
                    )
                    for i in going
                ],
                split.train,
                split.val,
                budget,
                inputs.training,
                inputs.cell.seed,
                inputs.device,
                monitor="loss",
                evaluate_start=True,
                desc=f"{inputs.cell.run_name} · {phase}",
            )
            for i, fit in zip(going, fits):
                if isinstance(fit, loop.Diverged):
                    chains[i] = fit
                    continue
                chain = chains[i]
                for key, values in fit.history.items():
                    chain.history[key] += [chain.steps + v for v in values] if key == "step" else values
                chain.history["phase"] += [phase] * len(fit.history["step"])
                chain.best, chain.best_step = fit.best, chain.steps + fit.best_step
                chain.steps += fit.steps
        return chains

    outcome, model = _best_lr(inputs, split, build, train, plan, plan)
    budget_steps = plan.steps * (len(layer_groups.groups(model)) + 1)
    # each phase stops on its own; converged is a single run's notion
    return outcome.model_copy(update={"budget_steps": budget_steps, "converged": None}), model


def frozen(inputs: CellInputs) -> tuple[Outcome, nn.Module]:
    """Dense layers (`hidden` widths, ReLU, dropout) on cached frozen features; the backbone never runs here."""
    cfg: Frozen = inputs.regime
    x = torch.from_numpy(inputs.features).float()
    # Centred and scaled by the training subset alone, so one learning-rate grid suits every backbone's features.
    train_x = x[inputs.train_idx]
    x = (x - train_x.mean(0)) / train_x.std().clamp_min(1e-12)
    split = _split(inputs, lambda idx: x[idx])

    def build(lr: float) -> loop.Member:
        torch.manual_seed(inputs.cell.seed)
        widths = [x.shape[1], *cfg.hidden]
        layers = [
            m
            for a, b in zip(widths, widths[1:])
            for m in (nn.Linear(a, b), nn.ReLU(), nn.Dropout(cfg.dropout))
        ]
        head = nn.Sequential(*layers, nn.Linear(widths[-1], inputs.num_classes))
        return loop.Member(head, [{"params": list(head.parameters()), "lr": lr}])

    # fusion has no form for dropout (its masks would not be the ones a member draws alone): one at a time
    return _gradient(inputs, split, build, augment=False, fuse=False)


def work(cell: Cell, params: Params, n_train: int) -> int:
    """Roughly the cell's work, for ordering the cells longest first: its backbone training steps over its grid;
    0 on cached features or pixels (chain-thaw's early-stopped phases are counted as one budget)."""
    cfg = params.regime(cell.regime)
    if cfg.on_features or not cfg.gradient:
        return 0
    plan, choosing = _budgets(cfg, n_train, params.training)
    return choosing.steps * _candidates(cfg) + (plan.steps if choosing != plan else 0)


# Each runner trains one cell: CellInputs -> (its outcome, the trained model).
RUNNERS: dict[str, Callable[[CellInputs], tuple[Outcome, object]]] = {
    "scratch": scratch,
    "pixels": probes.pixels,
    "linear": probes.linear,
    "frozen": frozen,
    "finetune": finetune,
    "chainthaw": chainthaw,
    "depth": depth,
}
