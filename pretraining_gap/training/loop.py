"""Gradient training of one cell's candidates: the base step budget, tensor augmentation, runs that resume from rung
to rung with a cosine cycle per rung (`Run`, `cycles`; selection.py climbs them), and `fit`, one run with early
stopping (chain-thaw's phases)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import progress
from ..config import Training
from . import convolutions, fusion
from .device import precision  # by device (mixed on CUDA), or as the GPU check forces it
from .early_stopping import EarlyStopping

Tensors = tuple[torch.Tensor, torch.Tensor]  # inputs (N, ...) and labels (N,)


@dataclass(frozen=True)
class Budget:
    steps: int  # optimisation steps at most (the schedule's length)
    batch_size: int
    eval_every: int | None = None  # steps between validation evaluations; None: at the end only
    patience: int | None = None  # steps without a better evaluation before stopping; None: never stop early


def budget(n_train: int, cfg: Training, multiplier: float = 1.0) -> Budget:
    """The base budget rule: steps = epochs over the subset, clipped to [min_steps, max_steps], times `multiplier`
    (the ladder's rungs are multiples of it, selection.py)."""
    batch = min(cfg.batch_size, n_train)
    base = min(max(round(cfg.epochs * n_train / batch), cfg.min_steps), cfg.max_steps)
    return Budget(round(base * multiplier), batch)


def to_input(images: np.ndarray, mean, std) -> torch.Tensor:
    """uint8 (N, H, W, 3) to normalised float (N, 3, H, W), channels-last in memory (faster convolutions)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    return x.contiguous(memory_format=torch.channels_last)


def shift(x: torch.Tensor, max_shift: float, generator: torch.Generator) -> torch.Tensor:
    """Random translation of each image by up to max_shift of its side, edges repeated."""
    if max_shift <= 0:
        return x
    n = x.shape[0]
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = (torch.rand(n, 2, generator=generator) * 2 - 1) * 2 * max_shift  # grid spans [-1, 1]
    grid = F.affine_grid(theta.to(device=x.device, dtype=x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, batch_size: int = 256
) -> tuple[float, float]:
    """Accuracy (fraction) and mean cross-entropy (nats), in eval mode (the caller puts it back in train mode)."""
    return scores(predict(model, x, device, batch_size), y)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """Logits (N, classes), float32 on the CPU, in eval mode."""
    return _logits(_Alone(model), x, device, batch_size)[0]


def _logits(models: fusion.Fused | _Alone, x: torch.Tensor, device: torch.device, batch_size: int = 256):
    """Each member's logits (members, N, classes), float32 on the CPU, in eval mode."""
    models.eval()
    mixed, dtype = precision(device)
    with torch.autocast(device.type, dtype=dtype, enabled=mixed):
        return torch.cat(
            [models(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)], 1
        )


def scores(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Accuracy (fraction) and mean cross-entropy (nats) of logits (N, classes) against labels (N,)."""
    return (logits.argmax(1) == y).double().mean().item(), F.cross_entropy(logits.double(), y).item()


class _Alone(nn.Module):
    """One model that is not fused, with a fused model's interface: logits (1, B, classes)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.members = nn.ModuleList([model])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.members[0](x).unsqueeze(0)


def to_device(model: nn.Module, device: torch.device) -> nn.Module:
    """The model on `device`, channels-last (faster convolutions), its small-map convolutions in their exact
    cheaper forms (convolutions.py)."""
    return convolutions.shortcut(model.to(device, memory_format=torch.channels_last))


def set_train_mode(model: nn.Module, eval_modules: tuple[nn.Module, ...] = ()) -> None:
    """Train mode, except `eval_modules` (frozen batch norm keeps its statistics: tiny batches estimate them badly)."""
    model.train()
    for m in eval_modules:
        m.eval()


def batchnorms(model: nn.Module) -> tuple[nn.Module, ...]:
    return tuple(m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))


def cycles(optimizer: torch.optim.Optimizer, ends: list[int]) -> torch.optim.lr_scheduler.LambdaLR:
    """One cosine cycle per interval between the steps `ends` (the ladder's rungs, selection.py), each warmed up
    linearly over its first tenth and decayed to 0 at its end, per parameter group: a run stopped at any end is
    annealed, and one continued past it restarts warm (SGDR, Loshchilov & Hutter 2017, with cycles ending at the
    ladder's budgets). One end: warm-up, then cosine decay over the run."""
    starts = [0, *ends[:-1]]

    def factor(taken: int) -> float:  # steps already taken (LambdaLR's epoch): the next step's rate
        cycle = next((i for i, end in enumerate(ends) if taken < end), len(ends) - 1)
        position, length = taken - starts[cycle], ends[cycle] - starts[cycle]
        warmup = max(1, length // 10)
        if position < warmup:
            return (position + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (position - warmup) / max(1, length - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class Diverged(RuntimeError):
    """The training loss became NaN or infinite: these settings cannot give this cell a result."""

    def __init__(self, step: int, loss: float):
        super().__init__(f"training loss became {loss} at step {step}")
        self.step, self.loss = step, loss


@dataclass
class Fit:
    """How one training went: per-evaluation history, the kept (best) evaluation and its steps."""

    history: dict[str, list] = field(  # time_ms: when the evaluation was made, ms since the epoch (MLflow's)
        default_factory=lambda: {
            "step": [],
            "train_loss": [],
            "val_accuracy": [],
            "val_loss": [],
            "time_ms": [],
        }
    )
    best_step: int = 0
    best: tuple[float, float] = (-1.0, math.inf)  # validation (accuracy, loss) of the kept weights
    steps: int = 0


@dataclass
class Member:
    """One training of a fused run: a fresh model, its optimiser param groups (with their learning rates) and the
    modules it keeps in eval mode (frozen batch norm)."""

    model: nn.Module
    param_groups: list[dict]
    eval_modules: tuple[nn.Module, ...] = ()
    steps_before: int = 0  # optimisation steps it took before this run (chain-thaw's earlier phases)

    def set_train_mode(self) -> None:
        set_train_mode(self.model, self.eval_modules)


def fit(
    members: list[Member],
    train: Tensors,
    val: Tensors,
    plan: Budget,
    cfg: Training,
    seed: int,
    device: torch.device,
    augment: bool = True,
    monitor: str = "accuracy",
    evaluate_start: bool = False,
    fuse: bool = True,
    desc: str = "",
) -> list[Fit | Diverged]:
    """AdamW with warm-up and cosine decay over `plan.steps`; each member ends on the weights of its best validation
    evaluation (every `plan.eval_every` steps and at the end), stopping once its best is `plan.patience` steps old.

    The members (one architecture, one data order: the settings of one cell's grid) train as one model by
    horizontal fusion (fusion.py), `cfg.fused_members` at a time (`Run`). `fuse=False` trains them one after
    another (models fusion has no form for, e.g. with dropout). `monitor` "accuracy" ranks evaluations by validation
    accuracy (ties: lower loss), "loss" by validation loss. With `evaluate_start` the weights before training are
    evaluated too (step 0), so training that only makes things worse is undone. Returns each member's Fit, or the
    Diverged error of a member whose training loss stopped being finite.
    """
    size = cfg.fused_members if fuse else 1
    fits: list[Fit | Diverged] = []
    for start in range(0, len(members), size):
        group = members[start : start + size]
        run = Run(
            group, train, val, cfg, seed, device, [plan.steps], plan.batch_size, augment, monitor, fuse, desc
        )
        run.eval_every, run.patience = plan.eval_every, plan.patience
        if evaluate_start:
            run.evaluate_start()
        run.advance(plan.steps)
        fits += run.finish()
    return fits


class _Batches:
    """Batches of a training set in random order, drawn without replacement, reshuffled when too few are left."""

    def __init__(self, train: Tensors, batch_size: int, generator: torch.Generator):
        self.x, self.y = train
        self.batch_size, self.generator = batch_size, generator
        self.order, self.cursor = torch.randperm(len(self.x), generator=generator), 0

    def next(self, device: torch.device) -> Tensors:
        if self.cursor + self.batch_size > len(self.x):
            self.order, self.cursor = torch.randperm(len(self.x), generator=self.generator), 0
        idx = self.order[self.cursor : self.cursor + self.batch_size]
        self.cursor += self.batch_size
        return self.x[idx].to(device), self.y[idx].to(device)


class Run:
    """Members of one architecture trained as one fused model (`fuse=False`: one member alone), resumable:
    `advance(until)` trains every active member to step `until` and evaluates it there (and every `eval_every`
    steps, when set); `drop(members)` ends some members' training; `fit(i)` is member i's Fit so far.

    One AdamW over every member's param groups, the learning rates following `cycles(ends)`; the members draw one
    data order and one augmentation from the cell's seed, as each would alone. Per member: its training losses
    since the last evaluation, its early stopping (its best evaluation's weights; stopping once the best is
    `patience` steps old, when set) and its result. `active`: the members still training (indices into `members`);
    `ended`: each other member's last step. With `val_halves` (a mask, `halves`) each evaluation also records the
    accuracy on each half of validation.
    """

    def __init__(
        self,
        members: list[Member],
        train: Tensors,
        val: Tensors,
        cfg: Training,
        seed: int,
        device: torch.device,
        ends: list[int],
        batch_size: int,
        augment: bool = True,
        monitor: str = "accuracy",
        fuse: bool = True,
        desc: str = "",
        val_halves: torch.Tensor | None = None,
    ):
        for member in members:
            to_device(member.model, device)
        self.members, self.train, self.val, self.cfg, self.device = members, train, val, cfg, device
        self.augment, self.fuse, self.val_halves = augment, fuse, val_halves
        self.desc = desc + (f" · {len(members)} fused" if len(members) > 1 else "")
        self.eval_every: int | None = None
        self.patience: int | None = None
        # fused: one kernel for all parameters, not several per tensor (1.1-1.3x the images/s at 32 px)
        self.optimizer = torch.optim.AdamW(
            [group for member in members for group in member.param_groups],
            weight_decay=cfg.weight_decay,
            fused=True,
        )
        self.schedule = cycles(self.optimizer, ends)
        self.mixed, self.dtype = precision(device)
        # float16 only (CUDA without bfloat16): one scaler skips a step for every member when one overflows
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.mixed and self.dtype == torch.float16)
        # one generator: every member draws the batches and shifts it would draw alone from the cell's seed
        self.generator = torch.Generator().manual_seed(seed)
        self.batches = _Batches(train, batch_size, self.generator)
        self.results: list[Fit | Diverged] = [Fit() for _ in members]
        self.stopping = [EarlyStopping(monitor) for _ in members]
        self.losses: list[list[float]] = [[] for _ in members]
        self.active, self.ended = list(range(len(members))), {}
        self.step = 0

    def train_mode(self, models: fusion.Fused | _Alone) -> fusion.Fused | _Alone:
        models.train()
        for i in self.active:
            self.members[i].set_train_mode()
        return models

    def stack(self) -> fusion.Fused | _Alone:
        """The active members as one model, in train mode (their frozen modules in eval mode)."""
        models = [self.members[i].model for i in self.active]
        return self.train_mode(fusion.Fused(models) if self.fuse else _Alone(models[0]))

    def evaluate_start(self) -> None:
        """Evaluate the weights before training (step 0): the start each arm has (jumpstart), and a fallback."""
        self.record(self.stack(), 0)

    def advance(self, until: int) -> None:
        """Train the active members from the current step to `until`, evaluating at `until`."""
        if not self.active or until <= self.step:
            return
        models = self.stack()
        start = self.step
        for step in (start + i for i in progress.steps(until - start, self.desc)):
            self.step = step
            x, y = self.batches.next(self.device)
            if self.augment:
                x = shift(x, self.cfg.augment_shift, self.generator)
            left = self._step(models, x, y, step)
            evaluated = step == until or bool(self.eval_every and not step % self.eval_every)
            if evaluated:
                left += self.record(models, step, skip=left)
            self.leave(left, step)
            if not self.active:
                break
            if left:
                models = self.stack()  # without the members that left
            elif evaluated:
                self.train_mode(models)

    def _step(self, models: fusion.Fused | _Alone, x: torch.Tensor, y: torch.Tensor, step: int) -> list[int]:
        """One optimisation step of the active members on the batch (x, y); the members whose training loss stopped
        being finite (their result becomes Diverged)."""
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.mixed):
            member_losses = fusion.member_losses(models(x), y.expand(len(self.active), -1))
        values = member_losses.tolist()
        finite = torch.tensor([math.isfinite(v) for v in values])
        self.optimizer.zero_grad(
            set_to_none=True
        )  # a member that left gets no gradient: AdamW leaves it alone
        if finite.any():
            self.scaler.scale(member_losses[finite].sum()).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.schedule.step()
        left = [i for i, value in zip(self.active, values) if not math.isfinite(value)]
        for i, value in zip(self.active, values):
            if i in left:
                self.results[i] = Diverged(step, value)
            else:
                self.losses[i].append(value)
        return left

    def record(self, models: fusion.Fused | _Alone, step: int, skip: list[int] = ()) -> list[int]:
        """Evaluate the stacked members on validation (not those in `skip`); the members whose time it is to
        stop."""
        logits = _logits(models, self.val[0], self.device)
        stopped = []
        for i, member_logits in zip(self.active, logits):
            if i in skip:
                continue
            accuracy, val_loss = scores(member_logits, self.val[1])
            losses = self.losses[i]
            train_loss = float(np.mean(losses)) if losses else None  # none before the first step
            history = self.results[i].history
            for key, value in zip(history, (step, train_loss, accuracy, val_loss, int(time.time() * 1000))):
                history[key].append(value)
            if self.val_halves is not None:
                right = member_logits.argmax(1) == self.val[1]
                for key, part in (
                    ("val_accuracy_half1", self.val_halves),
                    ("val_accuracy_half2", ~self.val_halves),
                ):
                    history.setdefault(key, []).append(right[part].double().mean().item())
            self.losses[i] = []
            self.stopping[i].update(step, accuracy, val_loss, self.members[i].model)
            if self.patience is not None and step - self.stopping[i].best_step >= self.patience:
                stopped.append(i)
        return stopped

    def leave(self, left: list[int], step: int) -> None:
        for i in left:
            self.ended[i] = step
        self.active = [i for i in self.active if i not in left]

    def drop(self, members: list[int]) -> None:
        """End these members' training where they are (successive halving's losers)."""
        self.leave([i for i in members if i in self.active], self.step)

    def fit(self, i: int) -> Fit | Diverged:
        """Member i's result so far: its history, best evaluation and steps (its best weights are loaded by
        `finish`)."""
        result = self.results[i]
        if isinstance(result, Fit):
            result.steps = self.ended.get(i, self.step)
            result.best, result.best_step = self.stopping[i].best, self.stopping[i].best_step
        return result

    def finish(self) -> list[Fit | Diverged]:
        """Each member's result; a member that did not diverge ends on its best weights."""
        self.leave(self.active, self.step)
        fits = [self.fit(i) for i in range(len(self.members))]
        for i, result in enumerate(fits):
            if isinstance(result, Fit):
                self.members[i].model.load_state_dict(self.stopping[i].best_state)
        return fits
