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
from . import convolutions
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
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def precision(device: torch.device) -> tuple[bool, torch.dtype]:
    """Mixed precision on CUDA (bfloat16 where the GPU has it, else float16 with loss scaling); float32 elsewhere."""
    if device.type != "cuda":
        return False, torch.float32
    return True, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, batch_size: int = 256
) -> tuple[float, float]:
    """Accuracy (fraction) and mean cross-entropy (nats), in eval mode (the caller puts it back in train mode)."""
    model.eval()
    mixed, dtype = precision(device)
    with torch.autocast(device.type, dtype=dtype, enabled=mixed):
        logits = torch.cat(
            [model(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
        )
    return (logits.argmax(1) == y).double().mean().item(), F.cross_entropy(logits.double(), y).item()


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
    """How one training went: per-evaluation history, the kept (best) evaluation, steps and time."""

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
    seconds: float = 0.0
    images_per_second: float = 0.0


def fit(
    model: nn.Module,
    param_groups: list[dict],
    train: Tensors,
    val: Tensors,
    plan: Budget,
    cfg: Training,
    seed: int,
    device: torch.device,
    augment: bool = True,
    eval_modules: tuple[nn.Module, ...] = (),
    monitor: str = "accuracy",
    evaluate_start: bool = False,
    desc: str = "",
) -> Fit:
    """AdamW with warm-up and cosine decay; ends on the weights of the best validation evaluation.

    `monitor` "accuracy" ranks evaluations by validation accuracy (ties: lower loss), "loss" by validation loss.
    Stops early once the best evaluation is `plan.patience` steps old. With `evaluate_start` the weights before
    training are evaluated too (step 0), so training that only makes things worse is undone.
    Raises Diverged when the training loss stops being finite.
    """
    to_device(model, device)
    x, y = train
    generator = torch.Generator().manual_seed(seed)
    # fused: one kernel for all parameters, not several per tensor (1.1-1.3x the images/s at 32 px)
    optimizer = torch.optim.AdamW(param_groups, weight_decay=cfg.weight_decay, fused=True)
    lr_schedule = schedule(optimizer, plan.steps)
    mixed, dtype = precision(device)
    scaler = torch.amp.GradScaler(device.type, enabled=mixed and dtype == torch.float16)
    stopping, result, losses = EarlyStopping(plan.patience, monitor), Fit(), []

    def record(step: int) -> bool:
        """Evaluate on validation; True when it is time to stop."""
        nonlocal losses
        accuracy, val_loss = evaluate(model, *val, device)
        set_train_mode(model, eval_modules)
        train_loss = float(np.mean(losses)) if losses else None  # none before the first step
        for key, value in zip(
            result.history, (step, train_loss, accuracy, val_loss, int(time.time() * 1000))
        ):
            result.history[key].append(value)
        losses = []
        return stopping.update(step, accuracy, val_loss, model)

    if evaluate_start:
        record(0)
    set_train_mode(model, eval_modules)
    order, cursor = torch.randperm(len(x), generator=generator), 0
    start = time.perf_counter()
    bar = progress.steps(plan.steps, desc)  # a step bar on a terminal only
    for step in bar:
        if cursor + plan.batch_size > len(x):
            order, cursor = torch.randperm(len(x), generator=generator), 0
        idx = order[cursor : cursor + plan.batch_size]
        cursor += plan.batch_size
        xb = x[idx].to(device)
        if augment:
            xb = shift(xb, cfg.augment_shift, generator)
        with torch.autocast(device.type, dtype=dtype, enabled=mixed):
            loss = F.cross_entropy(model(xb), y[idx].to(device))
        if not torch.isfinite(loss):
            raise Diverged(step, loss.item())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        lr_schedule.step()
        losses.append(loss.item())
        if step % plan.eval_every and step != plan.steps:
            continue
        stop = record(step)
        bar.set_postfix(val_accuracy=f"{result.history['val_accuracy'][-1]:.3f}")
        if stop:
            break
    result.seconds = time.perf_counter() - start
    result.steps = step
    result.images_per_second = step * plan.batch_size / result.seconds
    result.best, result.best_step = stopping.best, stopping.best_step
    model.load_state_dict(stopping.best_state)
    return result
