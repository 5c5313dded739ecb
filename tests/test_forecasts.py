"""The transferability forecasts against values worked out by hand on tiny examples, LogME's evidence against an
independent route (the Gaussian marginal likelihood, maximised numerically), and the rank check."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from safetensors.torch import save_file
from scipy import optimize, stats

from pretraining_gap import config
from pretraining_gap.analysis import aggregate, forecasts
from pretraining_gap.training import source_outputs


def test_h_score_of_one_feature_by_hand():
    # f = 0, 2, 4, 6 with labels 0, 0, 1, 1: var(f) = (9 + 1 + 1 + 9) / 4 = 5; the class means 1, 1, 5, 5 have
    # variance 4; H = 4 / 5
    assert forecasts.h_score(np.array([[0.0], [2.0], [4.0], [6.0]]), np.array([0, 0, 1, 1])) == pytest.approx(
        0.8
    )


def test_h_score_tells_labels_apart_with_fewer_images_than_dimensions():
    # 20 images in 64 dimensions: the plain covariance is singular and its pseudo-inverse scores any labelling C − 1
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 5)
    features = rng.normal(size=(20, 64)) + np.eye(64)[labels] * 3
    informative = forecasts.h_score(features, labels)
    shuffled = forecasts.h_score(features, rng.permutation(labels))
    assert informative > 1.2 * shuffled  # the pseudo-inverse: both exactly 3


def test_nce_by_hand():
    # hard source labels z = 0, 0, 1, 1 against y = 0, 1, 1, 1: P(y|z=0) = 1/2 each, P(y=1|z=1) = 1;
    # −H(Y|Z) = 1/4 log 1/2 + 1/4 log 1/2 + 1/2 log 1 = −log(2) / 2
    theta = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7]])
    assert forecasts.nce(theta, np.array([0, 1, 1, 1])) == pytest.approx(-math.log(2) / 2)


def test_leep_by_hand():
    # one-hot source outputs: LEEP is (1/N) Σ log P(yᵢ | zᵢ) = (log 1/2 + log 1/2 + 0 + 0) / 4
    hard = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert forecasts.leep(hard, np.array([0, 1, 1, 1])) == pytest.approx(-math.log(2) / 2)
    # uniform source outputs over two images of two classes: P(y | z) = 1/2 everywhere, LEEP = log 1/2
    assert forecasts.leep(np.full((2, 2), 0.5), np.array([0, 1])) == pytest.approx(math.log(0.5))


def test_log_evidence_by_hand():
    # N = 2, D = 1, f = (1, −1), y = (1, 0), α = β = 1: y ~ N(0, f f' + I) with covariance [[2, −1], [−1, 2]]
    # (determinant 3, inverse [[2, 1], [1, 2]] / 3): log p = −log 2π − log(3) / 2 − (2/3) / 2
    f, y = np.array([[1.0], [-1.0]]), np.array([1.0, 0.0])
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    z = u.T @ y
    value = forecasts.log_evidence(1.0, 1.0, s, z, float(y @ y - z @ z), 2, 1)
    assert value == pytest.approx(-math.log(2 * math.pi) - math.log(3) / 2 - 1 / 3)


def _gaussian_evidence(f: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """The same evidence by another route: y ~ N(0, F F' / α + I / β)."""
    covariance = f @ f.T / alpha + np.eye(len(y)) / beta
    return stats.multivariate_normal(np.zeros(len(y)), covariance).logpdf(y)


@pytest.mark.parametrize("n, d", [(30, 5), (8, 20)])  # more images than dimensions, and fewer
def test_logme_is_the_maximum_evidence(n, d):
    rng = np.random.default_rng(n)
    f = rng.normal(size=(n, d))
    labels = np.arange(n) % 3
    f[:, 0] += 2.0 * labels  # one dimension carries the classes
    best = []
    for c in range(3):
        y = (labels == c).astype(float)
        found = optimize.minimize(
            lambda p, y=y: -_gaussian_evidence(f, y, math.exp(p[0]), math.exp(p[1])),
            x0=[0.0, 0.0],
            method="Nelder-Mead",
            options={"xatol": 1e-9, "fatol": 1e-11, "maxiter": 5000},
        )
        best.append(-found.fun / n)
    assert forecasts.logme(f, labels) == pytest.approx(np.mean(best), abs=1e-6)


def test_logme_prefers_features_that_carry_the_labels():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 10)
    noise = rng.normal(size=(40, 8))
    informative = noise + np.eye(8)[labels] * 3
    assert forecasts.logme(informative, labels) > forecasts.logme(noise, labels)


def test_scores_read_logits():
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(3), 5)
    logits = rng.normal(size=(15, 7))
    got = forecasts.scores(rng.normal(size=(15, 4)), logits, labels)
    assert set(got) == set(forecasts.SCORES)
    theta = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert got["leep"] == pytest.approx(forecasts.leep(theta, labels))
    assert got["nce"] <= 0 and got["leep"] <= 0


def _cells(gap_order: list[str]) -> pd.DataFrame:
    rows = []
    for rank, backbone in enumerate(gap_order):
        for size in (2, 10):
            for seed in (1, 2):
                base = 0.5 + 0.02 * size
                cell = {"dataset": "d", "backbone": backbone, "size": str(size), "examples_per_class": size}
                rows += [
                    cell | {"seed": seed, "regime": "scratch", "test_accuracy": base},
                    cell
                    | {
                        "seed": seed,
                        "regime": "finetune",
                        "test_accuracy": base + 0.05 * rank + 0.001 * seed,
                    },
                ]
    return pd.DataFrame(rows)


def test_check_ranks_a_forecast_that_orders_the_gaps():
    cells = _cells(["a", "b", "c"])
    keys = cells[["dataset", "backbone", "examples_per_class", "seed"]].drop_duplicates()
    order = {"a": 0.0, "b": 1.0, "c": 2.0}
    found = keys.assign(
        logme=keys.backbone.map(order) + 0.01 * keys.seed,
        leep=-keys.backbone.map(order),  # the reverse order
        nce=keys.seed.astype(float),
        h_score=keys.examples_per_class.astype(float),
    )
    beside = forecasts.beside_measured(found, cells)
    assert len(beside) == 12 and beside.gap.between(0, 0.2).all()
    table = forecasts.check(beside, level=0.95, draws=200).set_index(["scope", "forecast", "target"])
    agree, reverse = table.loc[("every cell", "logme", "gap")], table.loc[("every cell", "leep", "gap")]
    assert agree.rho > 0.9 and agree.low > 0.5 and agree.cells == 12
    assert reverse.rho < -0.9 and reverse.high < -0.5
    across = table.loc[("backbones at 10 per class", "logme", "gap")]
    assert across.rho == pytest.approx(1.0) and across.cells == 3
    assert math.isnan(across.low)  # three backbones: no interval
    assert table.loc[("backbones at 2 per class", "leep", "gap")].rho == pytest.approx(-1.0)


def test_the_ladder_figure_shows_every_backbone_with_its_forecast_ranks(tmp_path):
    costs = tmp_path / "costs" / "d"
    costs.mkdir(parents=True)
    summary, beside = [], []
    for i, backbone in enumerate(["small", "large"]):
        record = {"gflops_per_image": 0.1 * (i + 1), "train_images_per_second": 200 / (i + 1)}
        (costs / f"{backbone}.json").write_text(json.dumps(record | {"inference_images_per_second": 900.0}))
        for n in (2, 10):
            summary.append(
                {
                    "dataset": "d",
                    "backbone": backbone,
                    "arm": "finetune",
                    "regime": "finetune",
                    "examples_per_class": n,
                    "mean": 0.8 + 0.05 * i,
                    "stderr": 0.01,
                }
            )
            beside.append(
                {"dataset": "d", "backbone": backbone, "examples_per_class": n, "seed": 1}
                | {score: float(i) for score in forecasts.SCORES}
            )
    figures = aggregate._cost_figures(
        pd.DataFrame(summary), pd.DataFrame(beside), tmp_path, tmp_path / "costs"
    )
    assert [f.name for f in figures] == ["d_cost.png", "d_ladder.png"]
    assert all(f.stat().st_size > 10_000 for f in figures)


def test_without_a_source_head_leep_and_nce_are_left_out():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(2), 6)
    got = forecasts.scores(rng.normal(size=(12, 3)), None, labels)
    assert math.isnan(got["leep"]) and math.isnan(got["nce"]) and math.isfinite(got["logme"])


@pytest.mark.parametrize("classes, has_head", [(1000, True), (7, False)])
def test_source_outputs_use_the_checkpoint_head_only_when_it_has_one(tmp_path, classes, has_head):
    torch.manual_seed(5)
    weights = tmp_path / "w.safetensors"
    save_file(timm.create_model("test_efficientnet", num_classes=classes).state_dict(), str(weights))
    cfg = config.Backbone(model="test_efficientnet", weights=str(weights))
    images = np.random.default_rng(0).integers(0, 255, size=(3, 16, 16, 3), dtype=np.uint8)
    feats, logits = source_outputs.outputs(cfg, images, torch.device("cpu"))
    assert feats.shape[0] == 3 and np.isfinite(feats).all()
    assert (logits is not None) == has_head
    if has_head:
        assert logits.shape == (3, 1000)
