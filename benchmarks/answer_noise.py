"""Known-answer simulations of the answer's noise: how often its intervals cover the truth, and how often its
crossover decisions are right.

Per-size gaps: two arms' per-image correctness under S seeds, on a test set drawn afresh from a known population
each run, scored by the two-source interval (pretraining_gap.analysis.noise) and, for comparison, by seeds alone.
Two populations: `stable_images` (which images an arm gets right hardly changes with the seed: the test sample is
the noise) and `noisy_seeds` (each seed errs on its own images: both sources count).

Crossover decisions: learning curves e(n) = e_inf + a·n^−b for scratch and an arm whose floors differ by a planted
gap, with seed noise on the log-odds and a test set of stable per-image thresholds, fitted and decided as the study
does (learning_curves.fit_arm, crossovers). The decision is right when it is "reached" for a gap below the margin
and "not within the margin at any size" above it; "undecided" counts as wrong far from the margin and as safe
near it.

  python -m benchmarks.answer_noise                       # both tables, the defaults below
  python -m benchmarks.answer_noise --runs 200 --decision-runs 30   # a quicker look
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.special import expit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pretraining_gap.analysis import learning_curves as lc  # noqa: E402
from pretraining_gap.analysis import noise, seeds  # noqa: E402
from pretraining_gap.analysis.scales import logit, sigmoid  # noqa: E402

IMAGES = 500  # the default digits test set
MARGIN = 0.01
SEED_SD = 0.05
SIZES = np.array(
    [1, 2, 5, 10, 25, 50, 100, 300, 1000.0]
)  # examples per class (9: the power law alone is fitted)


def stable_images(rng, seeds: int, images: int = IMAGES, seed_sd: float = 0.01):
    """(pretrained, scratch, true gap): per-image correctness (seeds × images, bool) of two arms whose every image
    has one threshold per arm shared by the seeds (a seed shifts the arm's accuracy by `seed_sd`). Population
    accuracies 0.95 and 0.93: the true gap is 0.02."""
    thresholds = rng.random((2, images))
    shift = rng.normal(scale=seed_sd, size=(2, seeds))
    pretrained = thresholds[0] < 0.95 + shift[0][:, None]
    scratch = thresholds[1] < 0.93 + shift[1][:, None]
    return pretrained, scratch, 0.02


def _population_gap(draws: int = 1_000_000) -> float:
    rng = np.random.default_rng(123)
    difficulty, effect = rng.normal(size=draws), rng.normal(scale=0.3, size=(2, draws))
    return float(
        np.mean(expit(3.0 + effect[0] - 1.5 * difficulty) - expit(2.5 + effect[1] - 2.0 * difficulty))
    )


NOISY_SEEDS_GAP = _population_gap()


def noisy_seeds(rng, seeds: int, images: int = IMAGES):
    """As `stable_images`, but each seed's model errs on its own images: a logistic model of image difficulty with a
    seed effect of sd 0.3 on the log-odds. The true gap is the population mean (NOISY_SEEDS_GAP)."""
    difficulty = rng.normal(size=images)
    effect = rng.normal(scale=0.3, size=(2, seeds))
    pretrained = rng.random((seeds, images)) < expit(3.0 + effect[0][:, None] - 1.5 * difficulty)
    scratch = rng.random((seeds, images)) < expit(2.5 + effect[1][:, None] - 2.0 * difficulty)
    return pretrained, scratch, NOISY_SEEDS_GAP


def coverage(
    simulate, n_seeds: int, with_images: bool = True, runs: int = 1000, level: float = 0.95
) -> float:
    """The fraction of `runs` simulations whose interval at `level` holds the true gap."""
    rng = np.random.default_rng(n_seeds)
    hits = []
    for _ in range(runs):
        pretrained, scratch, truth = simulate(rng, n_seeds)
        gaps, influences = noise.gaps(
            pretrained.mean(1), scratch.mean(1), list(pretrained), list(scratch), "points", 1e-3
        )
        low, high = noise.estimate(gaps, influences if with_images else None).interval(level)
        hits.append(low <= truth <= high)
    return float(np.mean(hits))


def crossover_run(rng, n_seeds: int, gap: float, images: int, n_boot: int, seed_sd: float = SEED_SD):
    """One simulated study of scratch and an arm (`gap`: e_inf(scratch) − e_inf(arm)), decided as the study does:
    its row of learning_curves.crossovers."""
    epsilon = 1 / (2 * images)
    curves = {"scratch": (0.02 + gap, 0.6, 0.6), "finetune": (0.02, 0.2, 0.6)}
    shared = rng.normal(0, seed_sd, size=n_seeds)
    correct = {}
    for arm, params in curves.items():
        thresholds = rng.random(images)
        noise_ = rng.normal(0, seed_sd, (len(SIZES), n_seeds))
        errors = sigmoid(logit(lc.power_law(SIZES, *params), epsilon)[:, None] + shared + noise_)
        correct[arm] = (thresholds[None, None, :] >= errors[:, :, None]).astype(
            float
        )  # sizes × seeds × images
    draws = seeds.resample_seeds(n_seeds, n_boot, int(rng.integers(1 << 30)), images=True)
    weights = seeds.resample_images(images, n_boot, int(rng.integers(1 << 30)))
    fits = [
        lc.fit_arm(("d", "b", arm, arm), SIZES, c.mean(2), draws, epsilon, lc.under_draws(c, weights), images)
        for arm, c in correct.items()
    ]
    return lc.crossovers(fits, MARGIN, 10_000, 0.95).iloc[0]


def decisions(
    n_seeds: int, gap: float, images: int, runs: int, n_boot: int, seed_sd: float = SEED_SD
) -> tuple[Counter, float]:
    """Decision counts over `runs` simulated studies, and how often the interval of the fitted gap at unlimited
    data held the planted gap."""
    rng = np.random.default_rng([n_seeds, images, int(gap * 1e4)])
    rows = [crossover_run(rng, n_seeds, gap, images, n_boot, seed_sd) for _ in range(runs)]
    held = np.mean([r.asymptotic_gap_low <= gap <= r.asymptotic_gap_high for r in rows])
    return Counter(r.decision for r in rows), float(held)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1000, help="simulations per coverage figure")
    parser.add_argument(
        "--decision-runs", type=int, default=100, help="simulated studies per decision figure"
    )
    parser.add_argument("--boot", type=int, default=100, help="bootstrap replicates per simulated study")
    args = parser.parse_args()
    print("Per-size gap: coverage of the 95% interval (500 test images)")
    print("| population | seeds | two sources | seeds alone |\n|---|---|---|---|")
    for simulate in (stable_images, noisy_seeds):
        for n in (1, 3, 5):
            alone = f"{coverage(simulate, n, False, args.runs):.3f}" if n > 1 else "none"
            print(f"| {simulate.__name__} | {n} | {coverage(simulate, n, True, args.runs):.3f} | {alone} |")
    print("\nCrossover decisions (margin 1 point; 9 sizes from 1 to 1,000 per class)")
    print(
        "| seeds | test images | seed noise | planted gap | reached | not within | undecided | interval held |"
    )
    print("|---|---|---|---|---|---|---|---|")
    cases = [(n, 10_000, SEED_SD, gap) for gap in (0.0, 0.03, 0.008, 0.012) for n in (3, 5)]
    cases += [(3, 10_000, 0.1, 0.0), (5, 10_000, 0.1, 0.0), (3, 500, SEED_SD, 0.0)]
    for n, images, sd, gap in cases:
        counts, held = decisions(n, gap, images, args.decision_runs, args.boot, sd)
        share = {k: counts[k] / args.decision_runs for k in (lc.REACHED, lc.NOT_WITHIN, lc.UNDECIDED)}
        print(
            f"| {n} | {images:,} | {sd} | {gap * 100:.1f} points | {share[lc.REACHED]:.2f} | "
            f"{share[lc.NOT_WITHIN]:.2f} | {share[lc.UNDECIDED]:.2f} | {held:.2f} |"
        )


if __name__ == "__main__":
    main()
