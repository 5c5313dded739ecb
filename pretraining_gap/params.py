"""params.yaml: loading, the study grid, and checks that fail before any training starts."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import yaml

REGIMES = ("scratch", "linear", "finetune")
PRETRAINED_REGIMES = tuple(r for r in REGIMES if r != "scratch")


class ParamsError(ValueError):
    """A params.yaml value that cannot work; the message names the key and the fix."""

    def __init__(self, key: str, problem: str, fix: str):
        super().__init__(f"params.yaml: {key}: {problem}. Fix: {fix}")
        self.key = key


@dataclass(frozen=True)
class Cell:
    """One training run of the study grid."""

    dataset: str
    backbone: str
    regime: str
    examples_per_class: int
    seed: int

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.backbone}/{self.regime}/{self.examples_per_class}/{self.seed}"

    @property
    def run_name(self) -> str:
        return f"{self.dataset} · {self.backbone} · {self.regime} · {self.examples_per_class}/class · seed {self.seed}"


def load(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run from the study's root folder, where params.yaml lives")
    params = yaml.safe_load(path.read_text())
    validate(params)
    return params


def cells(params: dict, dataset: str | None = None, backbone: str | None = None,
          regime: str | None = None) -> list[Cell]:
    """The study grid, optionally narrowed to one dataset, backbone or regime."""
    study = params["study"]
    return [
        Cell(d, b, r, n, s)
        for d, b, r, s, n in itertools.product(
            study["datasets"], study["backbones"], study["regimes"], study["seeds"], study["sizes"])
        if dataset in (None, d) and backbone in (None, b) and regime in (None, r)
    ]


def _require(params: dict, key: str, kind: type | tuple[type, ...], fix: str):
    node = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ParamsError(key, "missing", fix)
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, kind):  # YAML's yes/no are bools, never numbers here
        raise ParamsError(key, f"expected {getattr(kind, '__name__', kind)}, got {node!r}", fix)
    return node


def _number(params: dict, key: str, kind: type | tuple[type, ...], fix: str, at_least: float | None = None,
            above: float | None = None):
    value = _require(params, key, kind, fix)
    if at_least is not None and value < at_least:
        raise ParamsError(key, f"must be at least {at_least}, got {value}", fix)
    if above is not None and value <= above:
        raise ParamsError(key, f"must be above {above}, got {value}", fix)
    return value


def _positive_ints(params: dict, key: str, fix: str) -> list[int]:
    values = _require(params, key, list, fix)
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise ParamsError(key, f"expected a non-empty list of positive whole numbers, got {values!r}", fix)
    if len(set(values)) != len(values):
        raise ParamsError(key, f"repeated values in {values!r}", "list each value once")
    return values


def validate(params: dict) -> None:
    """Check the whole file up front, so a typo fails before hours of training, not after."""
    if not isinstance(params, dict):
        raise ParamsError("(top level)", "not a mapping", "start from the params.yaml in the repository")
    _positive_ints(params, "study.sizes", "list examples per class, e.g. [1, 2, 5, 10, 25, 50]")
    _positive_ints(params, "study.seeds", "list seeds, e.g. [1, 2, 3]")
    _require(params, "study.name", str, "name the MLflow experiment, e.g. pretraining-gap")
    for group, known in (("datasets", None), ("backbones", None), ("regimes", REGIMES)):
        chosen = _require(params, f"study.{group}", list, f"list the {group} to run")
        blocks = _require(params, group, dict, f"add a '{group}:' block with one entry per name")
        if not chosen:
            raise ParamsError(f"study.{group}", "empty", f"list at least one of {sorted(blocks)}")
        for name in chosen:
            if known is not None and name not in known:
                raise ParamsError(f"study.{group}", f"unknown regime {name!r}", f"use one of {list(known)}")
            if name not in blocks:
                raise ParamsError(f"study.{group}", f"{name!r} has no block under '{group}:'",
                                  f"add '{group}.{name}:' or remove {name!r}; defined: {sorted(blocks)}")
    for name in params["study"]["datasets"]:
        _check_dataset(params, name)
    for name in params["study"]["backbones"]:
        _check_backbone(params, name)
    for key in ("batch_size", "epochs", "min_steps", "max_steps", "evaluations", "patience"):
        _number(params, f"training.{key}", int, "give a positive whole number", at_least=1)
    for key in ("weight_decay", "augment_shift"):
        _number(params, f"training.{key}", (int, float), "give a number, e.g. 0.05", at_least=0)
    for regime in params["study"]["regimes"]:
        if regime == "linear":
            grid = _require(params, "regimes.linear.C", list, "list inverse regularisation strengths, e.g. [0.01, 0.1, 1, 10]")
            if not grid or not all(isinstance(c, (int, float)) and c > 0 for c in grid):
                raise ParamsError("regimes.linear.C", f"expected positive numbers, got {grid!r}", "e.g. [0.01, 0.1, 1, 10]")
            continue
        _number(params, f"regimes.{regime}.lr", (int, float), "give a learning rate, e.g. 0.001", above=0)
    if "scratch" in params["study"]["regimes"]:
        _number(params, "regimes.scratch.budget_multiplier", (int, float), at_least=1,
                fix="use 1 or more: below 1 scratch trains less than fine-tuning (He et al. 2019: it needs longer)")


def _check_dataset(params: dict, name: str) -> None:
    """The dataset block's own values; what only its files can tell (classes, counts, images) prepare checks."""
    from .datasets import SOURCES  # here: datasets raises ParamsError, defined in this module

    block = f"datasets.{name}"
    for key in ("resolution", "val_per_class", "test_per_class"):
        _number(params, f"{block}.{key}", int, "give a positive whole number", at_least=1)
    if "split_seed" in params["datasets"][name]:
        _number(params, f"{block}.split_seed", int, "give a whole number, e.g. 0", at_least=0)
    source = _require(params, f"{block}.source", str, f"use one of {sorted(SOURCES)}")
    if source not in SOURCES:
        raise ParamsError(f"{block}.source", f"unknown source {source!r}", f"use one of {sorted(SOURCES)}")
    if source == "imagefolder":
        for key in ("path", "test_path"):
            if key == "path" or params["datasets"][name].get(key) is not None:
                folder = Path(_require(params, f"{block}.{key}", str, "give the folder holding one sub-folder per class"))
                if not folder.is_dir():
                    raise ParamsError(f"{block}.{key}", f"folder {folder} not found",
                                      "give the folder holding one sub-folder per class (relative to params.yaml)")
    if source == "torchvision":
        _require(params, f"{block}.name", str, "name a torchvision.datasets class, e.g. Flowers102")
        root = Path(_require(params, f"{block}.root", str, "give the folder torchvision keeps the dataset in"))
        download = params["datasets"][name].get("download", False)
        if not isinstance(download, bool):
            raise ParamsError(f"{block}.download", f"expected true or false, got {download!r}",
                              "true to let torchvision download the dataset into root, false to use what is there")
        if not download and not root.is_dir():
            raise ParamsError(f"{block}.root", f"folder {root} not found",
                              "set download: true to fetch the dataset there, or point root at an existing copy")


def _check_backbone(params: dict, name: str) -> None:
    """The backbone block's own values; the timm name and the weights' fit are checked by backbones.check."""
    _require(params, f"backbones.{name}.model", str, "name a timm architecture, e.g. tf_efficientnet_lite0")
    weights = _require(params, f"backbones.{name}.weights", str,
                       "use package (offline EfficientNet-Lite0/1/2), hub, or the path of a .safetensors / .pth file")
    if weights in ("package", "hub"):
        return
    if Path(weights).suffix not in (".safetensors", ".pth", ".pt", ".bin"):
        raise ParamsError(f"backbones.{name}.weights", f"{weights!r} is neither package, hub nor a weights file",
                          "use package, hub, or the path of a .safetensors / .pth file")
    if not Path(weights).is_file():
        raise ParamsError(f"backbones.{name}.weights", f"weights file {weights} not found",
                          "give the path of an existing .safetensors / .pth file (relative to params.yaml)")
