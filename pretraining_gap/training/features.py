"""Frozen backbone features, computed once per dataset and backbone and shared by every feature-regime cell."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..config import Backbone
from . import backbones, loop


def resolution(cfg: Backbone) -> int:
    """The side, in pixels, features are computed at: `feature_resolution`, else the architecture's ImageNet input
    size (a network made for 224 px fed 32-px images makes any probe on its features look weak)."""
    if cfg.feature_resolution:
        return cfg.feature_resolution
    import timm

    return timm.create_model(cfg.model, pretrained=False).pretrained_cfg["input_size"][-1]


@torch.no_grad()
def extract(
    backbone_cfg: Backbone, images: np.ndarray, device: torch.device, batch_size: int = 64
) -> np.ndarray:
    """Pooled pre-classifier features (N, D) float32 of the pretrained backbone, in eval mode, of `images`
    (N, H, W, 3) uint8 resized to `resolution(backbone_cfg)` (bilinear, antialiased)."""
    model = loop.to_device(
        backbones.create(backbone_cfg, num_classes=0, pretrained=True, seed=0).eval(), device
    )
    mean, std = backbones.normalisation(model)
    side = resolution(backbone_cfg)
    chunks = []
    batches = range(0, len(images), batch_size)
    for i in tqdm(batches, desc=f"features at {side} px", unit="batch", disable=None):  # None: terminal only
        x = loop.to_input(images[i : i + batch_size], mean, std).to(device)
        if x.shape[-1] != side:
            x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        chunks.append(model(x.contiguous(memory_format=torch.channels_last)).float().cpu())
    return torch.cat(chunks).numpy()
