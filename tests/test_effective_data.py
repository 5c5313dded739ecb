"""Effective data transferred (Hernandez et al. 2021) on loss curves with known answers."""

import numpy as np
import pandas as pd
import pytest

from pretraining_gap import config
from pretraining_gap.analysis import effective_data as ed

ANALYSIS = config.Analysis()  # the study's defaults: cap, level
SIZES = [1, 2, 4, 8, 16, 32, 64]


def loss_cells(arms: dict, sizes, seeds=(1, 2), backbone="b", noise=0.0, rng=None) -> pd.DataFrame:
    """Cells whose test loss is arms[arm](n), times exp(noise) per cell when noise > 0, and whose accuracy falls as
    the loss rises (exp(−loss))."""
    rows = []
    for arm, loss in arms.items():
        for n in sizes:
            for seed in seeds:
                factor = np.exp(rng.normal(0, noise)) if noise else 1.0
                rows.append(
                    {
                        "dataset": "d",
                        "backbone": backbone,
                        "regime": arm,
                        "arm": arm,
                        "examples_per_class": n,
                        "seed": seed,
                        "test_loss": loss(n) * factor,
                        "test_accuracy": np.exp(-loss(n) * factor),
                    }
                )
    return pd.DataFrame(rows)


def scratch_loss(n):
    return 2.0 * n**-0.5  # a straight line in log-log: the interpolation is exact


def test_scratch_size_for_loss_interpolates_and_censors():
    losses = [scratch_loss(n) for n in SIZES]
    assert ed.scratch_size_for_loss(SIZES, losses, scratch_loss(12.0)) == pytest.approx((12.0, ed.ESTIMATE))
    assert ed.scratch_size_for_loss(SIZES, losses, 5.0) == (1.0, ed.UPPER_BOUND)
    assert ed.scratch_size_for_loss(SIZES, losses, 0.1) == (64.0, ed.LOWER_BOUND)
    bumpy = [2.0, 1.0, 1.2, 0.5]  # a rise is noise: the running minimum 2, 1, 1, 0.5 is read
    assert ed.scratch_size_for_loss([1, 2, 4, 8], bumpy, 0.7071)[0] == pytest.approx(4 * np.sqrt(2), rel=1e-3)


def test_effective_data_on_a_known_loss_curve():
    # the pretrained arm at n has scratch's loss at 4n: D_E = 4n, D_T = 3n, measured up to 4n = 64
    cells = loss_cells(
        {"scratch": scratch_loss, "finetune": lambda n: scratch_loss(4 * n), "pixels": lambda n: np.nan},
        SIZES,
    )
    table = ed.effective_data(ed.effective_transfers(cells, 50, ANALYSIS.cap), ANALYSIS.level).set_index(
        "examples_per_class"
    )
    assert table.arm.unique().tolist() == ["finetune"]  # no finite loss, no row
    inside = table.loc[[1, 2, 4, 8, 16]]
    assert inside.kind.eq(ed.ESTIMATE).all()
    assert inside.transferred.to_numpy() == pytest.approx(3 * inside.index.to_numpy())
    assert inside.low.to_numpy() == pytest.approx(inside.transferred.to_numpy())  # identical seeds: no spread
    beyond = table.loc[[32, 64]]
    assert beyond.kind.eq(ed.LOWER_BOUND).all() and (beyond.high == np.inf).all()
    assert beyond.transferred.tolist() == [32.0, 0.0]  # D_T ≥ 64 − n
    assert beyond.n_extrapolated.to_numpy() == pytest.approx([128.0, 256.0], rel=1e-3)  # from the loss fit


def test_an_arm_behind_scratch_transferred_nothing():
    # worse than scratch at every size: no D_T (a positive one would only say its loss is better calibrated)
    cells = loss_cells({"scratch": scratch_loss, "linear": lambda n: 3.0 * n**-0.5}, SIZES[:4])
    table = ed.effective_data(ed.effective_transfers(cells, 20, ANALYSIS.cap), ANALYSIS.level)
    assert table.kind.eq(ed.NOT_AHEAD).all() and table.transferred.isna().all() and table.low.isna().all()


def noisy_transfers(rng_seed: int) -> list:
    """Eight seeds, each cell's loss off by a factor e^N(0, 0.1); truth D_T = 3n as above."""
    cells = loss_cells(
        {"scratch": scratch_loss, "finetune": lambda n: scratch_loss(4 * n)},
        SIZES,
        seeds=range(8),
        noise=0.1,
        rng=np.random.default_rng(rng_seed),
    )
    return ed.effective_transfers(cells, 100, ANALYSIS.cap, seed=rng_seed)


def test_bootstrap_intervals_cover_the_truth_in_most_simulations():
    covered = 0
    for rng_seed in range(10):
        table = ed.effective_data(noisy_transfers(rng_seed), ANALYSIS.level).set_index("examples_per_class")
        covered += sum(table.loc[n, "low"] <= 3 * n <= table.loc[n, "high"] for n in (2, 4, 8))
    assert covered >= 22  # of 30; percentile intervals from 8 seeds cover about 89 % here (100 simulations)


def test_alpha_is_recovered_with_an_interval():
    exponent = ed.transfer_exponents(noisy_transfers(0), ANALYSIS.level).iloc[0]
    assert exponent.status == "estimated" and exponent.alpha == pytest.approx(1.0, abs=0.15)
    assert exponent.alpha_low <= 1.0 <= exponent.alpha_high


def test_alpha_needs_three_uncensored_sizes():
    cells = loss_cells({"scratch": scratch_loss, "finetune": lambda n: scratch_loss(32 * n)}, SIZES)
    exponent = ed.transfer_exponents(ed.effective_transfers(cells, 10, ANALYSIS.cap), ANALYSIS.level).iloc[0]
    assert (
        exponent.points == 2 and exponent.status == "not estimable" and np.isnan(exponent.alpha)
    )  # 32n ≤ 64


def test_alpha_and_beta_from_a_family_of_backbones():
    # D_T = 3 n (N / 1e6)^0.5: backbones of 1e6 and 4e6 parameters transfer 3n and 6n
    sizes = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    cells = pd.concat(
        [
            loss_cells(
                {"scratch": scratch_loss, "finetune": lambda n, k=k: scratch_loss((1 + k) * n)},
                sizes,
                backbone=name,
            )
            for name, k in (("small", 3), ("large", 6))
        ]
    )
    backbones = pd.DataFrame(
        {"backbone": ["small", "large"], "family": ["lite", "lite"], "parameters": [1e6, 4e6]}
    )
    row = ed.family_exponents(
        ed.effective_transfers(cells, 10, ANALYSIS.cap), backbones, ANALYSIS.level
    ).iloc[0]
    assert row.backbones == "large+small" and row.status == "estimated"
    assert (row.alpha, row.beta) == pytest.approx((1.0, 0.5), abs=1e-6)


def test_one_seed_gives_estimates_without_intervals():
    cells = loss_cells(
        {"scratch": scratch_loss, "finetune": lambda n: scratch_loss(4 * n)}, SIZES, seeds=(1,)
    )
    transfers = ed.effective_transfers(cells, 50, ANALYSIS.cap)
    table = ed.effective_data(transfers, ANALYSIS.level)
    assert table.transferred.iloc[0] == pytest.approx(3.0) and table.low.isna().all()
    exponent = ed.transfer_exponents(transfers, ANALYSIS.level).iloc[0]
    assert exponent.alpha == pytest.approx(1.0) and np.isnan(exponent.alpha_low)
