"""Layer groups of a timm model in network order, and the per-layer transferability of fine-tuned weights."""

from __future__ import annotations

import torch
from timm.models import group_parameters
from torch import nn


def groups(model: nn.Module) -> list[tuple[str, list[str]]]:
    """(name, parameter names) per layer group, input to output; the last group is the classifier.

    timm's coarse `group_matcher` defines the groups (for EfficientNet: stem, one per stage, head conv).
    A group is named after its first and last top-level layer, e.g. 'blocks.6 to bn2' (valid in MLflow keys).
    """
    grouped = group_parameters(model, model.group_matcher(coarse=True))

    def layer(name: str) -> str:
        parts = name.split(".")
        return ".".join(parts[:2]) if parts[0] == "blocks" else parts[0]

    named = []
    for names in grouped.values():
        first, last = layer(names[0]), layer(names[-1])
        named.append((first if first == last else f"{first} to {last}", names))
    return named


def weight_layers(model: nn.Module) -> list[str]:
    """The weight tensors of the convolution and linear layers, input to output, without the classifier (new in
    every regime): the layers arXiv 2212.00399 measures (batch-norm scales and biases are left out)."""
    head = {
        f"{name}.weight" for name, _ in model.get_classifier().named_modules(prefix=_classifier_name(model))
    }
    return [
        f"{name}.weight"
        for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear)) and f"{name}.weight" not in head
    ]


def _classifier_name(model: nn.Module) -> str:
    classifier = model.get_classifier()
    return next(name for name, module in model.named_modules() if module is classifier)


def transferability(
    random: dict[str, torch.Tensor],
    pretrained: dict[str, torch.Tensor],
    finetuned: dict[str, torch.Tensor],
    layers: list[str],
) -> dict[str, float]:
    """T per layer = D(θ_random, θ_finetuned) / D(θ_pretrained, θ_finetuned), D the mean absolute difference of the
    layer's weights (Chen et al., arXiv 2212.00399, section 3).

    T ≫ 1: fine-tuning stayed near the pretrained weights, the layer transferred; T ≈ 1: it moved as far as from a
    random start. T also grows with a layer's weight scale and shrinks with optimisation steps, so compare layers
    of runs with equal steps. Layers whose weights did not change (frozen) have no T.
    """
    out = {}
    for name in layers:  # in float64, so a logged T carries no float32 rounding (1.2000000476837158)
        to_pretrained = (pretrained[name] - finetuned[name]).abs().double().mean()
        if to_pretrained > 0:
            out[name] = ((random[name] - finetuned[name]).abs().double().mean() / to_pretrained).item()
    return out


def weight_scale(state: dict[str, torch.Tensor], layers: list[str]) -> dict[str, float]:
    """Mean absolute weight per layer: beside T, it shows how much of T is the layer's scale."""
    return {name: state[name].abs().double().mean().item() for name in layers}
