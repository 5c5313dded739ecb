"""Frozen backbone features, computed once per dataset and backbone and shared by every frozen-regime cell."""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from ..config import Backbone
from . import backbones, loop


@torch.no_grad()
def extract(
    backbone_cfg: Backbone, images: np.ndarray, device: torch.device, batch_size: int = 256
) -> np.ndarray:
    """Pooled pre-classifier features (N, D) float32 of the pretrained backbone, in eval mode."""
    model = loop.to_device(
        backbones.create(backbone_cfg, num_classes=0, pretrained=True, seed=0).eval(), device
    )
    mean, std = backbones.normalisation(model)
    chunks = [
        model(loop.to_input(images[i : i + batch_size], mean, std).to(device)).float().cpu()
        for i in tqdm(range(0, len(images), batch_size), desc="features", unit="batch")
    ]
    return torch.cat(chunks).numpy()
