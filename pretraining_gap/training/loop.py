"""Gradient training of one cell: step budget, tensor augmentation, a warm-up + cosine schedule, early stopping."""

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
    eval_every: int  # steps between validation evaluations
    patience: int  # steps without a better evaluation before stopping


def budget(n_train: int, cfg: Training, multiplier: float = 1.0) -> Budget:
    """Steps = epochs over the subset, clipped to [min_steps, max_steps], times the regime's multiplier.

    Evaluations come every `base steps / evaluations` steps, the same interval for every arm of a size whatever
    its multiplier, so that the validation curves of the arms share a step grid; a run stops once its best
    evaluation is `patience` (a fraction) of its own budget old.
    """
    batch = min(cfg.batch_size, n_train)
    base = min(max(round(cfg.epochs * n_train / batch), cfg.min_steps), cfg.max_steps)
    steps = round(base * multiplier)
    return Budget(steps, batch, max(1, base // cfg.evaluations), math.ceil(cfg.patience * steps))


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
    return _evaluate_members(_Alone(model), x, y, device, batch_size)[0]


@torch.no_grad()
def _evaluate_members(
    models: fusion.Fused | _Alone,
    x: torch.Tensor,
    y: torch.Tensor,
    device: torch.device,
    batch_size: int = 256,
) -> list[tuple[float, float]]:
    """Each member's (accuracy, mean cross-entropy) on (x, y), in eval mode."""
    models.eval()
    mixed, dtype = precision(device)
    with torch.autocast(device.type, dtype=dtype, enabled=mixed):
        logits = torch.cat(
            [models(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)], 1
        )
    return [
        ((member.argmax(1) == y).double().mean().item(), F.cross_entropy(member.double(), y).item())
        for member in logits
    ]


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


def schedule(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up over the first tenth of the steps, then cosine decay to 0 at `steps`, per parameter group."""
    warmup = max(1, steps // 10)
    return torch.optim.lr_scheduler.SequentialLR(
        optimizer,
        [
            torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1 / warmup, total_iters=warmup),
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps - warmup)),
        ],
        milestones=[warmup],
    )


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
    """AdamW with warm-up and cosine decay; each member ends on the weights of its best validation evaluation.

    The members (one architecture, one data order: the settings of one cell's grid) train as one model by
    horizontal fusion (fusion.py), `cfg.fused_members` at a time; each keeps its own learning rates, AdamW state,
    early stopping and best weights, and trains as it would alone (exactly in float64; float32 sums in another
    order). `fuse=False` trains them one after another (models fusion has no form for, e.g. with dropout).
    `monitor` "accuracy" ranks evaluations by validation accuracy (ties: lower loss), "loss" by validation loss.
    A member stops once its best evaluation is `plan.patience` steps old. With `evaluate_start` the weights
    before training are evaluated too (step 0), so training that only makes things worse is undone.
    Returns each member's Fit, or the Diverged error of a member whose training loss stopped being finite.
    """
    size = cfg.fused_members if fuse else 1
    groups = [members[start : start + size] for start in range(0, len(members), size)]
    return [
        result
        for group in groups
        for result in _fit_group(
            _Group(group, plan, cfg, device, monitor, fuse),
            train,
            val,
            seed,
            augment,
            evaluate_start,
            desc + (f" · {len(group)} fused" if len(group) > 1 else ""),
        )
    ]


def _fit_group(
    run: _Group, train: Tensors, val: Tensors, seed: int, augment: bool, evaluate_start: bool, desc: str
) -> list[Fit | Diverged]:
    """One group's training (`fit`): its members draw one data order and one augmentation from the cell's seed."""
    # one generator: every member draws the batches and shifts it would draw alone from the cell's seed
    generator = torch.Generator().manual_seed(seed)
    models = run.stack()
    if evaluate_start:
        run.record(models, val, 0)
        run.train_mode(models)
    batches = _Batches(train, run.plan.batch_size, generator)
    bar = progress.steps(run.plan.steps, desc)
    for step in bar:
        x, y = batches.next(run.device)
        if augment:
            x = shift(x, run.cfg.augment_shift, generator)
        left = run.step(models, x, y, step)
        evaluated = not step % run.plan.eval_every or step == run.plan.steps
        if evaluated:
            left += run.record(models, val, step, skip=left)
            bar.set_postfix(val_accuracy=f"{max(run.stopping[i].best[0] for i in run.active):.3f}")
        run.leave(left, step)
        if not run.active:
            break
        if left:
            models = run.stack()  # without the members that left
        elif evaluated:
            run.train_mode(models)
    return run.finish(step)


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


class _Group:
    """The training state of members fused into one model: one optimiser and schedule over all their param groups,
    and per member its training losses since the last evaluation, early stopping and result. `active`: the members
    still training (indices into `members`); `ended`: each other member's last step."""

    def __init__(
        self,
        members: list[Member],
        plan: Budget,
        cfg: Training,
        device: torch.device,
        monitor: str,
        fuse: bool,
    ):
        for member in members:
            to_device(member.model, device)
        self.members, self.plan, self.cfg, self.device, self.fuse = members, plan, cfg, device, fuse
        # fused: one kernel for all parameters, not several per tensor (1.1-1.3x the images/s at 32 px)
        self.optimizer = torch.optim.AdamW(
            [group for member in members for group in member.param_groups],
            weight_decay=cfg.weight_decay,
            fused=True,
        )
        self.schedule = schedule(self.optimizer, plan.steps)
        self.mixed, self.dtype = precision(device)
        # float16 only (CUDA without bfloat16): one scaler skips a step for every member when one overflows
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.mixed and self.dtype == torch.float16)
        self.results: list[Fit | Diverged] = [Fit() for _ in members]
        self.stopping = [EarlyStopping(plan.patience, monitor) for _ in members]
        self.losses: list[list[float]] = [[] for _ in members]
        self.active, self.ended = list(range(len(members))), {}

    def train_mode(self, models: fusion.Fused | _Alone) -> fusion.Fused | _Alone:
        models.train()
        for i in self.active:
            self.members[i].set_train_mode()
        return models

    def stack(self) -> fusion.Fused | _Alone:
        """The active members as one model, in train mode (their frozen modules in eval mode)."""
        models = [self.members[i].model for i in self.active]
        return self.train_mode(fusion.Fused(models) if self.fuse else _Alone(models[0]))

    def step(self, models: fusion.Fused | _Alone, x: torch.Tensor, y: torch.Tensor, step: int) -> list[int]:
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

    def record(
        self, models: fusion.Fused | _Alone, val: Tensors, step: int, skip: list[int] = ()
    ) -> list[int]:
        """Evaluate the stacked members on validation (not those in `skip`); the members whose time it is to
        stop."""
        scores = _evaluate_members(models, *val, self.device)
        stopped = []
        for i, (accuracy, val_loss) in zip(self.active, scores):
            if i in skip:
                continue
            losses = self.losses[i]
            train_loss = float(np.mean(losses)) if losses else None  # none before the first step
            history = self.results[i].history
            for key, value in zip(history, (step, train_loss, accuracy, val_loss, int(time.time() * 1000))):
                history[key].append(value)
            self.losses[i] = []
            if self.stopping[i].update(step, accuracy, val_loss, self.members[i].model):
                stopped.append(i)
        return stopped

    def leave(self, left: list[int], step: int) -> None:
        for i in left:
            self.ended[i] = step
        self.active = [i for i in self.active if i not in left]

    def finish(self, step: int) -> list[Fit | Diverged]:
        """Each member's result; a member that did not diverge ends on its best weights."""
        self.leave(self.active, step)
        for i, result in enumerate(self.results):
            if isinstance(result, Diverged):
                continue
            result.steps = self.ended[i]
            result.best, result.best_step = self.stopping[i].best, self.stopping[i].best_step
            self.members[i].model.load_state_dict(self.stopping[i].best_state)
        return self.results
