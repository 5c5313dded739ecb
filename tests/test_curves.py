"""Per-size summaries on hand-made cell rows with known answers."""

import math

import numpy as np
import pandas as pd
import pytest

from pretraining_gap.analysis import curves
from pretraining_gap.analysis.scales import clip_epsilon

EPSILON = clip_epsilon(500)  # digits' test set: 50 images in each of 10 classes


def rows(regime, size, accuracies, depth=np.nan):
    arm = regime if np.isnan(depth) else f"{regime}_k{depth}"
    return [
        {
            "dataset": "d",
            "backbone": "b",
            "regime": regime,
            "depth": depth,
            "arm": arm,
            "examples_per_class": size,
            "seed": s,
            "test_accuracy": a,
        }
        for s, a in enumerate(accuracies, start=1)
    ]


CELLS = pd.DataFrame(
    rows("scratch", 1, [0.2, 0.3, 0.4])
    + rows("finetune", 1, [0.6, 0.8, 0.7])
    + rows("scratch", 10, [0.8, 0.9, 0.85])
    + rows("finetune", 10, [0.9, 0.9, 0.9])
)


def test_mean_and_standard_error_over_seeds():
    summary = curves.summarise(CELLS, EPSILON).set_index(["arm", "examples_per_class"])
    assert summary.loc[("scratch", 1), "mean"] == pytest.approx(0.3)
    assert summary.loc[("scratch", 1), "stderr"] == pytest.approx(0.1 / math.sqrt(3))
    assert summary.loc[("finetune", 10), "stderr"] == pytest.approx(0.0)
    assert summary.loc[("finetune", 1), "seeds"] == 3


def test_log_odds_mean_averages_logits_then_maps_back():
    cells = pd.DataFrame(rows("scratch", 1, [0.5, 0.9]) + rows("scratch", 2, [1.0, 1.0]))
    summary = curves.summarise(cells, epsilon=0.01).set_index("examples_per_class")
    assert summary.loc[1, "logodds_mean"] == pytest.approx(0.75)  # logits 0 and ln 9 average to ln 3: odds 3
    assert summary.loc[1, "mean"] == pytest.approx(0.7)
    assert summary.loc[2, "logodds_mean"] == pytest.approx(0.99)  # clipped to 1 − ε, not infinite


def test_depth_cells_form_one_arm_per_k():
    cells = pd.DataFrame(rows("depth", 1, [0.5, 0.7], depth=2) + rows("depth", 1, [0.1, 0.3], depth=4))
    cells["depth"] = cells.depth.astype(float)
    summary = curves.summarise(cells, EPSILON).set_index("arm")
    assert summary.loc["depth_k2", "mean"] == pytest.approx(0.6) and summary.loc["depth_k4", "depth"] == 4
    assert list(curves.arm_names(cells.regime, cells.depth).unique()) == ["depth_k2", "depth_k4"]


def test_transferability_is_averaged_over_seeds_in_network_order_beside_the_steps():
    cells = pd.DataFrame(rows("finetune", 1, [0.5, 0.6]))
    cells["transferability"] = [
        {"stem": 4.0, "blocks.0": 2.0, "head": 1.0},
        {"stem": 6.0, "blocks.0": 1.0, "head": 1.0},
    ]
    cells["steps"], cells["best_step"] = [80, 120], [40, 60]
    table = curves.transferability(cells)
    assert list(table.group) == ["stem", "blocks.0", "head"]
    assert list(table["T"]) == pytest.approx([5.0, 1.5, 1.0])
    assert list(table.T_low) == pytest.approx([4.0, 1.0, 1.0]) and list(table.T_high) == pytest.approx(
        [6, 2, 1]
    )
    assert (table.steps == 100).all() and (table.best_step == 50).all() and (table.seeds == 2).all()
    assert curves.transferability(CELLS).empty
