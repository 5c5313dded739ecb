"""Transfer regimes: what each starts from and what it trains, for one cell of the grid."""

from __future__ import annotations

import time

import numpy as np
import torch

from . import backbones, training
from .datasets import TEST, VAL, Prepared
from .params import Cell


def _gradient(cell: Cell, params: dict, data: Prepared, train_idx: np.ndarray, pretrained: bool) -> dict:
    cfg, train_cfg = params["regimes"][cell.regime], params["training"]
    model = backbones.create(params["backbones"][cell.backbone], len(data.class_names), pretrained, cell.seed)
    mean, std = backbones.normalisation(model)

    def part(idx):
        return training.to_input(data.images[idx], mean, std), torch.from_numpy(data.labels[idx])

    head = set(model.get_classifier().parameters())
    body = [p for p in model.parameters() if p not in head]
    groups = [{"params": list(head), "lr": cfg["lr"]},
              {"params": body, "lr": cfg["lr"] * cfg.get("backbone_lr_scale", 1.0)}]
    plan = training.budget(len(train_idx), train_cfg, cfg.get("budget_multiplier", 1.0))
    fit = training.fit(model, groups, part(train_idx), part(data.part(VAL)), plan, train_cfg, cell.seed,
                       frozen_batchnorm=cfg.get("batchnorm") == "frozen", desc=cell.run_name)
    test_accuracy, test_loss = training.evaluate(model, *part(data.part(TEST)))
    return {"test_accuracy": test_accuracy, "test_loss": test_loss, "best_val_accuracy": max(fit.history["val_accuracy"]),
            "train_seconds": fit.seconds, "images_per_second": fit.images_per_second, "steps": fit.steps,
            "best_step": fit.best_step, "budget_steps": plan.steps, "batch_size": plan.batch_size,
            "history": fit.history}


def scratch(cell, params, data, train_idx, features=None):
    return _gradient(cell, params, data, train_idx, pretrained=False)


def finetune(cell, params, data, train_idx, features=None):
    return _gradient(cell, params, data, train_idx, pretrained=True)


def linear(cell, params, data, train_idx, features):
    """Logistic regression on cached frozen features; the regularisation C is chosen on validation."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    start = time.perf_counter()
    val, test = data.part(VAL), data.part(TEST)
    fits = [LogisticRegression(C=c, max_iter=2000).fit(features[train_idx], data.labels[train_idx])
            for c in sorted(params["regimes"]["linear"]["C"])]
    scores = [f.score(features[val], data.labels[val]) for f in fits]
    best = fits[int(np.argmax(scores))]  # first of ties: the strongest regularisation
    seconds = time.perf_counter() - start
    return {"test_accuracy": best.score(features[test], data.labels[test]),
            "test_loss": log_loss(data.labels[test], best.predict_proba(features[test]), labels=best.classes_),
            "best_val_accuracy": max(scores), "train_seconds": seconds, "C": best.C}


RUNNERS = {"scratch": scratch, "linear": linear, "finetune": finetune}
FEATURE_REGIMES = {"linear"}
