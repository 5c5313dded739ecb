"""Known-answer tests of the two sources of noise (seeds and test images) on simulated paired cells: per-image
correctness of two arms under S seeds, scored on a test set drawn afresh from a known population each time."""

import numpy as np
import pytest
from scipy.special import expit

from pretraining_gap.analysis import equivalence as eq
from pretraining_gap.analysis import noise

IMAGES = 500  # the default digits test set


def stable_images(rng, seeds: int, images: int = IMAGES, seed_sd: float = 0.01):
    """Which images an arm gets right hardly changes with the seed (each image has one threshold per arm, shared
    by the seeds; a seed shifts the arm's accuracy by `seed_sd`): the test sample, not the seeds, is the noise.
    Population accuracies 0.95 and 0.93: the true gap is 0.02."""
    thresholds = rng.random((2, images))
    shift = rng.normal(scale=seed_sd, size=(2, seeds))
    pretrained = thresholds[0] < 0.95 + shift[0][:, None]
    scratch = thresholds[1] < 0.93 + shift[1][:, None]
    return pretrained, scratch, 0.02


def noisy_seeds(rng, seeds: int, images: int = IMAGES):
    """Each seed's model errs on its own images (a logistic model of image difficulty with a seed effect of sd
    0.3 on the log-odds): seeds and images both count. The true gap is the population mean, computed once."""
    difficulty = rng.normal(size=images)
    effect = rng.normal(scale=0.3, size=(2, seeds))
    pretrained = rng.random((seeds, images)) < expit(3.0 + effect[0][:, None] - 1.5 * difficulty)
    scratch = rng.random((seeds, images)) < expit(2.5 + effect[1][:, None] - 2.0 * difficulty)
    return pretrained, scratch, NOISY_SEEDS_GAP


def _population_gap(draws: int = 1_000_000) -> float:
    rng = np.random.default_rng(123)
    difficulty, effect = rng.normal(size=draws), rng.normal(scale=0.3, size=(2, draws))
    return float(
        np.mean(expit(3.0 + effect[0] - 1.5 * difficulty) - expit(2.5 + effect[1] - 2.0 * difficulty))
    )


NOISY_SEEDS_GAP = _population_gap()


def coverage(simulate, seeds: int, with_images: bool = True, runs: int = 1000, level: float = 0.95) -> float:
    rng = np.random.default_rng(seeds)
    hits = []
    for _ in range(runs):
        pretrained, scratch, truth = simulate(rng, seeds)
        gaps, influences = noise.gaps(
            pretrained.mean(1), scratch.mean(1), list(pretrained), list(scratch), "points", 1e-3
        )
        low, high = noise.estimate(gaps, influences if with_images else None).interval(level)
        hits.append(low <= truth <= high)
    return float(np.mean(hits))


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
