"""The frozen regime (`config.Frozen`): dense layers trained on cached frozen features (the lecture's model 2)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import Frozen
from ..results import Outcome
from . import loop
from .regimes import CellInputs, gradient, split


def frozen(inputs: CellInputs) -> tuple[Outcome, nn.Module]:
    """Dense layers (`hidden` widths, ReLU, dropout) on cached frozen features; the backbone never runs here."""
    cfg: Frozen = inputs.regime
    x = torch.from_numpy(inputs.features).float()
    # Centred and scaled by the training subset alone, so one learning-rate grid suits every backbone's features.
    train_x = x[inputs.train_idx]
    x = (x - train_x.mean(0)) / train_x.std().clamp_min(1e-12)

    def build(options: dict) -> loop.Member:
        torch.manual_seed(inputs.cell.seed)
        widths = [x.shape[1], *cfg.hidden]
        layers = [
            m
            for a, b in zip(widths, widths[1:])
            for m in (nn.Linear(a, b), nn.ReLU(), nn.Dropout(options["dropout"]))
        ]
        head = nn.Sequential(*layers, nn.Linear(widths[-1], inputs.num_classes))
        return loop.Member(head, [{"params": list(head.parameters()), "lr": options["lr"]}])

    # fusion has no form for dropout (its masks would not be the ones a member draws alone): one at a time
    return gradient(inputs, split(inputs, lambda idx: x[idx]), build, augment=False, fuse=False)
