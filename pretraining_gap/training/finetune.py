"""The finetune regime (`config.Finetune`): every layer trained from the pretrained weights."""

from __future__ import annotations

from torch import nn

from ..config import Finetune
from ..results import Outcome
from . import layer_groups, loop
from .regimes import CellInputs, gradient, image_split, pretrained, random_init


def finetune(inputs: CellInputs) -> tuple[Outcome, nn.Module]:
    """All layers from the pretrained weights; the head's learning rate is `lr`, the backbone's `lr` x scale; batch
    norm's ImageNet statistics frozen or trained (a candidate each: one fused model, members keep their modes)."""
    cfg: Finetune = inputs.regime

    def build(options: dict) -> loop.Member:
        lr, model = options["lr"], pretrained(inputs)
        head = set(model.get_classifier().parameters())
        groups = [
            {"params": list(head), "lr": lr},
            {"params": [p for p in model.parameters() if p not in head], "lr": lr * cfg.backbone_lr_scale},
        ]
        return loop.Member(model, groups, loop.batchnorms(model) if options["batchnorm"] == "frozen" else ())

    outcome, model = gradient(inputs, image_split(inputs), build)
    random, start = random_init(inputs).state_dict(), pretrained(inputs).state_dict()
    tuned = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    layers = layer_groups.weight_layers(model)
    update = {
        "transferability": layer_groups.transferability(random, start, tuned, layers),
        "weight_scale": layer_groups.weight_scale(start, layers),
    }
    return outcome.model_copy(update=update), model
