"""Does pretraining still matter at this size? A decision per measured size, with "undecided" a valid answer.

"The interval of the gap touches zero" measures statistical power, not equality. Here the paired gap
g = pretrained − scratch accuracy (a fraction, paired by seed since both arms share each seed's subset) is tested
against a stated margin δ (the user's "does not matter": e.g. 0.01, one accuracy point) by three one-sided t tests
whose standard error carries both the seeds' and the test images' noise (the `noise` module; Welch–Satterthwaite
degrees of freedom):

- "pretraining helps": H0 mean g ≤ δ against mean g > δ. Positive means an advantage larger than the margin, since
  the question is whether pretraining still matters, not whether it has any effect at all;
- "within margin": two one-sided tests (Schuirmann 1987), H0 mean g ≤ −δ and H0 mean g ≥ δ, both rejected;
  the TOST p-value is the larger of the two;
- "scratch better": H0 mean g ≥ −δ against mean g < −δ.

Each of the three is a family over the sizes of one arm (dataset × backbone × arm), and its p-values are Holm-adjusted
(Holm 1979: controls the family-wise error rate like Bonferroni, uniformly more powerful). A size gets the claim
whose adjusted p-value is below α; at α < 0.5 at most one can be (helps needs mean − t·se > δ, within needs
mean + t·se < δ, and so on). Otherwise it is "undecided".

For an undecided size, `seeds_to_decide` estimates how many seeds would decide it, and where no number of seeds
would (the same test images score every seed), `test_images_to_decide` how large a test set would.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from . import noise
from .noise import Estimate
from .seeds import ARM, SCRATCH

POWER = 0.8
MAX_SEEDS = 1000  # beyond this, `seeds_to_decide` answers inf
HELPS, WITHIN, SCRATCH_BETTER, UNDECIDED = "pretraining helps", "within margin", "scratch better", "undecided"
P_COLUMNS = ["p_helps", "p_within", "p_scratch_better"]


def one_sided_pvalues(gap: Estimate, margin: float) -> tuple[float, float, float]:
    """(p_helps, p_within, p_scratch_better) for a mean paired gap (fraction; noise.Estimate, its standard error
    from seeds and test images) against margin δ, unadjusted (module docstring). NaN without a standard error (one
    seed and no per-image outputs). A zero standard error gives p = 0 where the mean is strictly on the claim's side
    and 1 otherwise."""
    mean, stderr, df = gap.mean, gap.se, gap.df
    if np.isnan(df):
        return np.nan, np.nan, np.nan
    if stderr == 0:
        return float(mean <= margin), float(not -margin < mean < margin), float(mean >= -margin)
    above_margin = stats.t.sf((mean - margin) / stderr, df)  # H0: mean ≤ δ
    above_minus_margin = stats.t.sf((mean + margin) / stderr, df)  # H0: mean ≤ −δ
    below_margin = stats.t.cdf((mean - margin) / stderr, df)  # H0: mean ≥ δ
    below_minus_margin = stats.t.cdf((mean + margin) / stderr, df)  # H0: mean ≥ −δ
    return float(above_margin), float(max(above_minus_margin, below_margin)), float(below_minus_margin)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as given; NaN stays NaN and does not count)."""
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full_like(p, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested])]
    steps = (len(order) - np.arange(len(order))) * p[order]
    adjusted[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
    return adjusted


def decide(p_helps: float, p_within: float, p_scratch_better: float, alpha: float) -> str:
    """The claim whose (adjusted) p-value is below α, else "undecided"."""
    for claim, p in ((HELPS, p_helps), (WITHIN, p_within), (SCRATCH_BETTER, p_scratch_better)):
        if p < alpha:
            return claim
    return UNDECIDED


def _power(gap: Estimate, margin: float, alpha: float) -> float:
    """Power of the claim `gap`'s mean points to, taking its mean and standard error as the truth: one-sided t at
    level α, noncentrality (mean ∓ δ) / se; for the two one-sided tests the lower bound P(A) + P(B) − 1."""
    if gap.se == 0:
        return float(abs(gap.mean) != margin)
    critical, df = stats.t.ppf(1 - alpha, gap.df), gap.df
    if abs(gap.mean) < margin:
        low = stats.nct.sf(critical, df, (gap.mean + margin) / gap.se)  # evidence that mean g > −δ
        high = stats.nct.cdf(-critical, df, (gap.mean - margin) / gap.se)  # evidence that mean g < δ
        return float(low + high - 1)
    if gap.mean > 0:
        return float(stats.nct.sf(critical, df, (gap.mean - margin) / gap.se))
    return float(stats.nct.cdf(-critical, df, (gap.mean + margin) / gap.se))


def seeds_to_decide(
    gap: Estimate, margin: float, alpha: float, power: float = POWER, max_seeds: int = MAX_SEEDS
) -> float:
    """Smallest number of paired seeds with the given power to reach the claim the observed mean points to (a
    gap within δ: "within margin"; else "pretraining helps" or "scratch better"), taking the observed mean and both
    parts of its variance as the truth (noise.Estimate.scaled: more seeds shrink only the seeds' part; the test
    images stay the same). Pass α already divided by the number of sizes (Bonferroni, Holm's strictest step) for a
    conservative count. A planning figure: with three seeds the seeds' variance is itself uncertain by a factor of
    about two. Returns inf beyond `max_seeds` (also when |mean| = δ, or when the test set alone keeps the
    decision out of reach: see `test_images_to_decide`), NaN without a standard error or a seeds' part."""
    if np.isnan(gap.df) or np.isnan(gap.seed_variance):
        return np.nan
    return _smallest(lambda seeds: _power(gap.scaled(seeds=seeds), margin, alpha) >= power, 2, max_seeds)


def test_images_to_decide(
    gap: Estimate, margin: float, alpha: float, power: float = POWER, max_factor: int = 100
) -> float:
    """Test images (in all) that would decide the claim if seeds were no limit (the seeds' part taken at
    MAX_SEEDS), taking the observed mean and variances as the truth; inf beyond `max_factor` times the present
    test set or when even a noise-free test set would not; NaN without per-image outputs."""
    if np.isnan(gap.image_variance) or gap.images < 2:
        return np.nan
    return _smallest(
        lambda images: _power(gap.scaled(seeds=MAX_SEEDS, images=images), margin, alpha) >= power,
        gap.images,
        max_factor * gap.images,
    )


def _smallest(enough, low: int, high: int) -> float:
    """The smallest count in [low, high] for which `enough` holds (power grows with the count: bisection), inf
    when none does."""
    if not enough(high):
        return np.inf
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle + 1, high)
    return float(low)


def equivalence(
    cells: pd.DataFrame,
    margin: float,
    alpha: float,
    power: float = POWER,
    scratch: str = SCRATCH,
) -> pd.DataFrame:
    """Per non-scratch arm and measured size: the paired accuracy gap to scratch and its decision.

    `cells`: one row per finished cell (dataset, backbone, regime, arm, examples_per_class, seed, test_accuracy,
    and test_logits, test_labels where stored). Returns columns dataset, backbone, regime, arm, examples_per_class,
    seeds, noise (the sources the tests carry, noise.Estimate.sources), gap (mean, fraction), sd (of the paired
    per-seed gaps), se (of the mean gap, both sources), margin, p_helps, p_within, p_scratch_better (Holm-adjusted
    over the arm's sizes), decision (HELPS, WITHIN, SCRATCH_BETTER or UNDECIDED), and for undecided sizes only:
    seeds_needed (`seeds_to_decide` at α / sizes; inf when beyond MAX_SEEDS) and test_images_needed
    (`test_images_to_decide`, where the test set rather than the seeds keeps it undecided).
    """
    pairs = noise.paired_correct(cells, scratch)
    rows, estimates = [], []
    for key, part in pairs.groupby([*ARM, "examples_per_class"], sort=True):
        sides = (part.pretrained, part.scratch, list(part.pretrained_correct), list(part.scratch_correct))
        gaps, influences = noise.gaps(*sides, "points", 0.0)
        gap = noise.estimate(gaps, influences)
        estimates.append(gap)
        rows.append(
            {
                **dict(zip([*ARM, "examples_per_class"], key)),
                "seeds": len(gaps),
                "noise": gap.sources,
                "gap": gap.mean,
                "sd": gaps.std(ddof=1) if len(gaps) > 1 else np.nan,
                "se": gap.se,
                "margin": margin,
                **dict(zip(P_COLUMNS, one_sided_pvalues(gap, margin))),
            }
        )
    columns = [*ARM, "examples_per_class", "seeds", "noise", "gap", "sd", "se", "margin", *P_COLUMNS]
    table = pd.DataFrame(rows, columns=columns)
    for column in P_COLUMNS:
        table[column] = table.groupby(ARM, sort=False)[column].transform(holm)
    sizes = table.groupby(ARM, sort=False).examples_per_class.transform("size")
    table["decision"] = [decide(*p, alpha=alpha) for p in table[P_COLUMNS].itertuples(index=False)]
    undecided = table.decision == UNDECIDED
    table["seeds_needed"] = [
        seeds_to_decide(gap, margin, alpha / m, power) if open_ else np.nan
        for gap, m, open_ in zip(estimates, sizes, undecided)
    ]
    table["test_images_needed"] = [
        test_images_to_decide(gap, margin, alpha / m, power) if open_ and np.isinf(seeds) else np.nan
        for gap, m, open_, seeds in zip(estimates, sizes, undecided, table.seeds_needed)
    ]
    return table
