"""The two sources of noise in a gap: seeds and test images.

Seeds repeat the subset draw, the initialisation and the data order. But every seed is scored on the same test
images, so the spread over seeds leaves out how the accuracy of a finite test sample differs from the accuracy on
the population it was drawn from: one image is 0.2 points of the default digits test set, and a gap near the margin
can turn on it. With per-seed gaps g_s (s = 1..S) and per-image influences ψ_si (for the accuracy gap,
correct_pretrained − correct_scratch of image i under seed s; on another scale the derivative of that scale times
it), the mean gap ḡ has

    var(ḡ) ≈ var_s(g_s) / S + var_i(ψ̄_i) / N,    ψ̄_i the mean of ψ_si over seeds,

the variance of a two-way design (seed × image, a random effect each; e.g. Searle, Casella & McCulloch 1992,
ch. 4): the first term is the seeds' part, the second the test set's. Each term also contains the seed × image
interaction, so its mean square over S·N is taken off once, never leaving less than either term alone. Intervals
and tests use Student's t with the Welch–Satterthwaite degrees of freedom of the two terms. One seed leaves only
the test-image term: the interval then says what one test sample can, and no more. Cells stored without per-image
outputs leave only the seeds' term, and `sources` says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .seeds import SCRATCH, correct, paired

SEEDS, IMAGES, BOTH = "seeds", "test images", "seeds and test images"


@dataclass(frozen=True)
class Estimate:
    """A mean over `seeds` seeds with the standard error of both sources, in the unit of the mean.

    `df`: Welch–Satterthwaite degrees of freedom (inf when the spread is zero, NaN when none could be estimated);
    `sources`: the noise `se` carries (SEEDS, IMAGES or BOTH; "" for none); `seed_variance` = var(g_s) / S and
    `image_variance` = var(ψ̄_i) / N, the two parts of se² (NaN where not estimable); `images`: N (0 without
    per-image outputs).
    """

    mean: float
    se: float
    df: float
    sources: str
    seed_variance: float
    image_variance: float
    seeds: int
    images: int
    # the seed × image interaction's mean square, which both parts count (see `combine`)
    interaction: float = 0.0

    def interval(self, level: float) -> tuple[float, float]:
        """Two-sided t interval at `level`; (NaN, NaN) without a standard error."""
        if np.isnan(self.df):
            return np.nan, np.nan
        half = stats.t.ppf((1 + level) / 2, self.df) * self.se if self.se > 0 else 0.0
        return self.mean - half, self.mean + half

    def scaled(self, seeds: int | None = None, images: int | None = None) -> Estimate:
        """The same estimate at another number of seeds or test images: each term scales as 1 / its count (the
        same test images score every seed, so seeds shrink only the seeds' term)."""
        seeds, images = seeds or self.seeds, images or self.images
        return combine(
            self.mean,
            self.seed_variance * self.seeds,
            seeds,
            self.image_variance * self.images,
            images,
            self.interaction,
        )


def combine(
    mean: float, per_seed: float, seeds: int, per_image: float, images: int, interaction: float = 0.0
) -> Estimate:
    """An Estimate from the variance of one seed's value (`per_seed`), of one image's mean influence (`per_image`)
    and the mean square of the seed × image interaction, which both of their terms contain (module docstring);
    a NaN variance or a count below 2 leaves its term out."""
    seed_part = per_seed / seeds if seeds > 1 and np.isfinite(per_seed) else np.nan
    image_part = per_image / images if images > 1 and np.isfinite(per_image) else np.nan
    parts = [(v, n - 1) for v, n in ((seed_part, seeds), (image_part, images)) if np.isfinite(v)]
    if not parts:
        variance, df = np.nan, np.nan
    else:
        # the interaction is in both terms once too often; never below either term alone
        overlap = interaction / (seeds * images) if len(parts) == 2 else 0.0
        variance = max(sum(v for v, _ in parts) - overlap, *(v for v, _ in parts))
        spread = sum(v**2 / d for v, d in parts)
        df = variance**2 / spread if spread > 0 else np.inf
    sources = BOTH if len(parts) == 2 else SEEDS if np.isfinite(seed_part) else IMAGES if parts else ""
    return Estimate(
        float(mean),
        float(np.sqrt(variance)),
        float(df),
        sources,
        seed_part,
        image_part,
        seeds,
        images,
        interaction,
    )


def estimate(per_seed, influences=None) -> Estimate:
    """The mean of `per_seed` (S,) values and its two-source standard error (module docstring). `influences`:
    (S × N) per-image contributions whose mean over images is each seed's value (or its linearisation on another
    scale); None leaves out the test set's term."""
    values = np.asarray(per_seed, dtype=float)
    seeds, per_image, images, interaction = len(values), np.nan, 0, 0.0
    if influences is not None:
        psi = np.asarray(influences, dtype=float)
        images, per_image = psi.shape[1], psi.mean(axis=0).var(ddof=1)
        if seeds > 1:  # the residual mean square of the two-way layout
            residual = psi - psi.mean(axis=0) - psi.mean(axis=1, keepdims=True) + psi.mean()
            interaction = float((residual**2).sum() / ((seeds - 1) * (images - 1)))
    per_seed_variance = values.var(ddof=1) if seeds > 1 else np.nan
    return combine(values.mean(), per_seed_variance, seeds, per_image, images, interaction)


SCALES = ("points", "logodds", "log_ratio")


def gaps(pretrained, scratch, pretrained_correct, scratch_correct, scale: str, epsilon: float):
    """Per-seed gaps on `scale` and their per-image influences, from S paired cells.

    `pretrained`, `scratch`: (S,) test accuracies (fractions); `*_correct`: S per-image correctness arrays ((N,)
    bool, `correct`), or None entries where a cell lacks them. Scales: "points" (accuracy difference, a fraction),
    "logodds" (logit(pretrained) − logit(scratch)), "log_ratio" (log(scratch error / pretrained error)); accuracies
    clipped to [ε, 1 − ε] (scales.clip_epsilon). Returns (gaps (S,), influences (S × N) or None).

    The influence of image i on f(accuracy) is f'(accuracy)·correct_i (the delta method): its spread over images is
    the test set's part of f's variance.
    """
    p = np.clip(np.asarray(pretrained, dtype=float), epsilon, 1 - epsilon)
    q = np.clip(np.asarray(scratch, dtype=float), epsilon, 1 - epsilon)
    if scale == "points":
        values, dp, dq = np.asarray(pretrained) - np.asarray(scratch), np.ones_like(p), np.ones_like(q)
    elif scale == "logodds":
        values, dp, dq = np.log(p / (1 - p)) - np.log(q / (1 - q)), 1 / (p * (1 - p)), 1 / (q * (1 - q))
    elif scale == "log_ratio":
        values, dp, dq = np.log(1 - q) - np.log(1 - p), 1 / (1 - p), 1 / (1 - q)
    else:
        raise ValueError(f"unknown scale {scale!r}: one of {', '.join(SCALES)}")
    arrays = [*pretrained_correct, *scratch_correct]
    if any(a is None for a in arrays) or len({len(a) for a in arrays}) != 1:
        return values, None
    return values, dp[:, None] * np.stack(pretrained_correct) - dq[:, None] * np.stack(scratch_correct)


def paired_correct(cells: pd.DataFrame, scratch: str = SCRATCH) -> pd.DataFrame:
    """`seeds.paired` on test accuracy, plus each side's per-image correctness: columns pretrained_correct and
    scratch_correct ((N,) bool, or None for a cell stored without per-image outputs)."""
    outputs = cells.reindex(columns=["test_logits", "test_labels"])
    with_correct = cells.assign(
        correct=[correct(lo, la) for lo, la in zip(outputs.test_logits, outputs.test_labels)]
    )
    keys = ["dataset", "backbone", "regime", "arm", "examples_per_class", "seed"]
    pairs = paired(with_correct, "test_accuracy", scratch)
    sides = paired(with_correct, "correct", scratch).rename(
        columns={"pretrained": "pretrained_correct", "scratch": "scratch_correct"}
    )
    return pairs.merge(
        sides[[*keys, "pretrained_correct", "scratch_correct"]], on=keys, validate="one_to_one"
    )
