"""One selection procedure for every gradient-trained arm: successive halving up a shared budget ladder, on
validation (Jamieson & Talwalkar 2016; one bracket of Hyperband, Li et al. 2018).

An arm's candidates are its options' combinations (`config.Regime.candidate_options`: its learning rates, scratch's
normalisation, fine-tuning's batch norm, ...); every gradient arm of a study starts with the same number (config
checks it). All climb one ladder (`training.ladder`: multiples of the cell's base budget, loop.budget) by one rule:

1. every candidate trains to the first rung;
2. where the best sits at an edge of a grid option's values (`config.Regime.grids`: the learning rates) within its
   family (the candidates that share its other options), one candidate one step past that edge (the ratio of the
   two values nearest it) trains to the first rung too, at either end, for every arm;
3. at each rung the best 1/`training.reduction_factor` of the candidates still going (rounded up) train on to the
   next rung,
   while the best validation accuracy still grows: an arm climbs only while its best candidate gained (by
   `training.min_gain` at least) within the last `training.climb_patience` rungs, so one arm may stop at 2x while
   another climbs to 8x;
4. the cell keeps the best-validated weights of any run it trained (accuracy, then loss): one fallback, no
   arm-specific tie rule.

A candidate's run continues from rung to rung (loop.Run): one cosine cycle per rung, warm-restarted where the last
ended (loop.cycles), so the run evaluated at a rung's end is annealed and one run serves every budget
(docs/choices.md). Validation is evaluated at step 0 and at the rung ends. The result's `trace` records every
candidate (its options, the rungs it reached and their validation accuracy, its steps, why it stopped),
`tuning_steps` the optimisation steps of all of them, and `winners_curse` how much choosing on half of validation
overstates the choice on the other half (validation.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..results import Outcome
from . import loop, validation
from .inputs import CellInputs

Options = dict[str, Any]  # one candidate: option name -> value (numbers: a grid; strings: a family)
Builder = Callable[[Options], loop.Member]  # a fresh model for one candidate


@dataclass
class Candidate:
    options: Options
    run: loop.Run
    index: int  # its member in `run`
    extension: bool = False  # added one step past an edge of the first rung's grid
    stopped: str = ""  # why it stopped climbing

    @property
    def fit(self) -> loop.Fit | loop.Diverged:
        return self.run.fit(self.index)

    def score(self) -> tuple[float, ...]:
        """Its best validation evaluation: accuracy, then lower loss; a diverged run loses to every other."""
        fit = self.fit
        return (-math.inf,) if isinstance(fit, loop.Diverged) else (fit.best[0], -fit.best[1])

    @property
    def going(self) -> bool:
        return self.index in self.run.active


def select(
    inputs: CellInputs,
    split,
    options: list[Options],
    build: Builder,
    architecture: tuple[str, ...] = (),
    augment: bool = True,
    fuse: bool = True,
) -> tuple[Outcome, nn.Module]:
    """Choose the arm's candidate (`options`, each made by `build`) on validation by the procedure above; the kept
    model's outcome (its test metrics and logits, the trace) and the model. Candidates whose `architecture` options
    are equal train as one fused model (`fuse`), `training.fused_members` at a time. Raises the first loop.Diverged
    when every candidate diverged."""
    training = inputs.training
    base = loop.budget(len(split.train[0]), training)
    rungs = [max(1, round(m * base.steps)) for m in training.ladder]
    halves = torch.from_numpy(validation.halves(split.val[1].numpy()))

    def start(chosen: list[Options], extension: bool = False) -> list[Candidate]:
        """The candidates' runs, fused by architecture, each evaluated before training."""
        size = training.fused_members if fuse else 1
        by_architecture: dict[tuple, list[Options]] = {}
        for o in chosen:
            by_architecture.setdefault(tuple(o[k] for k in architecture), []).append(o)
        made = []
        for group in by_architecture.values():
            for first in range(0, len(group), size):
                part = group[first : first + size]
                run = loop.Run(
                    [build(o) for o in part],
                    split.train,
                    split.val,
                    training,
                    inputs.cell.seed,
                    inputs.device,
                    rungs,
                    base.batch_size,
                    augment,
                    fuse=fuse,
                    desc=inputs.cell.run_name,
                    val_halves=halves,
                )
                run.evaluate_start()
                made += [Candidate(o, run, i, extension) for i, o in enumerate(part)]
        return made

    began = time.perf_counter()
    candidates = start(options)
    _advance(candidates, rungs[0])
    grids = type(inputs.regime).grids
    extra = extensions(max(candidates, key=Candidate.score).options, [c.options for c in candidates], grids)
    if extra:
        added = start(extra, extension=True)
        _advance(added, rungs[0])
        candidates += added
    top = _climb(candidates, rungs, training)
    seconds = time.perf_counter() - began
    return _outcome(inputs, split, candidates, top, rungs, base.batch_size, seconds)


def _advance(candidates: list[Candidate], steps: int) -> None:
    """Train every run that holds one of `candidates` to `steps` (the runs' other members were dropped)."""
    for run in dict.fromkeys(c.run for c in candidates if c.going):
        run.advance(steps)
    for c in candidates:
        if isinstance(c.fit, loop.Diverged) and not c.stopped:
            c.stopped = f"diverged at step {c.fit.step}"


def _climb(candidates: list[Candidate], rungs: list[int], training) -> int:
    """Successive halving from the first rung up, while the best validation accuracy gained at least
    `training.min_gain` within the last `training.climb_patience` rungs: the rung index the ladder ended at."""
    best = [max(c.score() for c in candidates)[0]]  # best validation accuracy after each rung
    going = [c for c in candidates if c.going]
    rung, gained = 0, 0  # the last rung that gained (the first rung counts as a gain)
    while rung + 1 < len(rungs) and going and rung - gained < training.climb_patience:
        ranked = sorted(going, key=Candidate.score, reverse=True)
        kept = ranked[: math.ceil(len(ranked) / training.reduction_factor)]
        for c in ranked[len(kept) :]:
            c.run.drop([c.index])
            c.stopped = f"halved at {training.ladder[rung]:g}x"
        rung += 1
        _advance(kept, rungs[rung])
        best.append(max(c.score() for c in candidates)[0])
        gained = rung if best[rung] >= max(best[:rung]) + training.min_gain else gained
        going = [c for c in kept if c.going]
    reason = "top rung" if rung + 1 == len(rungs) else f"no gain at {training.ladder[rung]:g}x"
    for c in candidates:
        c.stopped = c.stopped or reason
    return rung


def extensions(best: Options, tried: list[Options], grids: tuple[str, ...] = ("lr",)) -> list[Options]:
    """One candidate past each edge `best` sits on: per grid option (`grids`, config.Regime.grids) with two or more
    values among the `tried` candidates that share its other options, `best` with that value moved one step out (the
    ratio of the two values nearest that edge)."""
    added = []
    for key in _edges(best, tried, grids):
        values = _values(best, tried, key)
        inner = values[1] if best[key] == values[0] else values[-2]
        extra = {**best, key: best[key] * best[key] / inner}
        if extra not in tried:
            added.append(extra)
    return added


def _values(options: Options, tried: list[Options], key: str) -> list:
    """The values of `key` among the tried candidates that share the other options, ascending."""
    return sorted({o[key] for o in tried if all(o[k] == v for k, v in options.items() if k != key)})


def _edges(options: Options, tried: list[Options], grids: tuple[str, ...]) -> list[str]:
    """The grid options whose value sits at an end of two or more values tried with the same other options."""
    return [
        key
        for key, value in options.items()
        if key in grids
        and len(values := _values(options, tried, key)) >= 2
        and value in (values[0], values[-1])
    ]


def _trace(c: Candidate, rungs: list[int]) -> dict:
    fit = c.fit
    entry: dict[str, Any] = {"options": c.options, "extension": c.extension, "stopped": c.stopped}
    if isinstance(fit, loop.Diverged):
        return entry | {"steps": _steps(c)}
    # step 0 (before training) and each rung's end
    reached = [
        {"steps": s, "val_accuracy": a} for s, a in zip(fit.history["step"], fit.history["val_accuracy"])
    ]
    return entry | {
        "steps": _steps(c),
        "budget_steps": reached[-1]["steps"],
        "best_val_accuracy": fit.best[0],
        "best_step": fit.best_step,
        "rungs": reached,
    }


def _steps(c: Candidate) -> int:
    """Its optimisation steps: in its run, and before it (loop.Member.steps_before)."""
    fit = c.fit
    return c.run.members[c.index].steps_before + (fit.step if isinstance(fit, loop.Diverged) else fit.steps)


def _outcome(
    inputs: CellInputs,
    split,
    candidates: list[Candidate],
    top: int,
    rungs: list[int],
    batch_size: int,
    seconds: float,
) -> tuple[Outcome, nn.Module]:
    """The kept candidate's outcome: the best-validated weights of any run (`Candidate.score`)."""
    chosen = max(candidates, key=Candidate.score)
    if isinstance(chosen.fit, loop.Diverged):
        raise chosen.fit
    for run in dict.fromkeys(c.run for c in candidates):
        run.finish()  # every member on its best weights
    model = chosen.run.members[chosen.index].model
    fit = chosen.fit
    test_logits = loop.predict(model, split.test[0], inputs.device)
    val_logits = loop.predict(model, split.val[0], inputs.device)
    test_accuracy, test_loss = loop.scores(test_logits, split.test[1])
    tuning_steps = sum(_steps(c) for c in candidates)
    traced = [_trace(c, rungs) for c in candidates]
    kept = traced[candidates.index(chosen)]
    fits = [c.fit for c in candidates]
    outcome = Outcome(
        test_accuracy=test_accuracy,
        test_loss=test_loss,
        best_val_accuracy=fit.best[0],
        train_seconds=seconds,
        images_per_second=tuning_steps * batch_size / seconds,
        steps=fit.steps,
        best_step=fit.best_step,
        budget_steps=kept.get("budget_steps"),
        batch_size=batch_size,
        # the ladder stopped because validation stopped improving, not at its top rung still gaining
        converged=top + 1 < len(rungs),
        **{k: v for k, v in chosen.options.items()},
        at_grid_edge=bool(_edges(chosen.options, [c.options for c in candidates], type(inputs.regime).grids)),
        candidates=sum(not c.extension for c in candidates),
        rungs=rungs[: top + 1],
        tuning_steps=tuning_steps,
        trace=traced,
        winners_curse=validation.winners_curse(
            [
                pair
                for f in fits
                if isinstance(f, loop.Fit)
                for pair in zip(f.history["val_accuracy_half1"], f.history["val_accuracy_half2"])
            ]
        ),
        history=fit.history,
        **logits(test_logits, split.test[1], val_logits, split.val[1]),
    )
    return outcome, model


def logits(
    test: torch.Tensor, test_labels: torch.Tensor, val: torch.Tensor, val_labels: torch.Tensor
) -> dict:
    """The result fields of a cell's per-image outputs: test and validation logits (N, classes), rounded to 4
    decimals, and their labels, for the analysis's test-image bootstrap and calibration."""
    return {
        "test_logits": test.double().round(decimals=4).tolist(),
        "test_labels": test_labels.tolist(),
        "val_logits": val.double().round(decimals=4).tolist(),
        "val_labels": val_labels.tolist(),
    }
