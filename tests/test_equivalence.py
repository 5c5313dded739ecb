"""Equivalence decisions (TOST against a margin, Holm over sizes) and gap scales on hand-made paired gaps."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pretraining_gap.analysis import equivalence as eq
from pretraining_gap.analysis import noise, scales

EPSILON = scales.clip_epsilon(500)  # digits' test set: 50 images in each of 10 classes


def cells_with_gaps(scratch: dict, gaps: dict) -> pd.DataFrame:
    """Scratch accuracies per size and seed, and a finetune arm `gap` above them, seed by seed."""
    rows = []
    for n, accuracies in scratch.items():
        for seed, (accuracy, gap) in enumerate(zip(accuracies, gaps[n]), start=1):
            rows += [
                {
                    "dataset": "d",
                    "backbone": "b",
                    "regime": regime,
                    "arm": regime,
                    "examples_per_class": n,
                    "seed": seed,
                    "test_accuracy": value,
                }
                for regime, value in (("scratch", accuracy), ("finetune", accuracy + gap))
            ]
    return pd.DataFrame(rows)


def seed_noise(mean: float, sd: float) -> noise.Estimate:
    """A mean gap whose noise is the seeds' alone, with per-seed standard deviation `sd`."""
    return noise.combine(mean, sd**2, 3, np.nan, 0)


def test_one_sided_pvalues_are_scipys_t_tests_against_the_margin():
    gaps = np.array([0.02, 0.05, 0.01, 0.04])
    p_helps, p_within, p_worse = eq.one_sided_pvalues(noise.estimate(gaps), 0.01)
    assert p_helps == pytest.approx(stats.ttest_1samp(gaps, 0.01, alternative="greater").pvalue)
    assert p_worse == pytest.approx(stats.ttest_1samp(gaps, -0.01, alternative="less").pvalue)
    tost = max(
        stats.ttest_1samp(gaps, -0.01, alternative="greater").pvalue,
        stats.ttest_1samp(gaps, 0.01, alternative="less").pvalue,
    )
    assert p_within == pytest.approx(tost)


def test_holm_adjusts_step_down():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; then monotone: 0.06 for the last two
    assert eq.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert np.isnan(eq.holm([np.nan, 0.01])[0]) and eq.holm([np.nan, 0.01])[1] == pytest.approx(0.01)


def test_decisions_on_hand_made_gaps():
    scratch = {n: [0.5, 0.6, 0.7, 0.55, 0.65] for n in (1, 2, 5)} | {10: [0.8, 0.85, 0.9]}
    gaps = {
        1: [0.20, 0.22, 0.21, 0.19, 0.205],  # clearly positive, far beyond one point
        2: [0.001, -0.002, 0.000, 0.002, -0.001],  # clearly within one point
        5: [-0.20, -0.18, -0.22, -0.19, -0.21],  # clearly negative
        10: [0.05, -0.04, 0.00],
    }  # three noisy seeds: nothing shown
    table = eq.equivalence(cells_with_gaps(scratch, gaps), margin=0.01, alpha=0.05).set_index(
        "examples_per_class"
    )
    assert table.decision.to_dict() == {1: eq.HELPS, 2: eq.WITHIN, 5: eq.SCRATCH_BETTER, 10: eq.UNDECIDED}
    assert table.loc[1, "gap"] == pytest.approx(0.205) and table.loc[10, "seeds"] == 3
    assert table.loc[[1, 2, 5], "seeds_needed"].isna().all()
    assert 3 < table.loc[10, "seeds_needed"] < eq.MAX_SEEDS  # |gap| < margin: seeds for equivalence


def test_the_correction_can_leave_a_size_undecided():
    gaps = [0.05, 0.08, 0.03]  # p_helps = 0.048 alone; Holm over four sizes multiplies it by 4
    scratch = {n: [0.5, 0.6, 0.7] for n in (1, 2, 5, 10)}
    table = eq.equivalence(
        cells_with_gaps(scratch, {1: gaps, 2: [0, 0, 0], 5: [0, 0, 0], 10: [0, 0, 0]}),
        margin=0.01,
        alpha=0.05,
    )
    alone = eq.equivalence(cells_with_gaps({1: scratch[1]}, {1: gaps}), margin=0.01, alpha=0.05)
    assert alone.decision.iloc[0] == eq.HELPS
    assert table.decision.iloc[0] == eq.UNDECIDED and table.p_helps.iloc[0] > 0.05


def test_seeds_to_decide_gives_the_power_asked_for():
    mean, sd, alpha = 0.04, 0.05, 0.05
    n = int(eq.seeds_to_decide(seed_noise(mean, sd), margin=0.01, alpha=alpha, power=0.8))
    rng = np.random.default_rng(0)

    def power(seeds):
        gaps = rng.normal(mean, sd, size=(4000, seeds))
        return np.mean(stats.ttest_1samp(gaps, 0.01, axis=1, alternative="greater").pvalue < alpha)

    assert power(n) >= 0.78 and power(n - 1) < 0.8
    assert eq.seeds_to_decide(seed_noise(0.0, 0.01), 0.01, alpha) < eq.seeds_to_decide(
        seed_noise(0.0, 0.02), 0.01, alpha
    )
    assert (
        eq.seeds_to_decide(seed_noise(0.01, 0.02), 0.01, alpha) == np.inf
    )  # on the margin: no number of seeds decides


def test_gap_on_three_scales_paired_by_seed():
    cells = cells_with_gaps({1: [0.6, 0.8]}, {1: [0.2, 0.1]})  # pretrained 0.8 and 0.9
    row = scales.gap_scales(cells, 0.95, EPSILON).iloc[0]

    def logit(p):
        return scales.logit(p, EPSILON)

    assert row.points == pytest.approx(0.15)
    assert row.logodds == pytest.approx(np.mean([logit(0.8) - logit(0.6), logit(0.9) - logit(0.8)]))
    assert row.error_ratio == pytest.approx(2.0)  # 0.4 / 0.2 and 0.2 / 0.1: half the errors
    half = stats.t.ppf(0.975, 1) * np.std([0.2, 0.1], ddof=1) / np.sqrt(2)
    assert (row.points_low, row.points_high) == pytest.approx((0.15 - half, 0.15 + half))
    assert row.error_ratio_low == pytest.approx(2.0) == row.error_ratio_high  # both seeds halve the errors


def test_a_gap_can_shrink_in_points_while_it_grows_in_log_odds():
    cells = cells_with_gaps({1: [0.6, 0.6], 50: [0.95, 0.95]}, {1: [0.2, 0.2], 50: [0.04, 0.04]})
    table = scales.gap_scales(cells, 0.95, EPSILON).set_index("examples_per_class")
    assert table.loc[50, "points"] < table.loc[1, "points"]
    assert table.loc[50, "logodds"] > table.loc[1, "logodds"]
    assert table.loc[50, "error_ratio"] == pytest.approx(5.0) and table.loc[
        1, "error_ratio"
    ] == pytest.approx(2.0)


def test_a_perfect_score_stays_finite():
    row = scales.gap_scales(cells_with_gaps({1: [0.9, 0.9]}, {1: [0.1, 0.1]}), 0.95, EPSILON).iloc[0]
    assert row.error_ratio == pytest.approx(0.1 / EPSILON) and np.isfinite(row.logodds)


def test_a_larger_test_set_clips_less():
    # half an image: 1e-3 for digits' 500 test images (the committed study's value), ten times less for 5,000
    assert scales.clip_epsilon(500) == 1e-3 and scales.clip_epsilon(5000) == pytest.approx(1e-4)
    perfect = cells_with_gaps({1: [0.9, 0.9]}, {1: [0.1, 0.1]})  # scratch errs on 10%, the arm on none
    small, large = (scales.gap_scales(perfect, 0.95, scales.clip_epsilon(n)).iloc[0] for n in (500, 5000))
    assert large.error_ratio == pytest.approx(10 * small.error_ratio) == pytest.approx(1000)
    assert large.logodds == pytest.approx(small.logodds + np.log(10), rel=1e-3)
