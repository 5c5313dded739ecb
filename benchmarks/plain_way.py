"""The plain way to run one cell of the study, as a user would write it without this project (the benchmark's baseline).

Images are PNG files in an ImageFolder layout (`export` writes them once, at the source's own resolution); every
cell is a fresh process that imports torch and timm, builds the model, and trains from a torchvision ImageFolder
through PIL transforms (Resize to the study resolution, RandomAffine translation, ToTensor, Normalize) and a
shuffling DataLoader with 2 workers that decodes every image every epoch. The workers are persistent: the study's
small subsets make an epoch one step, and restarting them every epoch (the DataLoader's default) took 1-1.5 s per
step, more than the training itself. `linear` trains a linear head by gradient on the frozen backbone, and
`frozen` the dense head of params.yaml, running the backbone every step (no cached features; one learning rate,
the middle of the grid, where the project tries every value of the grid). One run per cell, at the middle rate
of each grid and the base budget of params.yaml (the first-rung candidates' run of the project's ladder, to
1x), evaluated 5 times and stopped after 2 evaluations without gain; the optimiser and schedule are the project's.

  python -m benchmarks.plain_way cell ROOT REGIME SIZE SEED --params params.yaml --train-files F.json --out R.json
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import numpy as np

from pretraining_gap import config
from pretraining_gap.config import Params

LINEAR_LR = 0.01  # a linear head's usual AdamW learning rate; the project's probe needs none (it is convex)
EVALUATIONS, PATIENCE = 5, 2  # validation passes per run; passes without gain before it stops


def export(listed, split: np.ndarray, out: Path) -> None:
    """PNG files out/{pool,val,test}/<class>/<index>.png of a dataset catalogue, the index being the image's row."""
    for part, code in (("pool", 0), ("val", 1), ("test", 2)):
        for c in listed.class_names:
            (out / part / c).mkdir(parents=True, exist_ok=True)
        for i in np.flatnonzero(split == code):
            listed.read(int(i)).save(out / part / listed.class_names[listed.labels[i]] / f"{i:05d}.png")


def _middle(grid: list[float]) -> float:
    """One learning rate of a regime's grid (the value itself when the grid has one)."""
    return grid[len(grid) // 2]


def _loaders(root: Path, train_files: set[str], resolution: int, mean, std, shift: float, batch: int):
    import torch
    from torchvision import datasets, transforms

    plain = [
        transforms.Resize((resolution, resolution)),
        transforms.Grayscale(3),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ]
    augment = [
        transforms.Resize((resolution, resolution)),
        transforms.Grayscale(3),
        transforms.RandomAffine(degrees=0, translate=(shift, shift)),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ]
    pool = datasets.ImageFolder(str(root / "pool"), transform=transforms.Compose(augment))
    keep = [i for i, (path, _) in enumerate(pool.samples) if Path(path).name in train_files]
    train = torch.utils.data.DataLoader(
        torch.utils.data.Subset(pool, keep),
        batch_size=batch,
        shuffle=True,
        num_workers=2,
        persistent_workers=True,
        drop_last=True,
    )

    def evaluation(part):
        data = datasets.ImageFolder(str(root / part), transform=transforms.Compose(plain))
        return torch.utils.data.DataLoader(data, batch_size=256, num_workers=2, persistent_workers=True)

    return train, evaluation("val"), evaluation("test"), len(keep)


def _evaluate(model, loader):
    import torch
    import torch.nn.functional as F

    model.eval()
    with torch.no_grad():
        logits, labels = zip(*[(model(x), y) for x, y in loader])
    logits, labels = torch.cat(logits), torch.cat(labels)
    return (logits.argmax(1) == labels).float().mean().item(), F.cross_entropy(logits, labels).item()


def run_cell(root: Path, regime: str, size: int, seed: int, params: Params, train_files: set[str]) -> dict:
    import timm
    import torch
    import torch.nn.functional as F
    from torch import nn

    from pretraining_gap.training import backbones  # the packaged ImageNet weights only
    from pretraining_gap.training.loop import budget  # the project's step-budget rule

    study_backbone = params.backbones[params.study.backbones[0]]
    resolution = params.datasets[params.study.datasets[0]].resolution
    cfg, reg = params.training, params.regime(regime)
    num_classes = len(list((root / "pool").iterdir()))
    torch.manual_seed(seed)
    if regime == "scratch":
        model = timm.create_model(study_backbone.model, num_classes=num_classes)
    else:
        model = backbones.create(study_backbone, num_classes, pretrained=True, seed=seed)
    if reg.on_features:
        for p in model.parameters():
            p.requires_grad = False
        for p in model.get_classifier().parameters():
            p.requires_grad = True
        if regime == "frozen":
            widths = [model.num_features, *reg.hidden]
            model.classifier = nn.Sequential(
                *[
                    m
                    for a, b in zip(widths, widths[1:])
                    for m in (nn.Linear(a, b), nn.ReLU(), nn.Dropout(reg.dropout[0]))
                ],
                nn.Linear(widths[-1], num_classes),
            )
        lr = LINEAR_LR if regime == "linear" else _middle(reg.lr)
        groups = [{"params": list(model.get_classifier().parameters()), "lr": lr}]
    else:
        groups = [{"params": list(model.parameters()), "lr": _middle(reg.lr)}]
    frozen_bn = reg.on_features or getattr(reg, "batchnorm", None) == "frozen"
    plan = budget(size * num_classes, cfg)
    eval_every = max(1, plan.steps // EVALUATIONS)
    mean, std = model.pretrained_cfg["mean"], model.pretrained_cfg["std"]
    train, val, test, n = _loaders(
        root, train_files, resolution, mean, std, cfg.augment_shift, plan.batch_size
    )

    def train_mode():
        model.train()
        if frozen_bn:
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()

    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    warmup = max(1, plan.steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, plan.steps) / plan.steps))
        ),
    )
    best, best_state, since_best, step, stop = (-1.0, math.inf), None, 0, 0, False
    start = time.perf_counter()
    train_mode()
    while not stop:
        for x, y in train:
            step += 1
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            if step % eval_every == 0 or step == plan.steps:
                accuracy, val_loss = _evaluate(model, val)
                train_mode()
                if (accuracy, -val_loss) > (best[0], -best[1]):
                    best, best_state, since_best = (accuracy, val_loss), copy.deepcopy(model.state_dict()), 0
                else:
                    since_best += 1
                stop = since_best >= PATIENCE or step == plan.steps
            if stop:
                break
    seconds = time.perf_counter() - start
    model.load_state_dict(best_state)
    test_accuracy, _ = _evaluate(model, test)
    return {
        "regime": regime,
        "examples_per_class": size,
        "seed": seed,
        "n_train": n,
        "test_accuracy": test_accuracy,
        "best_val_accuracy": best[0],
        "train_seconds": seconds,
        "steps": step,
        "batch_size": plan.batch_size,
        "images_per_second": step * plan.batch_size / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.plain_way",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    cell = sub.add_parser("cell", help="train one cell the plain way and write its result JSON")
    cell.add_argument("root", type=Path, help="ImageFolder root with pool/ val/ test/")
    cell.add_argument("regime", choices=["scratch", "linear", "frozen", "finetune"])
    cell.add_argument("size", type=int, help="examples per class")
    cell.add_argument("seed", type=int)
    cell.add_argument("--params", type=Path, required=True)
    cell.add_argument(
        "--train-files", type=Path, required=True, help="JSON list of the pool file names to train on"
    )
    cell.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = run_cell(
        args.root,
        args.regime,
        args.size,
        args.seed,
        config.load(args.params),
        set(json.loads(args.train_files.read_text())),
    )
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
