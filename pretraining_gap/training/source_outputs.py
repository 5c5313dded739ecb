"""The pretrained model's own outputs on target images, before any training: its pooled penultimate features and
its ImageNet head's logits, at the images' prepared resolution (the one fine-tuning trains at), for the
transferability forecasts (analysis/forecasts.py). Weights without a 1000-class head (a user's own checkpoint)
give features only."""

from __future__ import annotations

import numpy as np
import torch

from ..config import Backbone
from . import backbones, loop


@torch.no_grad()
def outputs(
    backbone_cfg: Backbone, images: np.ndarray, device: torch.device, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray | None]:
    """Features (N, D) and ImageNet logits (N, 1000), float32, of `images` (N, H, W, 3) uint8 as they are, from the
    pretrained backbone with its own classifier, in eval mode; logits None where the weights had no such head
    (backbones.create then keeps the seeded random one, equal to a random model's)."""
    model = backbones.create(backbone_cfg, num_classes=1000, pretrained=True, seed=0).eval()
    random_head = backbones.create(backbone_cfg, num_classes=1000, pretrained=False, seed=0).get_classifier()
    has_head = not torch.equal(model.get_classifier().weight, random_head.weight)
    model = loop.to_device(model, device)
    mean, std = backbones.normalisation(model)
    features, logits = [], []
    for i in range(0, len(images), batch_size):
        x = loop.to_input(images[i : i + batch_size], mean, std).to(device)
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        features.append(pooled.float().cpu())
        logits.append(model.get_classifier()(pooled).float().cpu())
    return torch.cat(features).numpy(), torch.cat(logits).numpy() if has_head else None
