"""params.yaml, typed once at the edge: a pydantic schema, and mistakes named by key with a fix that works.

Every block is a model with `extra="forbid"` (a typo is an error, not a silently ignored key) and strict types
(YAML's `yes` is not a number, "0.001" is not a float). A regime is one entry of the registry `REGIMES`: its
options block, its runner (named, imported only where cells train), its result fields and its traits (pretrained
or not, trained on cached features or not, its label and colour in the figures); the known regimes, the regimes:
block, the grid, the results, MLflow's params and the plots derive from it. What only the files can tell (class
sizes, images, weights that fit) is checked by `prepare`, before any training.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    model_validator,
)

from .grid import ALL, Cell, ParamsError, cells

# A dataset or backbone name becomes part of DVC stage names (`train@digits-lite0`) and of dotted params keys
# (`datasets.<name>`): dots and spaces would break both.
NAME = re.compile(r"[A-Za-z0-9_-]+")
Positive = Annotated[int, Field(ge=1)]
Seed = Annotated[int, Field(ge=0)]


def _size(value: int | str) -> int | str:
    if value != ALL and (isinstance(value, str) or value < 1):
        raise ValueError(
            f"{value!r} is not a size: give a whole number of examples per class, 1 or more, or all"
        )
    return value


Size = Annotated[int | str, AfterValidator(_size)]  # examples per class, or "all"


def _as_list(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


# A learning rate, or a list of them: each value is a candidate of the cell's selection (training/selection.py).
LearningRates = Annotated[list[Annotated[float, Field(gt=0)]], BeforeValidator(_as_list), Field(min_length=1)]


class Block(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _unique(values: list, key: str) -> list:
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise _Invalid(key, f"repeats {', '.join(repeated)}", "list each value once")
    return values


class Study(Block):
    name: str = Field(description="the MLflow experiment's name", examples=["pretraining-gap"])
    datasets: list[str] = Field(
        min_length=1, description="names of blocks under datasets:", examples=[["digits"]]
    )
    backbones: list[str] = Field(
        min_length=1, description="names of blocks under backbones:", examples=[["efficientnet_lite0"]]
    )
    regimes: list[str] = Field(
        min_length=1, description="regimes to train", examples=[["scratch", "finetune"]]
    )
    sizes: list[Size] = Field(
        min_length=1,
        description="training examples per class; all: every pool image of every class",
        examples=[[1, 2, 5, 10, 25, 50, "all"]],
    )
    seeds: list[Seed] = Field(
        min_length=1, description="independent repeats (subset draw, init, data order)", examples=[[1, 2, 3]]
    )

    @model_validator(mode="after")
    def _no_repeats(self) -> Study:
        for key in ("datasets", "backbones", "regimes", "sizes", "seeds"):
            _unique(getattr(self, key), f"study.{key}")
        return self


class DatasetBlock(Block):
    resolution: Positive = Field(
        description="pixels (square); images are resized once, in prepare", examples=[32]
    )
    val_per_class: Positive = Field(
        description="validation images per class (choices, early stopping)", examples=[20]
    )
    test_per_class: Positive = Field(
        description="test images per class (the reported accuracy only)", examples=[50]
    )
    split_seed: Seed = Field(0, description="fixes the pool / validation / test split", examples=[0])
    duplicates: Literal["group", "drop", "keep"] = Field(
        "group",
        description="exact and near-duplicate images (resized, recompressed copies), found before the split: "
        "group keeps each exact copy once and each group of near-duplicates within one part; drop keeps one image "
        "per group; keep splits every image on its own, so a copy of a test image may train (docs/duplicates.md)",
        examples=["group"],
    )


class SklearnDigits(DatasetBlock):
    source: Literal["sklearn_digits"]


class ImageFolder(DatasetBlock):
    source: Literal["imagefolder"]
    path: Annotated[Path, Field(strict=False)] = Field(
        description="a folder holding one sub-folder of images per class", examples=["data/raw/flowers17"]
    )
    test_path: Annotated[Path | None, Field(strict=False)] = Field(
        None, description="a folder with the same class sub-folders: the test set", examples=["data/raw/test"]
    )


class Torchvision(DatasetBlock):
    source: Literal["torchvision"]
    name: str = Field(description="a torchvision.datasets class", examples=["Flowers102"])
    root: Annotated[Path, Field(strict=False)] = Field(
        description="the folder torchvision keeps the dataset in", examples=["data/raw/torchvision"]
    )
    download: bool = Field(
        False, description="let torchvision download it into root (a network)", examples=[True]
    )


Dataset = Annotated[SklearnDigits | ImageFolder | Torchvision, Field(discriminator="source")]
SOURCES = ("sklearn_digits", "imagefolder", "torchvision")


class Backbone(Block):
    model: str = Field(description="a timm architecture name", examples=["tf_efficientnet_lite0"])
    weights: str = Field(
        description="package (offline EfficientNet-Lite0/1/2), hub, or the path of a .safetensors / .pth file",
        examples=["package"],
    )
    feature_resolution: Positive | None = Field(
        None,
        description="pixels the frozen features are computed at (images resized once); "
        "unset: the architecture's own ImageNet input size",
        examples=[224],
    )

    @property
    def weights_file(self) -> Path | None:
        return None if self.weights in ("package", "hub") else Path(self.weights)


class Training(Block):
    """Shared by the gradient-trained regimes: the base budget, the ladder their candidates climb, the optimiser."""

    batch_size: int = Field(
        ge=2, description="images per step (the whole subset when smaller); batch norm needs 2", examples=[32]
    )
    epochs: Positive = Field(description="budget: epochs over the subset", examples=[15])
    min_steps: Positive = Field(description="optimisation steps at least", examples=[100])
    max_steps: Positive = Field(description="optimisation steps at most", examples=[250])
    ladder: list[Annotated[float, Field(gt=0)]] = Field(
        min_length=1,
        description="the rungs every gradient arm's candidates climb, as multiples of the base budget, ascending "
        "(successive halving, training/selection.py)",
        examples=[[0.5, 1, 2, 4, 8]],
    )
    reduction_factor: int = Field(
        ge=2,
        description="successive halving's reduction factor: at each rung the best 1/this of the candidates still "
        "going (rounded up) train on",
        examples=[3],
    )
    climb_patience: Positive = Field(
        description="rungs without a gain in the best validation accuracy before an arm stops climbing the ladder "
        "(1: it stops at the first rung that does not gain)",
        examples=[1],
    )
    min_gain: float = Field(
        ge=0,
        lt=1,
        description="the gain in the best validation accuracy (a fraction) that counts as gaining on the ladder: "
        "a rung that gains less is a rung without a gain",
        examples=[0.005],
    )
    weight_decay: float = Field(ge=0, description="AdamW's decoupled weight decay", examples=[0.05])
    augment_shift: float = Field(
        ge=0, le=0.5, description="random translation, fraction of the side", examples=[0.1]
    )
    fused_members: Positive = Field(
        description="at most this many candidates of a cell run as one fused model (horizontal fusion); "
        "1 runs them one after another",
        examples=[4],
    )

    @model_validator(mode="after")
    def _steps_ordered(self) -> Training:
        if self.ladder != sorted(set(self.ladder)):
            raise _Invalid(
                "training.ladder",
                f"{_yaml(self.ladder)} is not ascending without repeats",
                f"list the rungs from low to high, e.g. {_yaml(sorted(set(self.ladder)))}",
            )
        if self.min_steps > self.max_steps:
            raise _Invalid(
                "training.min_steps",
                f"{self.min_steps} is above max_steps {self.max_steps}",
                "lower min_steps",
            )
        return self


# The regime registry: name -> its params model, whose class attributes are the rest of its entry (runner, result
# fields, traits, label, colour, marker). Everything else (study.regimes' names, the regimes: block, the grid, the
# result fields, MLflow's params, the figures) derives from it; docs/adding-a-regime.md adds one.
REGIMES: dict[str, type[Regime]] = {}


def runner_modules() -> tuple[str, ...]:
    """The modules every registered regime names (`Regime.modules`): code reached by name, not by import."""
    return tuple(dict.fromkeys(module for regime in REGIMES.values() for module in regime.modules()))


def register(name: str) -> Callable[[type[Regime]], type[Regime]]:
    """Class decorator: the params model joins the registry as `name` (its key under study.regimes and regimes:)."""

    def add(model: type[Regime]) -> type[Regime]:
        REGIMES[name] = model
        return model

    return add


class Regime(Block):
    """A transfer regime's options (its fields), and the rest of its registry entry as class attributes."""

    # "module:function" training one cell: CellInputs -> (Outcome, trained model); imported only where a cell
    # trains, so the schema loads without torch
    runner: ClassVar[str]
    # "module:function" failing before training, with a ParamsError, when the regime asks a backbone for what it
    # does not have: (options, backbone name, its timm model) -> None; None: nothing to check
    backbone_check: ClassVar[str | None] = None
    # the result fields its cell adds, chosen on validation: name -> (type, meaning); results.Outcome holds them
    chosen: ClassVar[dict[str, tuple[type, str]]] = {"lr": (float, "the learning rate chosen on validation")}
    pretrained: ClassVar[bool] = True  # starts from ImageNet weights (its gap is measured against scratch)
    on_features: ClassVar[bool] = False  # trains on features cached once per dataset x backbone
    gradient: ClassVar[bool] = True  # trained by gradient steps with the shared `training:` block
    summary: ClassVar[str]  # its label: one line on what it trains
    colour: ClassVar[str]  # a matplotlib colour, its line in the figures
    marker: ClassVar[str]  # a matplotlib marker

    # the options that are grids: numbers the edge rule extends one step past an edge (training/selection.py); the
    # other options (a normalisation, batch norm's mode, a dropout fraction) are families, tried as listed
    grids: ClassVar[tuple[str, ...]] = ("lr",)

    @classmethod
    def modules(cls) -> tuple[str, ...]:
        """The modules its entry names (runner, backbone check): with what they import, the code its cells run.
        An import walk from the training code cannot see them (they are named, not imported)."""
        return tuple(
            dict.fromkeys(name.partition(":")[0] for name in (cls.runner, cls.backbone_check) if name)
        )

    def candidate_options(self) -> list[dict[str, Any]]:
        """The candidates a cell compares (training/selection.py), each its options: numbers form a grid whose edges
        the procedure may extend, strings a family (e.g. a normalisation). Default: its learning rates."""
        return [{"lr": lr} for lr in self.lr] if "lr" in type(self).model_fields else [{}]

    @property
    def candidates(self) -> int:
        """Candidates a cell starts with (before any extension past a grid's edge)."""
        return len(self.candidate_options())

    @property
    def depths(self) -> tuple[int, ...]:
        """Values that give the regime one cell each per size and seed (depth's k); () for one cell."""
        return ()


@register("scratch")
class Scratch(Regime):
    runner = "pretraining_gap.training.scratch:scratch"
    backbone_check = "pretraining_gap.training.scratch:check_backbone"
    chosen = {
        "lr": (float, "the learning rate chosen on validation"),
        "norm": (str, "the normalisation chosen on validation: batch, or group (GroupNorm)"),
    }
    pretrained: ClassVar[bool] = False
    colour, marker, summary = "tab:grey", "o", "random init, every layer trained"
    lr: LearningRates | None = Field(
        None,
        description="AdamW peak learning rate(s) with batch norm; unset: GroupNorm only",
        examples=[0.01],
    )
    group_norm_lr: LearningRates | None = Field(
        None,
        description="rate(s) tried with GroupNorm (8 groups) in place of every batch norm, beside the batch-norm "
        "rates: the normalisation is chosen per cell on validation. Unset: batch norm only",
        examples=[0.001],
    )

    @model_validator(mode="after")
    def _some_rate(self) -> Scratch:
        if not self.lr and not self.group_norm_lr:
            raise _Invalid("regimes.scratch.lr", "missing", "add lr: [0.01, 0.03, 0.1] (batch norm's rates)")
        return self

    def candidate_options(self) -> list[dict[str, Any]]:
        return [{"norm": "batch", "lr": lr} for lr in self.lr or []] + [
            {"norm": "group", "lr": lr} for lr in self.group_norm_lr or []
        ]


@register("pixels")
class Pixels(Regime):
    runner = "pretraining_gap.training.probes:pixels"
    chosen = {
        "C": (float, "the inverse regularisation strength chosen on validation"),
        "classifier": (str, "the pixel baseline chosen on validation: nearest_neighbour, logistic, rbf_svm"),
        "gamma": (float, "the chosen RBF SVM's gamma, as a multiple of scikit-learn's 'scale'"),
    }
    pretrained: ClassVar[bool] = False
    gradient: ClassVar[bool] = False
    colour, marker, summary = "tab:brown", "X", "1-NN, logistic regression or an RBF SVM on raw pixels"
    resolution: Positive = Field(
        description="pixels per side the images are reduced to (tiny images: Torralba et al. 2008)",
        examples=[32],
    )
    C: list[Annotated[float, Field(gt=0)]] = Field(
        min_length=1,
        description="C grid of the logistic regression and the SVMs",
        examples=[[0.1, 1, 10, 100]],
    )
    gamma: list[Annotated[float, Field(gt=0)]] = Field(
        min_length=1,
        description="RBF SVM gammas, as multiples of scikit-learn's 'scale'",
        examples=[[0.3, 1, 3]],
    )


@register("linear")
class Linear(Regime):
    runner = "pretraining_gap.training.probes:linear"
    chosen = {"C": (float, "the inverse regularisation strength chosen on validation")}
    on_features: ClassVar[bool] = True
    gradient: ClassVar[bool] = False
    colour, marker, summary = "tab:blue", "s", "logistic regression on cached frozen features"
    C: list[Annotated[float, Field(gt=0)]] = Field(
        min_length=1, description="inverse L2 strengths, chosen on validation", examples=[[0.01, 0.1, 1, 10]]
    )


@register("frozen")
class Frozen(Regime):
    runner = "pretraining_gap.training.frozen:frozen"
    chosen = {
        "lr": (float, "the learning rate chosen on validation"),
        "dropout": (float, "the dropout fraction chosen on validation"),
    }
    on_features: ClassVar[bool] = True
    colour, marker, summary = "tab:green", "^", "dense head on cached frozen features"
    lr: LearningRates = Field(description="AdamW peak learning rate(s)", examples=[[0.0003, 0.001]])
    hidden: list[Positive] = Field(description="hidden layer widths", examples=[[256, 256]])
    dropout: Annotated[list[Annotated[float, Field(ge=0, lt=1)]], BeforeValidator(_as_list)] = Field(
        min_length=1,
        description="dropout fraction(s) after each hidden layer; a list: candidates beside the rates",
        examples=[[0.2, 0.5]],
    )

    def candidate_options(self) -> list[dict[str, Any]]:
        return [{"dropout": d, "lr": lr} for d in self.dropout for lr in self.lr]


# frozen keeps the ImageNet statistics, train re-estimates them; a list: both are candidates
BatchNorms = Annotated[list[Literal["frozen", "train"]], BeforeValidator(_as_list), Field(min_length=1)]
CHOSEN_BATCHNORM = {
    "lr": (float, "the learning rate chosen on validation"),
    "batchnorm": (str, "the batch-norm statistics chosen on validation: frozen (ImageNet's) or train"),
}


def _batchnorm_options(cfg: Regime) -> list[dict[str, Any]]:
    return [{"batchnorm": b, "lr": lr} for b in cfg.batchnorm for lr in cfg.lr]


@register("finetune")
class Finetune(Regime):
    runner = "pretraining_gap.training.finetune:finetune"
    chosen = CHOSEN_BATCHNORM
    colour, marker, summary = "tab:orange", "D", "every layer trained from the pretrained weights"
    lr: LearningRates = Field(description="AdamW peak learning rate(s)", examples=[0.001])
    backbone_lr_scale: float = Field(
        gt=0, description="backbone lr = lr x this; the head trains at lr", examples=[1]
    )
    batchnorm: BatchNorms = Field(
        description="frozen keeps the ImageNet statistics, train re-estimates them",
        examples=[["frozen", "train"]],
    )

    candidate_options = _batchnorm_options


@register("chainthaw")
class Chainthaw(Regime):
    runner = "pretraining_gap.training.chainthaw:chainthaw"
    chosen = CHOSEN_BATCHNORM
    colour, marker, summary = (
        "tab:red",
        "v",
        "new layers, each pretrained group alone, then all (Felbo et al.)",
    )
    lr: LearningRates = Field(description="AdamW peak learning rate(s), every phase", examples=[0.001])
    batchnorm: BatchNorms = Field(description="as finetune's", examples=[["frozen", "train"]])
    phase_budget: float = Field(
        gt=0, description="steps per phase before all layers, fraction of the base budget", examples=[0.25]
    )
    phase_evaluations: Positive = Field(5, description="validation passes per phase", examples=[5])
    phase_patience: Positive = Field(description="evaluations without a lower validation loss", examples=[3])

    candidate_options = _batchnorm_options


@register("depth")
class Depth(Regime):
    runner = "pretraining_gap.training.depth:depth"
    backbone_check = "pretraining_gap.training.depth:check_backbone"
    chosen = {
        "lr": (float, "the learning rate of the transferred groups chosen on validation"),
        "lr_new": (float, "the learning rate of the re-initialised groups and the head chosen on validation"),
    }
    colour, marker, summary = "tab:purple", "P", "first k layer groups pretrained, the rest re-initialised"
    grids = ("lr", "lr_new")
    k: list[Positive] = Field(min_length=1, description="pretrained layer groups kept", examples=[[1, 3, 5]])
    transferred: Literal["frozen", "finetune"] = Field(description="AnB (frozen) or AnB+ (finetune)")
    lr: LearningRates = Field(
        description="AdamW peak learning rate(s) of the transferred groups", examples=[0.001]
    )
    lr_new: LearningRates = Field(
        description="AdamW peak learning rate(s) of the re-initialised groups and the head",
        examples=[[0.003, 0.01]],
    )
    batchnorm: Literal["frozen", "train"] = Field(
        description="for the kept groups; new groups train theirs", examples=["frozen"]
    )

    @model_validator(mode="after")
    def _unique_k(self) -> Depth:
        _unique(self.k, "regimes.depth.k")
        return self

    def candidate_options(self) -> list[dict[str, Any]]:
        return [{"lr": a, "lr_new": b} for a in self.lr for b in self.lr_new]

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(self.k)


def _regime_blocks(raw: Any) -> Any:
    """The regimes: block, each of its blocks validated by its registered model (the registry may grow after this
    module is imported: a model listing every regime as a field could not)."""
    if not isinstance(raw, dict):
        return raw  # pydantic names the type error
    blocks, problems = {}, []
    for name, block in raw.items():
        if name not in REGIMES:
            problems.append((f"regimes.{name}", "unknown key", _closest(name, REGIMES)))
        elif block is None:  # `scratch:` with nothing indented under it
            problems.append(
                (f"regimes.{name}", "expected a block of keys, got nothing", "indent its keys under it")
            )
        else:
            try:
                blocks[name] = REGIMES[name].model_validate(block)
            except ValidationError as error:
                problems += _explain_all(error, REGIMES[name], ("regimes", name))
    if problems:
        raise _Invalid(*problems[0], *problems[1:])
    return blocks


class Execution(Block):
    """Where the cells train; never part of a cell's identity (a study started locally can finish on Ray)."""

    backend: Literal["local", "ray"] = Field(
        "local", description="local: worker processes on this machine; ray: Ray tasks", examples=["ray"]
    )
    address: str = Field(
        "",
        description="the Ray cluster to join (auto, ray://host:port); empty: a local instance; RAY_ADDRESS overrides",
        examples=["auto"],
    )
    cpus: float = Field(1, gt=0, description="CPUs per cell (Ray)", examples=[1])
    gpus: float = Field(
        0, ge=0, description="GPUs per cell (Ray); a fraction lets cells share one", examples=[0.25]
    )
    retries: int = Field(
        2, ge=0, description="times a cell whose worker or node is lost runs again", examples=[2]
    )

    @model_validator(mode="after")
    def _ray_installed(self) -> Execution:
        if self.backend == "ray" and importlib.util.find_spec("ray") is None:
            raise _Invalid(
                "execution.backend",
                "ray is not installed in this environment",
                "pip install -e '.[cluster]' (Ray, README: More than one machine), or backend: local",
            )
        return self


class Analysis(Block):
    """How the answer is read off the cells (the aggregate and report stages; no cell retrains when it changes)."""

    margin: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="accuracy, a fraction (0.01 = 1 point): a gap within it no longer matters (the equivalence "
        "margin, and the crossover's 'within')",
        examples=[0.01],
    )
    cap: Positive = Field(
        10_000, description="examples per class: a crossover is not extrapolated beyond it", examples=[10000]
    )
    bootstrap: int = Field(
        1000,
        ge=0,
        description="bootstrap replicates over seeds for the intervals of fits, crossovers and D_T (0: none)",
        examples=[1000],
    )
    level: float = Field(
        0.95,
        gt=0.5,
        lt=1,
        description="confidence of every interval; the tests run at 1 - level",
        examples=[0.95],
    )


class Params(Block):
    study: Study = Field(description="the grid: datasets x backbones x regimes x sizes x seeds")
    datasets: dict[str, Dataset] = Field(description="one block per dataset, named")
    backbones: dict[str, Backbone] = Field(description="one block per backbone, named")
    training: Training = Field(description="the step budget, the selection ladder and optimiser")
    regimes: Annotated[dict[str, SerializeAsAny[Regime]], BeforeValidator(_regime_blocks)] = Field(
        description="one block of options per regime (config.REGIMES); a regime listed in study.regimes needs its"
        " block"
    )
    analysis: Analysis = Field(description="the margin, cap, bootstrap and confidence of the answer")
    execution: Execution = Field(Execution(), description="where the cells train")

    @model_validator(mode="after")
    def _names_resolve(self) -> Params:
        for group in ("datasets", "backbones"):
            for name in getattr(self, group):
                if not NAME.fullmatch(name):
                    raise _Invalid(
                        f"{group}.{name}",
                        "a name DVC cannot address (stage names and dotted params keys)",
                        f"rename it to {re.sub(r'[^A-Za-z0-9_-]+', '_', name).strip('_') or 'data'!r}",
                    )
        for group in ("datasets", "backbones", "regimes"):
            defined = list(getattr(self, group))
            for name in getattr(self.study, group):
                if group == "regimes" and name not in REGIMES:
                    raise _Invalid(
                        "study.regimes", f"unknown regime {name!r}", _closest(name, REGIMES, "use one of")
                    )
                if name not in defined:
                    raise _Invalid(
                        f"study.{group}",
                        f"{name!r} has no block under '{group}:'",
                        f"add '{group}.{name}:' or remove {name!r}; defined: {defined}",
                    )
        return self

    @model_validator(mode="after")
    def _same_candidates(self) -> Params:
        """Every gradient arm of the study starts with the same number of candidates (training/selection.py)."""
        counts = {
            name: self.regimes[name].candidates for name in self.study.regimes if REGIMES[name].gradient
        }
        if len(set(counts.values())) > 1:
            most = max(set(counts.values()), key=list(counts.values()).count)
            odd = next(name for name, n in counts.items() if n != most)
            raise _Invalid(
                f"regimes.{odd}",
                f"{counts[odd]} candidates, while the other gradient arms start with {most}: "
                + ", ".join(f"{name} {n}" for name, n in counts.items()),
                f"give regimes.{odd} {most} candidates (its options' combinations: e.g. its lr list), so every arm "
                "is tuned alike",
            )
        return self

    def regime(self, name: str) -> Regime:
        return self.regimes[name]

    def cells(self, dataset: str | None = None, backbone: str | None = None) -> list[Cell]:
        """The study grid, optionally narrowed to one dataset and backbone."""
        study = self.study
        return cells(
            [d for d in study.datasets if dataset in (None, d)],
            [b for b in study.backbones if backbone in (None, b)],
            study.regimes,
            study.sizes,
            study.seeds,
            {name: self.regimes[name].depths for name in study.regimes},
        )

    def check_files(self) -> None:
        """The paths the study's datasets and backbones name exist (relative to params.yaml's folder)."""
        for name in self.study.datasets:
            block = self.datasets[name]
            if isinstance(block, ImageFolder):
                for key in ("path", "test_path"):
                    folder = getattr(block, key)
                    if folder is not None and not folder.is_dir():
                        raise _not_found(
                            f"datasets.{name}.{key}",
                            "folder",
                            folder,
                            "give the folder holding one sub-folder per class (relative to params.yaml)",
                        )
            if isinstance(block, Torchvision) and not block.download and not block.root.is_dir():
                raise _not_found(
                    f"datasets.{name}.root",
                    "folder",
                    block.root,
                    "set download: true to fetch the dataset there, or point root at an existing copy",
                )
        for name in self.study.backbones:
            weights = self.backbones[name].weights_file
            if weights is None:
                continue
            if weights.suffix not in (".safetensors", ".pth", ".pt", ".bin"):
                raise ParamsError(
                    f"backbones.{name}.weights",
                    f"{str(weights)!r} is neither package, hub nor a weights file",
                    "use package, hub, or the path of a .safetensors / .pth file",
                )
            if not weights.is_file():
                raise _not_found(
                    f"backbones.{name}.weights",
                    "weights file",
                    weights,
                    "give the path of an existing .safetensors / .pth file (relative to params.yaml)",
                )


def _not_found(key: str, kind: str, path: Path, fix: str) -> ParamsError:
    """A path params.yaml names is missing. In the copy of the workspace that `dvc exp run --temp` / `--queue` runs
    in (<workspace>/.dvc/tmp/exps/...), a path the workspace has is missing because git does not track it: say so."""
    here = Path.cwd().resolve()
    workspace = Path(*here.parts[: here.parts.index(".dvc")]) if ".dvc" in here.parts else here
    if here != workspace and not path.is_absolute() and (workspace / path).exists():
        return ParamsError(
            key,
            f"{kind} {path} is in the workspace but not in this experiment's copy of it ({here}): "
            "`dvc exp run --temp` and `--queue` run in a copy that holds only the files git and DVC track, "
            "not untracked or git-ignored ones",
            f"track it with `dvc add {path}` and commit its .dvc file, give its absolute path "
            f"({workspace / path}), or run in the workspace (`dvc exp run` without --temp / --queue, `dvc repro`)",
        )
    return ParamsError(key, f"{kind} {path} not found", fix)


class _Invalid(ValueError):
    """A check's problems, each with its own key and fix (pydantic would file them under the block checked)."""

    def __init__(self, key: str, problem: str, fix: str, *more: tuple[str, str, str]):
        super().__init__(problem)
        self.problems = [(key, problem, fix), *more]


def _closest(name: str, known, lead: str = "known") -> str:
    close = difflib.get_close_matches(str(name), sorted(known), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}{lead} {sorted(known)}" if lead != "known" else f"{hint}known keys here: {sorted(known)}"


def _unwrap(node: Any) -> Any:
    while typing.get_origin(node) is Annotated:
        node = typing.get_args(node)[0]
    if typing.get_origin(node) in (Union, types.UnionType):
        options = [a for a in typing.get_args(node) if a is not type(None)]
        return options[0] if len(options) == 1 else tuple(options)
    return node


def _model_at(loc: tuple, root: type[BaseModel]) -> type[BaseModel] | None:
    """The schema model of the block at `loc` (a pydantic error location in `root`, source tags and list items
    included)."""
    node: Any = root
    for part in loc:
        if isinstance(node, tuple):  # a dataset block: its source tag picks the model
            node = next(
                (m for m in node if part in typing.get_args(m.model_fields["source"].annotation)), None
            )
        elif isinstance(node, type) and issubclass(node, BaseModel) and part in node.model_fields:
            node = _unwrap(node.model_fields[part].annotation)
        elif typing.get_origin(node) in (dict, list):
            node = _unwrap(typing.get_args(node)[-1])
        else:
            return None
    return node if isinstance(node, type) and issubclass(node, BaseModel) else None


def _yaml(value: Any) -> str:
    """A value as it is written in params.yaml: true, [1, 2], 0.001."""
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n").removesuffix("\n...")


def _explain_all(
    error: ValidationError, root: type[BaseModel], prefix: tuple = ()
) -> list[tuple[str, str, str]]:
    """(dotted key, problem, fix) of each error of `root`'s validation (a block at `prefix` in params.yaml); an
    unknown key first: it often explains a missing one (`trainig:` for `training:`)."""
    problems = []
    for e in sorted(error.errors(), key=lambda e: e["type"] != "extra_forbidden"):
        invalid = e.get("ctx", {}).get("error")
        problems += invalid.problems if isinstance(invalid, _Invalid) else [_explain(e, root, prefix)]
    return problems


def _explain(error: dict, root: type[BaseModel], prefix: tuple) -> tuple[str, str, str]:
    """(dotted key, problem, fix) of one pydantic error."""
    loc, kind, given = tuple(error["loc"]), error["type"], error.get("input")
    names = [p for p in prefix + loc if not isinstance(p, int) and p not in SOURCES]
    items = [p for p in loc if isinstance(p, int)]
    key = ".".join(map(str, names)) or "(top level)"
    item = f"item {items[-1] + 1}: " if items else ""
    parent = _model_at(tuple(p for p in loc if not isinstance(p, int))[:-1], root) if names else None
    field = parent.model_fields.get(names[-1]) if parent else None
    about = f" ({field.description})" if field and field.description else ""
    example = f"e.g. {_yaml(field.examples[0])}" if field and field.examples else "another value"
    if kind == "extra_forbidden":
        return key, "unknown key", _closest(names[-1], parent.model_fields if parent else {})
    if kind == "missing" and field and field.examples:
        return key, "missing", f"add {names[-1]}: {_yaml(field.examples[0])}{about}"
    if kind == "missing":
        return key, "missing", f"add the {names[-1]}: block{about}, as in the params.yaml of the repository"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return key, f"expected a block of keys, got {given!r}", "indent its keys under it"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        source = given.get("source") if isinstance(given, dict) else given
        return f"{key}.source", f"unknown source {source!r}", f"use one of {list(SOURCES)}"
    if kind == "literal_error":
        return key, f"{item}unknown value {given!r}", f"use {error['ctx']['expected']}"
    if kind == "value_error":
        problem, _, fix = str(error["ctx"]["error"]).partition(": ")
        return key, problem, fix or f"give {example}{about}"
    if kind == "too_short":
        return key, "empty", f"list at least one value, {example}{about}"
    message = error["msg"][0].lower() + error["msg"][1:]
    return key, f"{item}{message}, got {given!r}", f"give {example}{about}"


def validate(raw: Any) -> Params:
    """The typed params; ParamsError lists every problem, one line each, with its key and fix."""
    if not isinstance(raw, dict):
        raise ParamsError(
            "(top level)", "not a mapping of blocks", "start from the params.yaml in the repository"
        )
    try:
        params = Params.model_validate(raw)
    except ValidationError as error:
        problems = _explain_all(error, Params)
        raise ParamsError(*problems[0], *problems[1:]) from None
    params.check_files()
    return params


def load(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ParamsError(str(path), "not found", "run from the study's root folder, where params.yaml lives")
    return validate(yaml.safe_load(path.read_text()))
