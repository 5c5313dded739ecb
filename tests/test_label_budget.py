"""The label budget on planted learning curves: a known curve gives its known examples per class."""

import numpy as np
import pytest

from pretraining_gap import config
from pretraining_gap.analysis import label_budget as lb
from pretraining_gap.analysis import learning_curves as lc
from pretraining_gap.analysis.scales import clip_epsilon

EPSILON = clip_epsilon(500)
SIZES = np.array([1, 2, 5, 10, 25, 50, 100.0])


def planted(key: str, e_inf: float, a: float, b: float, seeds: int = 3) -> lc.ArmFit:
    """A noise-free arm: every seed measures the law exactly."""
    accuracies = np.repeat(1 - lc.power_law(SIZES, e_inf, a, b)[:, None], seeds, axis=1)
    draws = np.random.default_rng(0).integers(0, seeds, size=(50, seeds))
    return lc.fit_arm(("d", "b", key, key), SIZES, accuracies, draws, EPSILON)


def test_a_planted_curve_gives_its_known_budget():
    # e(n) = 0.01 + 0.5 n^-0.5: 95% needs 0.5 n^-0.5 = 0.04, n = 156.25; 99% is the floor itself: never
    scratch = planted("scratch", 0.01, 0.5, 0.5)
    finetune = planted("finetune", 0.005, 0.1, 0.5)  # 95%: 0.1 n^-0.5 = 0.045, n = 4.94
    table = lb.label_budget([scratch, finetune], config.Analysis().cap, 0.95, targets=[0.95, 0.99])
    rows = table.set_index(["arm", "target"])
    step = 10 ** (1 / lc.PER_DECADE)  # the grid's resolution
    assert 156.25 <= rows.loc[("scratch", 0.95), "examples_per_class"] <= 156.25 * step
    assert rows.loc[("scratch", 0.95), "status"] == lb.BEYOND_MEASURED  # measured up to 100
    assert rows.loc[("scratch", 0.99), "examples_per_class"] == np.inf
    assert rows.loc[("scratch", 0.99), "status"] == lb.BEYOND_CAP
    fine = rows.loc[("finetune", 0.95)]
    assert 4.94 <= fine.examples_per_class <= 4.94 * step and fine.status == lb.WITHIN
    assert fine.ratio == pytest.approx(156.25 / 4.94, rel=0.05)
    assert fine.saved_per_class == pytest.approx(156.25 - 4.94, rel=0.05)
    # noise-free seeds: every refit is the fit, so the interval is the point
    assert fine.low == fine.examples_per_class == fine.high
    assert np.isnan(rows.loc[("finetune", 0.99), "ratio"])  # scratch never gets there: no finite ratio
