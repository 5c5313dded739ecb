"""Classical classifiers chosen on validation: the linear probe on frozen features, and the raw-pixel baselines.

`linear`: logistic regression on the cached frozen features of the pretrained backbone (Kornblith et al. 2019,
section 3: with little data a well-regularised linear probe is a strong arm). `pixels`: no pretraining at all —
1-nearest-neighbour, logistic regression and an RBF SVM on the raw pixels, the one best on validation kept; a
from-scratch network that cannot beat these is under-trained, not a measure of what pretraining is worth.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from PIL import Image

from ..config import Linear, Pixels
from ..data.prepared import TEST, VAL
from ..results import Outcome
from . import tuning
from .inputs import CellInputs
from .validation import halves, winners_curse

Factory = Callable[[float], object]  # a regularisation value -> an unfitted scikit-learn classifier


def _choose(
    x: np.ndarray,
    labels: np.ndarray,
    train: np.ndarray,
    val: np.ndarray,
    families: dict[str, tuple[list, Factory]],
) -> tuple[str, tuning.Search, list[tuple[float, float]]]:
    """Per family, its C grid searched on validation (one step past an edge, tuning.py); the family whose best is
    best on validation (the first of ties, in the order given), and every fit's accuracy on each half of
    validation (for the winner's curse, validation.py)."""
    first = halves(labels[val])
    pairs = []

    def fitted(factory: Factory) -> Callable[[list[float]], list[tuple[object, float]]]:
        def run(values: list[float]) -> list[tuple[object, float]]:
            models = [factory(value).fit(x[train], labels[train]) for value in values]
            right = [model.predict(x[val]) == labels[val] for model in models]
            pairs.extend((r[first].mean(), r[~first].mean()) for r in right)
            return [(model, r.mean()) for model, r in zip(models, right)]

        return run

    found = {
        name: tuning.search(grid, fitted(factory), lambda trial: (trial[1],))
        for name, (grid, factory) in families.items()
    }
    name = max(found, key=lambda n: found[n].trial[1])
    return name, found[name], pairs


def _scores(model, x: np.ndarray) -> np.ndarray:
    """Per-image class scores (N, classes): log-probabilities where the model has them (logistic regression, 1-NN's
    one-hot, floored), else its decision values (the SVMs)."""
    if hasattr(model, "predict_proba"):
        return np.log(np.clip(model.predict_proba(x), 1e-12, None))
    return model.decision_function(x)


def _outcome(x, labels, val, test, family: str, found, pairs, seconds: float, **extra) -> Outcome:
    model, val_accuracy = found.trial
    test_loss = None
    if hasattr(model, "predict_proba"):
        from sklearn.metrics import log_loss

        test_loss = log_loss(labels[test], model.predict_proba(x[test]), labels=model.classes_)
    outputs = {
        "test_logits": np.round(_scores(model, x[test]), 4).tolist(),
        "test_labels": labels[test].tolist(),
        "val_logits": np.round(_scores(model, x[val]), 4).tolist(),
        "val_labels": labels[val].tolist(),
    }
    return Outcome(
        test_accuracy=model.score(x[test], labels[test]),
        test_loss=test_loss,
        best_val_accuracy=val_accuracy,
        train_seconds=seconds,
        C=None if family == "nearest_neighbour" else found.best,
        val_accuracy_by_C=None
        if family == "nearest_neighbour"
        else {f"{c:g}": t[1] for c, t in found.tried.items()},
        at_grid_edge=found.at_edge,
        winners_curse=winners_curse(pairs),
        **outputs,
        **extra,
    )


def linear(inputs: CellInputs) -> tuple[Outcome, object]:
    """Logistic regression on cached frozen features; C chosen on validation."""
    from sklearn.linear_model import LogisticRegression

    cfg: Linear = inputs.regime
    start = time.perf_counter()
    x, labels = inputs.features, inputs.data.labels
    val, test = inputs.data.part(VAL), inputs.data.part(TEST)
    families = {"logistic": (cfg.C, lambda c: LogisticRegression(C=c, max_iter=2000))}
    family, found, pairs = _choose(x, labels, inputs.train_idx, val, families)
    return _outcome(x, labels, val, test, family, found, pairs, time.perf_counter() - start), found.trial[0]


def pixel_vectors(images: np.ndarray, resolution: int) -> np.ndarray:
    """(N, H, W, 3) uint8 to (N, resolution² x 3) floats in [0, 1]; smaller by Pillow's box filter when larger."""
    if images.shape[1] > resolution:
        images = np.stack(
            [np.asarray(Image.fromarray(i).resize((resolution,) * 2, Image.BOX)) for i in images]
        )
    return images.reshape(len(images), -1).astype(np.float64) / 255


def pixels(inputs: CellInputs) -> tuple[Outcome, object]:
    """1-nearest-neighbour, logistic regression (C grid) and RBF SVMs (C grid per gamma) on raw pixels; the one
    best on validation is kept and named in the result."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC

    cfg: Pixels = inputs.regime
    start = time.perf_counter()
    x, labels = pixel_vectors(inputs.data.images, cfg.resolution), inputs.data.labels
    train, val, test = inputs.train_idx, inputs.data.part(VAL), inputs.data.part(TEST)
    scale = 1 / (x.shape[1] * x[train].var()) if x[train].var() > 0 else 1.0  # scikit-learn's gamma="scale"
    families: dict[str, tuple[list, Factory]] = {
        "nearest_neighbour": ([1.0], lambda _: KNeighborsClassifier(1))
    }
    families["logistic"] = (cfg.C, lambda c: LogisticRegression(C=c, max_iter=5000))
    for g in cfg.gamma:
        families[f"rbf_svm gamma {g:g}x"] = (cfg.C, lambda c, g=g: SVC(C=c, gamma=g * scale))
    family, found, pairs = _choose(x, labels, train, val, families)
    gamma = float(family.split()[-1].rstrip("x")) if family.startswith("rbf_svm") else None
    seconds = time.perf_counter() - start
    outcome = _outcome(
        x, labels, val, test, family, found, pairs, seconds, classifier=family.split()[0], gamma=gamma
    )
    return outcome, found.trial[0]
