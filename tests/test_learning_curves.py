"""Learning-curve fits, crossovers and backtests on synthetic curves with known answers."""

import numpy as np
import pandas as pd
import pytest

from pretraining_gap import config
from pretraining_gap.analysis import learning_curves as lc
from pretraining_gap.analysis.scales import clip_epsilon, logit, sigmoid

ANALYSIS = config.Analysis()  # the study's defaults: margin, cap, level
EPSILON = clip_epsilon(500)  # digits' test set: 50 images in each of 10 classes
DECISION = (ANALYSIS.margin, ANALYSIS.cap, ANALYSIS.level)  # crossovers' margin, cap and level
SIZES = np.array([1, 2, 5, 10, 25, 50, 100, 200], dtype=float)


def power(*params):
    return lc.Curve(lc.POWER_LAW, params, rss=0.0, points=0)


def synthetic_cells(curves: dict, sizes, seeds: int, noise: float, rng) -> pd.DataFrame:
    """Cells whose logit(error) is the curve's plus a per-seed effect shared by every arm and size (one subset
    series per seed) plus independent noise, both with sd `noise`."""
    seed_effect = rng.normal(0, noise, size=seeds)
    rows = []
    for arm, params in curves.items():
        for n in sizes:
            noisy = logit(lc.power_law(n, *params), EPSILON) + seed_effect + rng.normal(0, noise, size=seeds)
            rows += [
                {
                    "dataset": "d",
                    "backbone": "b",
                    "regime": arm,
                    "arm": arm,
                    "examples_per_class": int(n),
                    "seed": s,
                    "test_accuracy": 1 - e,
                }
                for s, e in enumerate(sigmoid(noisy))
            ]
    return pd.DataFrame(rows)


def test_power_law_recovered_without_noise_and_preferred_to_the_broken_law():
    sizes = np.geomspace(1, 500, 10)
    curve = lc.fit_curve(sizes, lc.power_law(sizes, 0.03, 0.6, 0.5), "logit", EPSILON)
    assert curve.model == lc.POWER_LAW
    assert curve.params == pytest.approx((0.03, 0.6, 0.5), rel=1e-4)


def test_power_law_recovered_from_noisy_seeds_with_intervals_covering_it():
    cells = synthetic_cells(
        {"scratch": (0.03, 0.6, 0.5)}, SIZES, seeds=5, noise=0.05, rng=np.random.default_rng(1)
    )
    table = lc.learning_curves(lc.fit_arms(cells, 200, EPSILON), ANALYSIS.level).iloc[0]
    assert table.model == lc.POWER_LAW and table.replicates == 200
    for name, truth, tolerance in (("e_inf", 0.03, 0.01), ("a", 0.6, 0.05), ("b", 0.5, 0.05)):
        assert table[name] == pytest.approx(truth, abs=tolerance)
        assert table[f"{name}_low"] <= truth <= table[f"{name}_high"]
    assert table.rmse < 0.01  # accuracy, fraction


def test_broken_law_chosen_for_a_curve_that_breaks():
    sizes = np.geomspace(1, 500, 12)
    truth = (0.03, 0.5, 0.2, 1.1, 20.0, 0.4)
    noise = np.exp(np.random.default_rng(0).normal(0, 0.03, len(sizes)))
    curve = lc.fit_curve(sizes, lc.broken_power_law(sizes, *truth) * noise, "logit", EPSILON)
    before, after, at = curve.params[2:5]
    assert curve.model == lc.BROKEN
    assert before == pytest.approx(0.2, abs=0.05) and after > before + 0.5  # log-log slopes
    assert 10 < at < 40  # the break, examples per class (slope after it and sharpness trade off)


def test_crossover_is_where_scratch_stays_within_the_margin():
    grid = lc.size_grid(1, cap=10_000)
    # gap 0.3 / n: within one point from n = 30
    assert lc.crossover_size(power(0.02, 0.5, 1.0), power(0.02, 0.2, 1.0), grid, 0.01) == pytest.approx(
        30, rel=0.03
    )
    # asymptotes 3 points apart: never within one point
    assert lc.crossover_size(power(0.05, 0.5, 1.0), power(0.02, 0.2, 1.0), grid, 0.01) == np.inf
    # scratch ahead by 8 points at n = 1, behind by more than a point from n ≈ 3.3 on: within only briefly
    assert lc.crossover_size(power(0.03, 0.4, 1.0), power(0.0, 0.48, 0.5), grid, 0.01) == np.inf


def coverage(curves: dict, sizes, simulations: int, margin: float = 0.01) -> tuple[float, list[pd.Series]]:
    truth = lc.crossover_size(
        power(*curves["scratch"]), power(*curves["finetune"]), lc.size_grid(sizes[0], ANALYSIS.cap), margin
    )
    rows = []
    for i in range(simulations):
        cells = synthetic_cells(curves, sizes, seeds=6, noise=0.05, rng=np.random.default_rng(i))
        rows.append(
            lc.crossovers(
                lc.fit_arms(cells, 100, EPSILON, seed=i), margin, ANALYSIS.cap, ANALYSIS.level
            ).iloc[0]
        )
    return truth, rows


def test_crossover_inside_the_grid_with_an_interval_covering_the_truth():
    truth, rows = coverage(
        {"scratch": (0.02, 0.5, 0.8), "finetune": (0.02, 0.15, 0.8)}, SIZES, simulations=12
    )
    assert 50 < truth < 200  # inside the measured sizes
    assert all(row.status == "within measured sizes" and not row.extrapolated and row.trusted for row in rows)
    assert np.median([row.estimate for row in rows]) == pytest.approx(truth, rel=0.15)
    assert (
        sum(row.low <= truth <= row.high for row in rows) >= 8
    )  # of 12: percentile intervals from 6 seeds cover ~85%


def test_crossover_beyond_the_grid_is_marked_extrapolated_and_covered():
    truth, rows = coverage(
        {"scratch": (0.02, 0.5, 0.6), "finetune": (0.02, 0.15, 0.6)}, SIZES[:6], simulations=12
    )
    assert 200 < truth < 500  # beyond the largest size, 50, and within ten times it
    assert all(row.extrapolated and row.backtest_abs_error < 0.01 for row in rows)
    assert sum(row.status == "extrapolated" for row in rows) >= 10
    assert sum(row.low <= truth <= row.high for row in rows) >= 8


def test_fits_that_never_meet_are_beyond_the_cap_with_an_open_interval():
    curves = {"scratch": (0.06, 0.5, 0.8), "finetune": (0.01, 0.15, 0.8)}
    cells = synthetic_cells(curves, SIZES, seeds=6, noise=0.05, rng=np.random.default_rng(0))
    row = lc.crossovers(lc.fit_arms(cells, 100, EPSILON), margin=0.01, cap=10_000, level=0.95).iloc[0]
    assert row.status == "beyond cap" and row.estimate == np.inf and row.high == np.inf
    assert row.met_fraction < 0.2
    assert row.extrapolated and not row.trusted  # the cap lies 50 times beyond the largest size


def test_backtest_is_small_on_a_power_law_and_large_on_a_curve_that_bends():
    sizes = SIZES[:7]
    assert lc.backtest(sizes, lc.power_law(sizes, 0.02, 0.5, 0.5), "logit", EPSILON) < 1e-6
    bends = lc.broken_power_law(sizes, 0.02, 0.5, 0.1, 1.5, 60.0, 0.3)  # slope 0.1, then 1.5 from about 60
    assert (
        lc.backtest(sizes, bends, "logit", EPSILON) > 0.1
    )  # accuracy: more than 10 points off at 100 per class


def test_a_bending_scratch_curve_makes_the_extrapolated_crossover_untrusted():
    rows = []
    for n in SIZES[:7]:
        scratch_error = lc.broken_power_law(n, 0.02, 0.5, 0.1, 1.5, 60.0, 0.3)
        rows += [
            {
                "dataset": "d",
                "backbone": "b",
                "regime": regime,
                "arm": regime,
                "examples_per_class": int(n),
                "seed": seed,
                "test_accuracy": 1 - error,
            }
            for regime, error in (("scratch", scratch_error), ("finetune", lc.power_law(n, 0.0, 0.2, 0.6)))
            for seed in (1, 2)
        ]
    row = lc.crossovers(lc.fit_arms(pd.DataFrame(rows), 20, EPSILON), *DECISION).iloc[0]
    assert row.backtest_abs_error > 0.1 and not row.trusted


def test_too_few_sizes_are_not_fitted():
    cells = synthetic_cells(
        {"scratch": (0.02, 0.5, 0.8), "finetune": (0.02, 0.15, 0.8)},
        SIZES[:3],
        seeds=2,
        noise=0.05,
        rng=np.random.default_rng(0),
    )
    fits = lc.fit_arms(cells, 10, EPSILON)
    assert lc.learning_curves(fits, ANALYSIS.level).model.isna().all()
    assert lc.crossovers(fits, *DECISION).status.tolist() == ["not fitted"]
    with pytest.raises(ValueError, match="at least 4 sizes"):
        lc.fit_curve(SIZES[:3], [0.5, 0.4, 0.3], "logit", EPSILON)


def test_prediction_band_brackets_the_point_prediction():
    cells = synthetic_cells(
        {"scratch": (0.03, 0.6, 0.5)}, SIZES, seeds=4, noise=0.05, rng=np.random.default_rng(2)
    )
    band = lc.prediction_band(lc.fit_arms(cells, 50, EPSILON)[0], [3.0, 300.0, 3000.0], ANALYSIS.level)
    assert list(band.columns) == ["n", "accuracy", "low", "high"]
    assert (
        (band.low <= band.accuracy).all()
        and (band.accuracy <= band.high).all()
        and (band.low < band.high).all()
    )


def test_one_seed_gives_fits_without_intervals():
    curves = {"scratch": (0.02, 0.5, 0.8), "finetune": (0.02, 0.15, 0.8)}
    fits = lc.fit_arms(
        synthetic_cells(curves, SIZES, seeds=1, noise=0.05, rng=np.random.default_rng(0)), 50, EPSILON
    )
    table = lc.learning_curves(fits, ANALYSIS.level)
    assert table.replicates.eq(0).all() and table.b.notna().all() and table.b_low.isna().all()
    row = lc.crossovers(fits, *DECISION).iloc[0]
    assert np.isfinite(row.estimate) and np.isnan(row.low) and np.isnan(row.met_fraction)


def with_test_images(cells: pd.DataFrame, images: int, rng) -> pd.DataFrame:
    """The cells with per-image outputs as a result stores them: 10 classes, the cell's accuracy rounded to whole
    images, right answers on images at random; test_accuracy becomes what the outputs say."""
    labels = np.arange(images) % 10
    logits, accuracies = [], []
    for accuracy in cells.test_accuracy:
        right = rng.permutation(images) < round(accuracy * images)
        logits.append(np.eye(10)[np.where(right, labels, (labels + 1) % 10)].tolist())
        accuracies.append(right.mean())
    return cells.assign(
        test_logits=logits, test_labels=[labels.tolist()] * len(cells), test_accuracy=accuracies
    )


def test_one_seed_with_per_image_outputs_has_the_test_images_intervals():
    curves = {"scratch": (0.02, 0.5, 0.8), "finetune": (0.02, 0.15, 0.8)}
    rng = np.random.default_rng(0)
    cells = with_test_images(synthetic_cells(curves, SIZES, seeds=1, noise=0.05, rng=rng), 500, rng)
    fits = lc.fit_arms(cells, 50, EPSILON)
    table = lc.learning_curves(fits, ANALYSIS.level)
    assert table.replicates.gt(40).all()
    assert ((table.b_low < table.b) & (table.b < table.b_high)).all()
    # without the per-image outputs the same cells have no interval: one seed cannot be resampled
    bare = lc.learning_curves(
        lc.fit_arms(cells.drop(columns=["test_logits", "test_labels"]), 50, EPSILON), 0.95
    )
    assert bare.replicates.eq(0).all() and bare.b_low.isna().all()


def test_draws_holding_the_same_seeds_share_one_refit():
    sizes = SIZES[:5]
    rng = np.random.default_rng(3)
    accuracies = 1 - sigmoid(
        logit(lc.power_law(sizes, 0.02, 0.6, 0.5), EPSILON)[:, None] + rng.normal(0, 0.1, (5, 3))
    )
    fit = lc.fit_arm(
        ("d", "b", "scratch", "scratch"),
        sizes,
        accuracies,
        np.array([[0, 1, 2], [2, 1, 0], [0, 0, 1]]),
        EPSILON,
    )
    assert fit.replicates[0] is fit.replicates[1]  # the same seeds in another order: the same means
    alone = lc.fit_arm(("d", "b", "scratch", "scratch"), sizes, accuracies, np.array([[0, 0, 1]]), EPSILON)
    assert fit.replicates[2].params == pytest.approx(alone.replicates[0].params)
