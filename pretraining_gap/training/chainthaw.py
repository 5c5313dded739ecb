"""The chain-thaw regime (`config.Chainthaw`): new layers, then each pretrained layer group alone, first to last,
then all layers (Felbo et al. 2017)."""

from __future__ import annotations

import dataclasses

from torch import nn

from ..config import Chainthaw
from ..results import Outcome
from . import layer_groups, loop
from .regimes import CellInputs, Split, best_setting, budgets, image_split, pretrained, rates


def chainthaw(inputs: CellInputs) -> tuple[Outcome, nn.Module]:
    """New layers, then each pretrained group alone (first to last), then all layers.

    Each phase stops early on validation loss and ends on its best weights, from which the next phase starts;
    a phase that never beats its start leaves the weights as they were. Each phase has the regime's budget
    (`phase_budget`), evaluated on its own finer grid.
    """
    cfg: Chainthaw = inputs.regime
    split = image_split(inputs)
    plan, _ = budgets(cfg, len(split.train[0]), inputs.training)
    every = max(1, plan.steps // inputs.training.evaluations)  # a phase is short: evaluated on a finer grid
    plan = dataclasses.replace(plan, eval_every=every, patience=cfg.phase_patience * every)

    def build(lr: float) -> loop.Member:
        model = pretrained(inputs)
        return loop.Member(model, [{"lr": lr}], loop.batchnorms(model) if cfg.batchnorm == "frozen" else ())

    def train(members: list[loop.Member], budget: loop.Budget) -> list[loop.Fit | loop.Diverged]:
        return _chains(inputs, split, members, budget)

    outcome, model = best_setting(inputs, split, build, train, plan, plan, rates(cfg))
    budget_steps = plan.steps * (len(layer_groups.groups(model)) + 1)
    # each phase stops on its own; converged is a single run's notion
    return outcome.model_copy(update={"budget_steps": budget_steps, "converged": None}), model


def _chains(
    inputs: CellInputs, split: Split, members: list[loop.Member], budget: loop.Budget
) -> list[loop.Fit | loop.Diverged]:
    """Each member's chain of phases, its Fit over all of them (history steps counted across phases, each
    evaluation named by its phase); the members go through each phase together (fused)."""
    named = [dict(member.model.named_parameters()) for member in members]
    *groups, (_, head) = layer_groups.groups(members[0].model)
    chains: list[loop.Fit | loop.Diverged] = [loop.Fit() for _ in members]
    for chain in chains:
        chain.history["phase"] = []
    for phase, names in [("new layers", head), *groups, ("all layers", list(named[0]))]:
        going = [i for i, chain in enumerate(chains) if isinstance(chain, loop.Fit)]
        fits = loop.fit(
            [_thawed(members[i], named[i], names) for i in going],
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
            chains[i] = fit if isinstance(fit, loop.Diverged) else _extended(chains[i], fit, phase)
    return chains


def _thawed(member: loop.Member, named: dict[str, nn.Parameter], names: list[str]) -> loop.Member:
    """The member with only the parameters `names` trainable, in one param group at its learning rate."""
    for name, p in named.items():
        p.requires_grad_(name in names)
    return loop.Member(
        member.model, [{**member.param_groups[0], "params": [named[n] for n in names]}], member.eval_modules
    )


def _extended(chain: loop.Fit, fit: loop.Fit, phase: str) -> loop.Fit:
    """`chain` with the phase's `fit` appended: its steps after the chain's, its evaluations named `phase`."""
    for key, values in fit.history.items():
        chain.history[key] += [chain.steps + v for v in values] if key == "step" else values
    chain.history["phase"] += [phase] * len(fit.history["step"])
    chain.best, chain.best_step = fit.best, chain.steps + fit.best_step
    chain.steps += fit.steps
    return chain
