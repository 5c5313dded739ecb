"""The scratch regime (`config.Scratch`): random init, every layer trained, at its own learning rates; batch norm or
GroupNorm, chosen per cell on validation beside the rate. Its budget is the ladder's (selection.py): it climbs as
long as validation gains, as far as 8x where it does (He et al. 2019: scratch needs longer)."""

from __future__ import annotations

from torch import nn

from ..config import Scratch
from ..grid import ParamsError
from ..results import Outcome
from . import backbones, loop
from .regimes import CellInputs, gradient, image_split


def scratch(inputs: CellInputs) -> tuple[Outcome, nn.Module]:
    def build(options: dict) -> loop.Member:
        model = backbones.create(
            inputs.backbone, inputs.num_classes, False, inputs.cell.seed, options["norm"]
        )
        return loop.Member(model, [{"params": list(model.parameters()), "lr": options["lr"]}])

    # batch norm and GroupNorm are two architectures: each family's rates train fused
    return gradient(inputs, image_split(inputs), build, architecture=("norm",))


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
