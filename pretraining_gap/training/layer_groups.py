"""Layer groups of a timm model, in network order, and the per-group transferability of fine-tuned weights."""

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


def transferability(
    random: dict[str, torch.Tensor],
    pretrained: dict[str, torch.Tensor],
    finetuned: dict[str, torch.Tensor],
    groups_: list[tuple[str, list[str]]],
) -> dict[str, float]:
    """T per group = mean|θ_random − θ_finetuned| / mean|θ_pretrained − θ_finetuned| (arXiv 2212.00399).

    T ≫ 1: fine-tuning stayed near the pretrained weights, the group transferred; T ≈ 1: it moved as far as
    from a random start. Groups whose weights did not change (frozen) have no T.
    """
    out = {}
    for name, names in groups_:
        to_random = torch.cat([(random[n] - finetuned[n]).abs().flatten() for n in names]).mean()
        to_pretrained = torch.cat([(pretrained[n] - finetuned[n]).abs().flatten() for n in names]).mean()
        if to_pretrained > 0:
            out[name] = (to_random / to_pretrained).item()
    return out
