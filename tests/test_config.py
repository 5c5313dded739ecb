import copy
import sys
from pathlib import Path

import pytest
import yaml

from conftest import make_study_repo, run, tiny_params
from pretraining_gap import config
from pretraining_gap.grid import ParamsError

DEFAULT = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())


def broken(edit):
    p = copy.deepcopy(DEFAULT)
    edit(p)
    return p


def test_the_shipped_params_are_valid():
    study = DEFAULT["study"]
    grid = len(study["regimes"]) * len(study["sizes"]) * len(study["seeds"])
    assert len(config.validate(DEFAULT).cells()) == grid and "all" in study["sizes"]


def test_the_protocol_chosen_on_digits_validation_is_locked():
    """The defaults docs/choices.md measured: change one only with a new measurement there (and the README's table
    rerun). Every gradient arm, study-all's too, starts with 4 candidates; 3 seeds answer by default."""
    p = config.validate(DEFAULT)
    assert p.training.ladder == [2, 4, 8] and p.training.reduction_factor == 3
    assert p.training.climb_patience == 1 and p.training.min_gain == 0.005
    assert {
        name: p.regime(name).candidates for name, r in config.REGIMES.items() if r.gradient
    } == dict.fromkeys(("scratch", "frozen", "finetune", "chainthaw", "depth"), 4)
    assert p.datasets["digits"].val_per_class == 40 and p.study.seeds == [1, 2, 3]


def test_depth_cells_come_once_per_k():
    p = config.validate(broken(lambda p: p["study"].update(regimes=["finetune", "depth"])))
    depths = [cell.depth for cell in p.cells()]
    per_regime = len(DEFAULT["study"]["sizes"]) * len(DEFAULT["study"]["seeds"])
    assert depths.count(None) == per_regime
    assert sorted({d for d in depths if d is not None}) == DEFAULT["regimes"]["depth"]["k"]
    assert len(depths) == per_regime * (1 + len(DEFAULT["regimes"]["depth"]["k"]))


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda p: p["study"].update(regimes=["scratch", "transformer"]), "study.regimes"),
        (lambda p: p["study"].update(datasets=["cifar"]), "study.datasets"),
        (lambda p: p["study"].update(sizes=[1, 0]), "study.sizes"),
        (lambda p: p["datasets"]["digits"].update(source="mnist"), "datasets.digits.source"),
        (lambda p: p["datasets"]["digits"].update(split_seed=-1), "datasets.digits.split_seed"),
        (lambda p: p["datasets"]["digits"].update(source="imagefolder"), "datasets.digits.path"),
        (
            lambda p: p["datasets"]["digits"].update(source="imagefolder", path="no/such/folder"),
            "datasets.digits.path",
        ),
        (
            lambda p: p["datasets"]["digits"].update(source="imagefolder", path=".", test_path="no/such"),
            "datasets.digits.test_path",
        ),
        (lambda p: p["datasets"]["digits"].update(source="torchvision", root="."), "datasets.digits.name"),
        (
            lambda p: p["datasets"]["digits"].update(source="torchvision", name="DTD", root="no/such/folder"),
            "datasets.digits.root",
        ),
        (
            lambda p: p["datasets"]["digits"].update(
                source="torchvision", name="DTD", root=".", download="yes"
            ),
            "datasets.digits.download",
        ),
        (
            lambda p: p["backbones"]["efficientnet_lite0"].update(weights="imagenet"),
            "backbones.efficientnet_lite0.weights",
        ),
        (
            lambda p: p["backbones"]["efficientnet_lite0"].update(weights="no/such.pth"),
            "backbones.efficientnet_lite0.weights",
        ),
        (lambda p: p["training"].pop("ladder"), "training.ladder"),
        (lambda p: p["training"].update(ladder=[1, 0.5]), "training.ladder"),
        (lambda p: p["training"].update(reduction_factor=1), "training.reduction_factor"),
        (lambda p: p["regimes"]["finetune"].update(lr=[0.001]), "regimes.finetune"),
        (lambda p: p["regimes"]["finetune"].update(lr="fast"), "regimes.finetune.lr"),
        (lambda p: p["regimes"]["finetune"].update(batchnorm="fixed"), "regimes.finetune.batchnorm"),
        (lambda p: p["training"].update(batch_size=1), "training.batch_size"),
        (lambda p: p["training"].update(min_steps=500), "training.min_steps"),
        (lambda p: p["training"].update(epochs=1.5), "training.epochs"),
        (lambda p: p["study"].update(seeds=[1, 2, 1]), "study.seeds"),
        (lambda p: p.update(study=None), "study"),
    ],
)
def test_a_bad_value_names_its_key_and_the_fix(edit, key):
    with pytest.raises(ParamsError, match="Fix:") as error:
        config.validate(broken(edit))
    assert error.value.key == key


@pytest.mark.parametrize(
    "edit, key, suggestion",
    [
        (lambda p: p.update(trainig=p.pop("training")), "trainig", "did you mean 'training'?"),
        (lambda p: p["regimes"]["finetune"].update(lr_=0.01), "regimes.finetune.lr_", "did you mean 'lr'?"),
        (
            lambda p: p["datasets"]["digits"].update(resolutoin=32),
            "datasets.digits.resolutoin",
            "did you mean 'resolution'?",
        ),
        (lambda p: p["study"].update(seed=[1]), "study.seed", "did you mean 'seeds'?"),
        (
            lambda p: p["regimes"].update(finetun=p["regimes"]["finetune"]),
            "regimes.finetun",
            "did you mean 'finetune'?",
        ),
        (
            lambda p: p["backbones"]["efficientnet_lite0"].update(wieghts="hub"),
            "backbones.efficientnet_lite0.wieghts",
            "did you mean 'weights'?",
        ),
    ],
)
def test_an_unknown_key_is_named_with_the_closest_known_one(edit, key, suggestion):
    with pytest.raises(ParamsError, match="unknown key") as error:
        config.validate(broken(edit))
    assert error.value.key == key and suggestion in str(error.value)


def test_a_block_given_as_a_value_is_rejected():
    with pytest.raises(ParamsError, match="expected a block") as error:
        config.validate(broken(lambda p: p["regimes"].update(scratch=None)))
    assert error.value.key == "regimes.scratch"


def test_ray_as_backend_without_ray_installed_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what find_spec reports where ray is not installed
    with pytest.raises(ParamsError, match=r"\.\[cluster\]") as error:
        config.validate(broken(lambda p: p.update(execution={"backend": "ray"})))
    assert error.value.key == "execution.backend"


@pytest.mark.parametrize("lr", [0.001, [0.0003, 0.001, 0.003]])
def test_a_learning_rate_is_a_number_or_a_grid(lr):
    params = config.validate(broken(lambda p: p["regimes"]["chainthaw"].update(lr=lr)))
    assert params.regime("chainthaw").lr == (lr if isinstance(lr, list) else [lr])


@pytest.mark.parametrize("lr", [[], [0.001, -1], 0, [True]])
def test_a_bad_learning_rate_grid_names_its_key(lr):
    with pytest.raises(ParamsError) as error:
        config.validate(broken(lambda p: p["regimes"]["finetune"].update(lr=lr)))
    assert error.value.key == "regimes.finetune.lr"


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda p: p.update(trainig=p.pop("training")),
            "trainig: unknown key. Fix: did you mean 'training'?",
        ),
        (
            lambda p: p["regimes"]["finetune"].update(lr_=0.01),
            "regimes.finetune.lr_: unknown key. Fix: did you mean 'lr'?",
        ),
    ],
)
def test_dvc_repro_with_a_typo_stops_in_the_first_stage_with_the_message(tmp_path, edit, message):
    p = tiny_params(tmp_path / "never-read.safetensors")
    edit(p)
    repo = make_study_repo(tmp_path / "repo", p)
    done = run(["dvc", "repro"], repo, check=False)
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr  # one message, not a stack
    assert done.stdout.count("Running stage") == 1 and "Running stage 'fingerprint'" in done.stdout
    assert not (repo / "data").exists() and not (repo / "results").exists()


def test_a_torchvision_block_that_may_download_needs_no_folder_yet():
    config.validate(
        broken(
            lambda p: p["datasets"]["digits"].update(
                source="torchvision", name="Flowers102", root="data/not-yet-there", download=True
            )
        )
    )


@pytest.mark.parametrize("name, suggestion", [("flowers.v2", "flowers_v2"), ("my flowers", "my_flowers")])
def test_a_name_dvc_cannot_address_is_refused_with_a_rename(name, suggestion):
    def edit(p):
        p["datasets"][name] = p["datasets"].pop("digits")
        p["study"]["datasets"] = [name]

    with pytest.raises(ParamsError, match=f"cannot address.*Fix: rename it to '{suggestion}'") as error:
        config.validate(broken(edit))
    assert error.value.key == f"datasets.{name}"


def test_seed_0_is_a_seed():
    assert [c.seed for c in config.validate(broken(lambda p: p["study"].update(seeds=[0]))).cells()][:1] == [
        0
    ]


def test_a_batch_too_small_for_batch_norm_says_why():
    with pytest.raises(ParamsError, match="batch norm needs 2"):
        config.validate(broken(lambda p: p["training"].update(batch_size=1)))


def test_every_problem_is_listed_one_per_line():
    def edit(p):
        p["training"]["epochs"] = "many"
        p["regimes"]["scratch"]["lr"] = -1

    with pytest.raises(ParamsError) as error:
        config.validate(broken(edit))
    lines = str(error.value).splitlines()
    assert len(lines) == 2 and all(line.startswith("params.yaml: ") and "Fix:" in line for line in lines)
    assert {key for key, _, _ in error.value.problems} == {"training.epochs", "regimes.scratch.lr"}


def test_the_library_receives_typed_blocks():
    p = config.validate(DEFAULT)
    finetune = p.regime("finetune")
    assert isinstance(finetune, config.Finetune) and finetune.lr == [0.0003, 0.001]
    assert isinstance(p.datasets["digits"], config.SklearnDigits)
    assert set(config.REGIMES) >= {"scratch", "linear", "frozen", "finetune", "chainthaw", "depth"}
    assert not config.REGIMES["scratch"].pretrained and config.REGIMES["linear"].on_features
