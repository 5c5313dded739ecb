"""The chain-thaw regime (`config.Chainthaw`): new layers, then each pretrained layer group alone, first to last,
then all layers (Felbo et al. 2017)."""

from __future__ import annotations

import dataclasses

from torch import nn

from ..config import Chainthaw
from ..results import Outcome
from . import layer_groups, loop
from .regimes import CellInputs, Split, gradient, image_split, pretrained


def chainthaw(inputs: CellInputs) -> tuple[Outcome, nn.Module]:
    """New layers, then each pretrained group alone (first to last), then all layers.

    Each candidate's phases before the last run as it is made: each has `phase_budget` of the base budget, is
    evaluated `phase_evaluations` times, stops early on validation loss and ends on its best weights, from which the
    next phase starts (a phase that never beats its start leaves the weights as they were). Its last phase, all
    layers, is the run the selection procedure trains up the ladder, as every gradient arm's (selection.py).
    """
    cfg: Chainthaw = inputs.regime
    split = image_split(inputs)
    plan = loop.budget(len(split.train[0]), inputs.training, cfg.phase_budget)
    every = max(1, plan.steps // cfg.phase_evaluations)
    plan = dataclasses.replace(plan, eval_every=every, patience=cfg.phase_patience * every)

    def build(options: dict) -> loop.Member:
        model = pretrained(inputs)
        frozen = loop.batchnorms(model) if options["batchnorm"] == "frozen" else ()
        steps = _thaw(inputs, split, loop.Member(model, [{"lr": options["lr"]}], frozen), plan)
        params = [p.requires_grad_(True) for p in model.parameters()]
        return loop.Member(model, [{"params": params, "lr": options["lr"]}], frozen, steps)

    return gradient(inputs, split, build)


def _thaw(inputs: CellInputs, split: Split, member: loop.Member, plan: loop.Budget) -> int:
    """The phases before all layers train: the new layers, then each pretrained group alone; the steps they took.
    Raises loop.Diverged when a phase diverges."""
    named = dict(member.model.named_parameters())
    *groups, (_, head) = layer_groups.groups(member.model)
    steps = 0
    for phase, names in [("new layers", head), *groups]:
        (fit,) = loop.fit(
            [_thawed(member, named, names)],
            split.train,
            split.val,
            plan,
            inputs.training,
            inputs.cell.seed,
            inputs.device,
            monitor="loss",
            evaluate_start=True,
            desc=f"{inputs.cell.run_name} · {phase}",
        )
        if isinstance(fit, loop.Diverged):
            raise fit
        steps += fit.steps
    return steps


def _thawed(member: loop.Member, named: dict[str, nn.Parameter], names: list[str]) -> loop.Member:
    """The member with only the parameters `names` trainable, in one param group at its learning rate."""
    for name, p in named.items():
        p.requires_grad_(name in names)
    return loop.Member(
        member.model, [{**member.param_groups[0], "params": [named[n] for n in names]}], member.eval_modules
    )
