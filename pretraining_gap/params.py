"""params.yaml: loading, the study grid, and checks that fail before any training starts."""

from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass
from pathlib import Path

import yaml

REGIMES = ("scratch", "linear", "frozen", "finetune", "chainthaw", "depth")
PRETRAINED_REGIMES = tuple(r for r in REGIMES if r != "scratch")

# Every key params.yaml may hold, so a typo fails up front instead of being silently ignored.
# None: the user names the entries (datasets, backbones); "*" stands for such a name. Add a key here when code
# starts reading it.
KNOWN_KEYS: dict[str, set[str] | None] = {
    "": {"study", "datasets", "backbones", "training", "regimes"},
    "study": {"name", "datasets", "backbones", "regimes", "sizes", "seeds"},
    "datasets": None,
    "datasets.*": {"source", "path", "test_path", "name", "root", "download", "resolution", "val_per_class",
                   "test_per_class", "split_seed"},
    "backbones": None,
    "backbones.*": {"model", "weights"},
    "training": {"batch_size", "epochs", "min_steps", "max_steps", "evaluations", "patience", "weight_decay",
                 "augment_shift"},
    "regimes": {"scratch", "linear", "frozen", "finetune", "chainthaw", "depth"},
    "regimes.scratch": {"lr", "budget_multiplier"},
    "regimes.linear": {"C"},
    "regimes.frozen": {"lr", "hidden", "dropout"},
    "regimes.finetune": {"lr", "batchnorm", "backbone_lr_scale"},
    "regimes.chainthaw": {"lr", "batchnorm", "phase_budget", "phase_patience"},
    "regimes.depth": {"k", "transferred", "lr", "batchnorm"},
}


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
    depth: int | None = None  # pretrained layer groups kept, for the depth regime only

    @property
    def label(self) -> str:
        """The regime, with the transfer depth of depth-k cells: 'finetune', 'depth_k3' (the figures' arm names)."""
        return self.regime if self.depth is None else f"{self.regime}_k{self.depth}"

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.backbone}/{self.label}/{self.examples_per_class}/{self.seed}"

    @property
    def run_name(self) -> str:
        return f"{self.dataset} · {self.backbone} · {self.label} · {self.examples_per_class}/class · seed {self.seed}"


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
        Cell(d, b, r, n, s, k)
        for d, b, r, s, n in itertools.product(
            study["datasets"], study["backbones"], study["regimes"], study["seeds"], study["sizes"])
        if dataset in (None, d) and backbone in (None, b) and regime in (None, r)
        for k in (params["regimes"]["depth"]["k"] if r == "depth" else [None])
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


def _schema(path: str) -> str | None:
    """The KNOWN_KEYS entry of the block at `path` ("datasets.digits" -> "datasets.*"); None for a value."""
    if path in KNOWN_KEYS:
        return path
    wildcard = f"{path.rpartition('.')[0]}.*"
    return wildcard if wildcard in KNOWN_KEYS else None


def _unknown_keys(block: dict, path: str = "") -> None:
    """Reject keys that no code reads (a typo such as `trainig:` or `lr_:`), suggesting the closest known one."""
    known = KNOWN_KEYS[_schema(path)]
    for key, value in block.items():
        where = f"{path}.{key}" if path else str(key)
        if known is not None and key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"did you mean {close[0]!r}? Known keys here: " if close else "known keys here: "
            raise ParamsError(where, "unknown key", f"{hint}{sorted(known)}")
        schema = _schema(where)
        if schema is None:
            continue
        if not isinstance(value, dict):
            raise ParamsError(where, f"expected a block of keys, got {value!r}", "indent its keys under it")
        _unknown_keys(value, where)


def _learning_rates(params: dict, key: str) -> list[float]:
    """A learning rate, or a list of them to choose from on validation."""
    value = _require(params, key, (int, float, list), "give a learning rate, e.g. 0.001, or a list, e.g. [0.0003, 0.001]")
    grid = value if isinstance(value, list) else [value]
    if not grid or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in grid):
        raise ParamsError(key, f"expected a positive number or a non-empty list of them, got {value!r}",
                          "e.g. 0.001 or [0.0003, 0.001, 0.003]")
    return grid


def validate(params: dict) -> None:
    """Check the whole file up front, so a typo fails before hours of training, not after."""
    if not isinstance(params, dict):
        raise ParamsError("(top level)", "not a mapping", "start from the params.yaml in the repository")
    _unknown_keys(params)
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
        _validate_regime(params, regime)


def _positive_numbers(params: dict, key: str, fix: str) -> list:
    values = _require(params, key, list, fix)
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values):
        raise ParamsError(key, f"expected a non-empty list of positive numbers, got {values!r}", fix)
    return values


def _choice(params: dict, key: str, options: tuple[str, ...]) -> str:
    value = _require(params, key, str, f"use one of {list(options)}")
    if value not in options:
        raise ParamsError(key, f"unknown value {value!r}", f"use one of {list(options)}")
    return value


def _validate_regime(params: dict, regime: str) -> None:
    key = f"regimes.{regime}"
    if regime == "linear":
        _positive_numbers(params, f"{key}.C", "list inverse regularisation strengths, e.g. [0.01, 0.1, 1, 10]")
        return
    _learning_rates(params, f"{key}.lr")
    if regime in ("finetune", "chainthaw", "depth"):
        _choice(params, f"{key}.batchnorm", ("frozen", "train"))
    if regime == "scratch":
        _number(params, f"{key}.budget_multiplier", (int, float), at_least=1,
                fix="use 1 or more: below 1 scratch trains less than fine-tuning (He et al. 2019: it needs longer)")
    elif regime == "finetune":
        _number(params, f"{key}.backbone_lr_scale", (int, float), "e.g. 1 (same as the head) or 0.1", above=0)
    elif regime == "frozen":
        hidden = _require(params, f"{key}.hidden", list, "list hidden layer widths, e.g. [256, 256]")
        if not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden):
            raise ParamsError(f"{key}.hidden", f"expected positive whole numbers, got {hidden!r}", "e.g. [256, 256]")
        dropout = _number(params, f"{key}.dropout", (int, float), "a fraction, e.g. 0.2", at_least=0)
        if dropout >= 1:
            raise ParamsError(f"{key}.dropout", f"must be below 1, got {dropout}", "a fraction, e.g. 0.2")
    elif regime == "chainthaw":
        _number(params, f"{key}.phase_budget", (int, float), "a fraction of the fine-tuning budget, e.g. 0.3", above=0)
        _number(params, f"{key}.phase_patience", int, "evaluations without a lower validation loss, e.g. 3", at_least=1)
    elif regime == "depth":
        _positive_ints(params, f"{key}.k", "list how many pretrained layer groups to keep, e.g. [1, 3, 5]")
        _choice(params, f"{key}.transferred", ("frozen", "finetune"))


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
