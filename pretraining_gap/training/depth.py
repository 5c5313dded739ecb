"""The depth regime (`config.Depth`): the first k layer groups pretrained, the rest re-initialised, then trained
(Yosinski et al. 2014); one cell per k (`config.Depth.depths`)."""

from __future__ import annotations

from torch import nn

from ..config import Depth
from ..grid import ParamsError
from ..results import Outcome
from . import layer_groups, loop
from .regimes import CellInputs, gradient, image_split, pretrained, random_init


def depth(inputs: CellInputs) -> tuple[Outcome, nn.Module]:
    """AnB (`transferred: frozen`) or AnB+ (`finetune`, Yosinski et al. 2014): keep the first k layer groups,
    re-initialise the rest (weights and batch-norm statistics, from the seeded random init).

    The transferred groups train at `lr`, the re-initialised groups and the head at `lr_new`, a pair chosen on
    validation: one rate for both made the trunk drift under its frozen ImageNet statistics while the few new
    batch norms on top averaged statistics that no longer held (k = 7 fell to chance on validation). The head is
    finetune's seeded head, so k = every group is finetune.
    """
    cfg: Depth = inputs.regime
    return gradient(inputs, image_split(inputs), lambda o: _member(inputs, cfg, o["lr"], o["lr_new"]))


def _member(inputs: CellInputs, cfg: Depth, lr: float, lr_new: float) -> loop.Member:
    """A fresh model with the cell's first k groups pretrained (at `lr`, or frozen) and the rest new (at
    `lr_new`)."""
    frozen_transfer = cfg.transferred == "frozen"
    model, random = pretrained(inputs), random_init(inputs).state_dict()
    *groups, (_, head) = layer_groups.groups(model)
    new = {name for _, names in groups[inputs.cell.depth :] for name in names}
    new_modules = {name.rsplit(".", 1)[0] for name in new}
    model.load_state_dict(
        {k: random[k] if k.rsplit(".", 1)[0] in new_modules else v for k, v in model.state_dict().items()}
    )
    named = dict(model.named_parameters())
    transferred = [n for n in named if n not in new and n not in head]
    for n in transferred:
        named[n].requires_grad_(not frozen_transfer)
    param_groups = [{"params": [named[n] for n in (*head, *sorted(new))], "lr": lr_new}]
    if not frozen_transfer:
        param_groups.append({"params": [named[n] for n in transferred], "lr": lr})
    kept_bn = tuple(
        m for name, m in model.named_modules() if name not in new_modules and m in loop.batchnorms(model)
    )
    return loop.Member(model, param_groups, kept_bn if frozen_transfer or cfg.batchnorm == "frozen" else ())


def check_backbone(cfg: Depth, backbone: str, model: nn.Module) -> None:
    """A k beyond the backbone's pretrained layer groups: ParamsError."""
    available = len(layer_groups.groups(model)) - 1
    asked = max(cfg.k)
    if asked > available:
        raise ParamsError(
            "regimes.depth.k",
            f"k={asked} asked, but {backbone} has {available} pretrained layer groups",
            f"keep k between 1 and {available} ({available} is the same as finetune)",
        )
