"""Backbone cost at the study resolution: parameters, FLOPs per image, measured training and inference images/s."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from .config import Backbone
from .training import backbones, loop


def gflops_per_image(model: torch.nn.Module, resolution: int) -> float:
    """Forward FLOPs of one image, counted by torch (a multiply-add is 2 FLOPs)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.zeros(1, 3, resolution, resolution))
    return counter.get_total_flops() / 1e9


def _images_per_second(step, batch_size: int, seconds: float) -> float:
    """Images per second of `step`, from the median of blocks of runs filling about `seconds`
    (`torch.utils.benchmark`, which waits for a GPU to finish before it reads the clock)."""
    logging.getLogger("torch.utils.cpp_extension").setLevel(
        logging.ERROR
    )  # "no CUDA runtime" on CPU machines
    from torch.utils import benchmark

    step()  # warm-up: first-call allocations and kernel choices
    timed = benchmark.Timer(stmt="step()", globals={"step": step}).blocked_autorange(min_run_time=seconds)
    return batch_size / timed.median


def measure(
    backbone_cfg: Backbone,
    num_classes: int,
    resolution: int,
    batch_size: int,
    seconds: float,
    device: torch.device,
) -> dict:
    """Cost of one backbone with a `num_classes` head; weights do not change the cost, so a random init is used."""
    model = backbones.create(backbone_cfg, num_classes, pretrained=False, seed=0)
    result = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "gflops_per_image": gflops_per_image(model, resolution),
        "resolution": resolution,
        "batch_size": batch_size,
        "device": str(device),
    }
    loop.to_device(model, device)
    x = torch.randn(batch_size, 3, resolution, resolution, device=device)
    y = torch.randint(num_classes, (batch_size,), device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)  # as loop.fit

    def train_step() -> None:  # every layer trained, as fine-tuning and scratch do
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    @torch.no_grad()
    def inference_step() -> None:
        model(x)

    model.train()
    result["train_images_per_second"] = _images_per_second(train_step, batch_size, seconds)
    model.eval()
    result["inference_images_per_second"] = _images_per_second(inference_step, batch_size, seconds)
    return result
