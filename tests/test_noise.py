"""Known-answer tests of the two sources of noise (seeds and test images) on simulated paired cells and learning
curves (the simulations of benchmarks/answer_noise.py, which prints the same figures)."""

import numpy as np
import pytest

from benchmarks.answer_noise import IMAGES, coverage, decisions, noisy_seeds, stable_images
from pretraining_gap.analysis import equivalence as eq
from pretraining_gap.analysis import learning_curves as lc
from pretraining_gap.analysis import noise


@pytest.mark.parametrize("simulate", [stable_images, noisy_seeds])
@pytest.mark.parametrize("seeds", [3, 5])
def test_the_two_source_interval_covers_the_population_gap_at_its_level(simulate, seeds):
    assert 0.90 <= coverage(simulate, seeds) <= 0.99


def test_seeds_alone_miss_the_test_sample_when_images_decide():
    # the interval the study had before: seeds only, the same test images under every seed
    assert coverage(stable_images, 5, with_images=False) < 0.85


def test_one_seed_has_a_test_image_interval_and_says_so():
    pretrained, scratch, _ = stable_images(np.random.default_rng(0), 1)
    gap = noise.estimate(
        *noise.gaps(pretrained.mean(1), scratch.mean(1), list(pretrained), list(scratch), "points", 1e-3)
    )
    assert gap.sources == noise.IMAGES and gap.df == pytest.approx(IMAGES - 1)
    # the test set's part: the variance of the per-image differences over N
    difference = pretrained[0].astype(float) - scratch[0]
    assert gap.se == pytest.approx(difference.std(ddof=1) / np.sqrt(IMAGES))
    assert noise.estimate([0.02]).sources == "" and np.isnan(noise.estimate([0.02]).interval(0.95)[0])


def test_the_log_odds_influences_are_the_delta_method():
    rng = np.random.default_rng(2)
    pretrained, scratch = rng.random((3, IMAGES)) < 0.9, rng.random((3, IMAGES)) < 0.8
    p, q = pretrained.mean(1), scratch.mean(1)
    gaps, influences = noise.gaps(p, q, list(pretrained), list(scratch), "logodds", 1e-3)
    assert gaps == pytest.approx(np.log(p / (1 - p)) - np.log(q / (1 - q)))
    # linear in each image: one more right answer moves the log odds by about 1 / (N p (1 − p))
    assert influences.mean(1) == pytest.approx(p / (p * (1 - p)) - q / (q * (1 - q)))


def test_when_the_test_set_limits_the_decision_it_says_how_many_images_would_decide():
    # a gap of 1.6 points against a 1-point margin on 500 images: no number of seeds shows it exceeds the margin
    gap = noise.combine(0.016, 1e-6, 3, 0.05, IMAGES)
    assert eq.seeds_to_decide(gap, margin=0.01, alpha=0.05) == np.inf
    images = eq.test_images_to_decide(gap, margin=0.01, alpha=0.05)
    assert IMAGES < images < 100 * IMAGES
    # at that many images the claim has the power asked for, and one image fewer it has not
    assert eq._power(gap.scaled(seeds=eq.MAX_SEEDS, images=int(images)), 0.01, 0.05) >= eq.POWER
    assert eq._power(gap.scaled(seeds=eq.MAX_SEEDS, images=int(images) - 1), 0.01, 0.05) < eq.POWER


# simulated studies: 9 sizes from 1 to 1,000 per class, a test set of 10,000 images, seed noise on the log-odds as
# digits' at its largest sizes (benchmarks/answer_noise.py); each call is 60 studies, about a minute
@pytest.mark.slow
@pytest.mark.parametrize("seeds", [3, 5])
def test_far_below_the_margin_the_crossover_is_reached_and_its_interval_covers(seeds):
    counts, held = decisions(seeds, 0.0, 10_000, runs=60, n_boot=100)
    assert 0.90 <= held <= 0.99
    assert counts[lc.REACHED] / 60 >= 0.90  # "undecided" counts as wrong this far from the margin


@pytest.mark.slow
def test_far_above_the_margin_pretraining_still_matters_at_any_size():
    counts, held = decisions(5, 0.03, 10_000, runs=60, n_boot=100)
    assert 0.90 <= held <= 0.99
    assert counts[lc.NOT_WITHIN] / 60 >= 0.90


@pytest.mark.slow
@pytest.mark.parametrize("gap, wrong", [(0.008, lc.NOT_WITHIN), (0.012, lc.REACHED)])
def test_near_the_margin_a_confident_wrong_decision_is_rare(gap, wrong):
    counts, _ = decisions(5, gap, 10_000, runs=60, n_boot=100)
    assert counts[wrong] / 60 <= 0.05
