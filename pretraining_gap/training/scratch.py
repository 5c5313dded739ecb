"""The scratch regime (`config.Scratch`): random init, every layer trained, at its own learning rates and on a
longer budget (He et al. 2019); batch norm or GroupNorm, chosen per cell on validation beside the rate."""

from __future__ import annotations

from torch import nn

from ..config import Scratch
from ..grid import ParamsError
from ..results import Outcome
from . import backbones, loop, tuning
from .regimes import CellInputs, Grid, gradient, image_split


def scratch(inputs: CellInputs) -> tuple[Outcome, nn.Module]:
    cfg: Scratch = inputs.regime

    def build(setting: tuple[str, float]) -> loop.Member:
        norm, lr = setting
        model = backbones.create(inputs.backbone, inputs.num_classes, False, inputs.cell.seed, norm)
        return loop.Member(model, [{"params": list(model.parameters()), "lr": lr}])

    grid = Grid(
        lambda run, score: tuning.search_families({"batch": cfg.lr, "group": cfg.group_norm_lr}, run, score),
        lambda best: {"norm": best[0], "lr": best[1]},
    )
    return gradient(inputs, image_split(inputs), build, grid)


def check_backbone(cfg: Scratch, backbone: str, model: nn.Module) -> None:
    """GroupNorm asked of an architecture whose channels its groups do not divide: ParamsError."""
    if not cfg.group_norm_lr:
        return
    try:
        backbones.group_norm(model)
    except ValueError as error:
        raise ParamsError(
            "regimes.scratch.group_norm_lr",
            f"{backbone} cannot take GroupNorm with {backbones.GROUPS} groups ({error})",
            "remove group_norm_lr: scratch then keeps the architecture's batch norm",
        ) from None
