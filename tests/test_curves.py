"""Aggregation arithmetic on hand-made cell rows with known answers."""

import math

import numpy as np
import pandas as pd
import pytest

from pretraining_gap.analysis import curves

T_975_2DOF = 4.302652729911275  # Student t, 97.5% quantile, 2 degrees of freedom (printed tables)


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
    summary = curves.summarise(CELLS).set_index(["arm", "examples_per_class"])
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
    summary = curves.summarise(cells).set_index("arm")
    assert summary.loc["depth_k2", "mean"] == pytest.approx(0.6) and summary.loc["depth_k4", "depth"] == 4
    assert list(curves.arm_names(cells.regime, cells.depth).unique()) == ["depth_k2", "depth_k4"]


def test_gap_is_paired_by_seed_with_a_t_interval():
    gap = curves.gaps(CELLS).set_index("examples_per_class")
    assert gap.loc[1, "gap"] == pytest.approx(0.4)  # differences 0.4, 0.5, 0.3
    assert gap.loc[1, "stderr"] == pytest.approx(0.1 / math.sqrt(3))
    half = T_975_2DOF * 0.1 / math.sqrt(3)
    assert (gap.loc[1, "low"], gap.loc[1, "high"]) == pytest.approx((0.4 - half, 0.4 + half))
    assert gap.loc[10, "gap"] == pytest.approx(0.05)  # differences 0.1, 0.0, 0.05
    assert gap.loc[10, "stderr"] == pytest.approx(0.05 / math.sqrt(3))


def test_one_seed_gives_a_gap_without_interval():
    gap = curves.gaps(CELLS[CELLS.seed == 1])
    assert gap.gap.notna().all() and gap.low.isna().all() and gap.high.isna().all()
    assert list(curves.crossover(gap).status) == ["no interval"]


def test_gap_skips_seeds_without_a_scratch_partner():
    cells = pd.concat([CELLS, pd.DataFrame(rows("finetune", 1, [0, 0, 0, 0.99])[3:])])
    assert curves.gaps(cells).set_index("examples_per_class").loc[1, "seeds"] == 3


def gap_lows(lows):
    sizes = [1, 2, 5, 10][: len(lows)]
    return pd.DataFrame(
        {
            "dataset": "d",
            "backbone": "b",
            "arm": "finetune",
            "regime": "finetune",
            "depth": np.nan,
            "examples_per_class": sizes,
            "gap": 0.1,
            "low": lows,
            "high": 0.3,
        }
    )


@pytest.mark.parametrize(
    "lows, size, status",
    [
        (
            [0.1, -0.01, 0.02, -0.1],
            10,
            "reached",
        ),  # 2 includes 0 but 5 does not: catching up counts from 10 on
        ([0.1, -0.1, -0.2, -0.3], 2, "reached"),  # scratch ahead at 10 still counts as caught up
        ([0.1, 0.05, 0.02, 0.01], None, "not reached"),
        ([0.1, 0.05, np.nan, 0.01], None, "no interval"),
    ],
)
def test_crossover_is_the_size_from_which_the_interval_reaches_zero(lows, size, status):
    found = curves.crossover(gap_lows(lows)).iloc[0]
    assert found.status == status
    assert (found.crossover == size) if size else np.isnan(found.crossover)


SCRATCH_SIZES = np.array([1.0, 10.0, 100.0])
SCRATCH_ACCURACY = SCRATCH_SIZES / (1 + SCRATCH_SIZES)  # logit(accuracy) = ln n: straight in (ln n, logit)


@pytest.mark.parametrize(
    "target, n_effective, kind",
    [
        (5 / 6, 5.0, "estimate"),  # logit = ln 5, inside the first segment
        (50 / 51, 50.0, "estimate"),  # inside the second segment
        (0.999, 100.0, "lower bound"),  # scratch never gets there: at least the largest size
        (0.4, 1.0, "upper bound"),  # already beaten at the smallest size
    ],
)
def test_scratch_reaches_interpolates_in_log_n_and_logit(target, n_effective, kind):
    found, found_kind = curves.scratch_reaches(SCRATCH_SIZES, SCRATCH_ACCURACY, target)
    assert found == pytest.approx(n_effective) and found_kind == kind


def test_effective_data_and_its_exponent_on_an_exact_power_law():
    scratch = [1, 2, 5, 10, 25, 50, 100]
    transferred = {n: 2 * n**0.5 for n in (1, 2, 5, 10, 25)}  # D_T = 2 √n: α = 0.5
    cells = pd.DataFrame(
        [r for n in scratch for r in rows("scratch", n, [n / (1 + n)])]
        + [r for n, d in transferred.items() for r in rows("finetune", n, [(n + d) / (1 + n + d)])]
    )
    effective = curves.effective_data(curves.summarise(cells)).set_index("examples_per_class")
    assert (effective.kind == "estimate").all()
    assert effective.transferred.to_numpy() == pytest.approx(list(transferred.values()), rel=1e-6)
    assert curves.transfer_exponents(effective.reset_index()).alpha.iloc[0] == pytest.approx(0.5)


def test_effective_data_marks_a_lower_bound():
    cells = pd.DataFrame(rows("scratch", 1, [0.2]) + rows("scratch", 10, [0.5]) + rows("finetune", 1, [0.9]))
    row = curves.effective_data(curves.summarise(cells)).iloc[0]
    assert row.kind == "lower bound" and row.transferred == pytest.approx(9)


def test_power_law_needs_three_positive_points():
    assert curves.power_law([1, 10, 100], [3, 3 * 10**0.7, 3 * 100**0.7]) == pytest.approx(0.7)
    assert np.isnan(curves.power_law([1, 10, 100], [3, -1, 5]))


def test_transferability_is_averaged_over_seeds_in_network_order():
    cells = pd.DataFrame(rows("finetune", 1, [0.5, 0.6]))
    cells["transferability"] = [
        {"stem": 4.0, "blocks.0": 2.0, "head": 1.0},
        {"stem": 6.0, "blocks.0": 1.0, "head": 1.0},
    ]
    table = curves.transferability(cells)
    assert list(table.group) == ["stem", "blocks.0", "head"]
    assert list(table["T"]) == pytest.approx([5.0, 1.5, 1.0])
    assert curves.transferability(CELLS).empty
