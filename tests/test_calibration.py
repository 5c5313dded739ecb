"""Temperature scaling on validation (Guo et al. 2017) on logits whose calibration is known."""

import numpy as np
import pandas as pd
import pytest

from pretraining_gap.analysis import calibration


def calibrated_sample(rng, images: int = 4000, classes: int = 10):
    """Logits and labels drawn from the softmax of those logits: a calibrated model, temperature 1."""
    logits = rng.normal(0, 2.0, size=(images, classes))
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    labels = np.array([rng.choice(classes, p=row) for row in p])
    return logits, labels


def test_an_overconfident_model_is_cooled_back_to_its_calibrated_loss():
    rng = np.random.default_rng(0)
    logits, labels = calibrated_sample(rng)
    assert calibration.temperature(logits, labels) == pytest.approx(1.0, abs=0.1)
    hot = 3 * logits  # three times too confident: the same predictions, a larger loss
    assert calibration.cross_entropy(hot, labels) > 1.5 * calibration.cross_entropy(logits, labels)
    t = calibration.temperature(hot, labels)
    assert t == pytest.approx(3.0, rel=0.1)
    assert calibration.cross_entropy(hot, labels, t) == pytest.approx(
        calibration.cross_entropy(logits, labels), rel=0.02
    )


def test_the_temperature_comes_from_validation_and_scores_test():
    rng = np.random.default_rng(1)
    val, test = calibrated_sample(rng, 2000), calibrated_sample(rng, 2000)
    cells = pd.DataFrame(
        [
            {
                "val_logits": (3 * val[0]).tolist(),
                "val_labels": val[1].tolist(),
                "test_logits": (3 * test[0]).tolist(),
                "test_labels": test[1].tolist(),
            },
            {"val_logits": None, "val_labels": None, "test_logits": None, "test_labels": None},
        ]
    )
    losses = calibration.calibrated_losses(cells)
    assert losses[0] == pytest.approx(calibration.cross_entropy(*test), rel=0.05) and np.isnan(losses[1])
