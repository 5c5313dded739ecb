"""Does pretraining still matter at this size? A decision per measured size, with "undecided" a valid answer.

"The interval of the gap touches zero" measures statistical power, not equality. Here the paired gap
g = pretrained − scratch accuracy (a fraction, paired by seed since both arms share each seed's subset) is tested
against a stated margin δ (the user's "does not matter": e.g. 0.01, one accuracy point) by three one-sided t tests
(n − 1 degrees of freedom, n = paired seeds):

- "pretraining helps": H0 mean g ≤ δ against mean g > δ. Positive means an advantage larger than the margin, since
  the question is whether pretraining still matters, not whether it has any effect at all;
- "within margin": two one-sided tests (Schuirmann 1987), H0 mean g ≤ −δ and H0 mean g ≥ δ, both rejected;
  the TOST p-value is the larger of the two;
- "scratch better": H0 mean g ≥ −δ against mean g < −δ.

Each of the three is a family over the sizes of one arm (dataset × backbone × arm), and its p-values are Holm-adjusted
(Holm 1979: controls the family-wise error rate like Bonferroni, uniformly more powerful). A size gets the claim
whose adjusted p-value is below α; at α < 0.5 at most one can be (helps needs mean − t·se > δ, within needs
mean + t·se < δ, and so on). Otherwise it is "undecided".

For an undecided size, `seeds_to_decide` estimates how many seeds would decide it (see there).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .seeds import ARM, SCRATCH, paired

POWER = 0.8
MAX_SEEDS = 1000  # beyond this, `seeds_to_decide` answers inf
HELPS, WITHIN, SCRATCH_BETTER, UNDECIDED = "pretraining helps", "within margin", "scratch better", "undecided"
P_COLUMNS = ["p_helps", "p_within", "p_scratch_better"]


def one_sided_pvalues(gaps, margin: float) -> tuple[float, float, float]:
    """(p_helps, p_within, p_scratch_better) for paired gaps (fractions) against margin δ, unadjusted (see module
    docstring). NaN with fewer than two gaps. A zero spread gives p = 0 where the mean is strictly on the claim's
    side and 1 otherwise."""
    gaps = np.asarray(gaps, dtype=float)
    if len(gaps) < 2:
        return np.nan, np.nan, np.nan
    mean, stderr, df = gaps.mean(), gaps.std(ddof=1) / np.sqrt(len(gaps)), len(gaps) - 1
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


def seeds_to_decide(
    mean: float,
    sd: float,
    margin: float,
    alpha: float,
    power: float = POWER,
    max_seeds: int = MAX_SEEDS,
) -> float:
    """Smallest number of paired seeds n with the given power to reach the claim the observed mean points to,
    taking the observed mean and standard deviation of the gaps as the truth.

    The claim: "within margin" if |mean| < δ, else "pretraining helps" (mean ≥ δ) or "scratch better" (mean ≤ −δ).
    Power from the noncentral t distribution (one-sided test at level α, n − 1 degrees of freedom, noncentrality
    (mean ∓ δ)·√n / sd); for the two one-sided tests the lower bound P(A) + P(B) − 1 of both rejecting. Pass α
    already divided by the number of sizes (Bonferroni, Holm's strictest step) for a conservative count. A
    planning figure: with three seeds the sd itself is uncertain by a factor of about two. Returns inf beyond
    `max_seeds` (also when |mean| = δ), NaN when sd is NaN.
    """
    if np.isnan(sd) or np.isnan(mean):
        return np.nan
    if sd == 0:
        return 2.0 if abs(mean) != margin else np.inf
    n = np.arange(2, max_seeds + 1)
    df, critical, scale = n - 1, stats.t.ppf(1 - alpha, n - 1), np.sqrt(n) / sd
    reject_low = stats.nct.sf(critical, df, (mean + margin) * scale)  # evidence that mean g > −δ
    reject_high = stats.nct.cdf(-critical, df, (mean - margin) * scale)  # evidence that mean g < δ
    if abs(mean) < margin:
        achieved = reject_low + reject_high - 1
    elif mean > 0:
        achieved = stats.nct.sf(critical, df, (mean - margin) * scale)
    else:
        achieved = stats.nct.cdf(-critical, df, (mean + margin) * scale)
    enough = np.flatnonzero(achieved >= power)
    return float(n[enough[0]]) if len(enough) else np.inf


def equivalence(
    cells: pd.DataFrame,
    margin: float,
    alpha: float,
    power: float = POWER,
    scratch: str = SCRATCH,
) -> pd.DataFrame:
    """Per non-scratch arm and measured size: the paired accuracy gap to scratch and its decision.

    `cells`: one row per finished cell (dataset, backbone, regime, arm, examples_per_class, seed, test_accuracy).
    Returns columns dataset, backbone, regime, arm, examples_per_class, seeds, gap (mean, fraction), sd (of the
    paired gaps), margin, p_helps, p_within, p_scratch_better (Holm-adjusted over the arm's sizes), decision
    (HELPS, WITHIN, SCRATCH_BETTER or UNDECIDED), seeds_needed (undecided sizes only: `seeds_to_decide` at α / sizes;
    inf when beyond MAX_SEEDS).
    """
    pairs = paired(cells, "test_accuracy", scratch)
    rows = []
    for key, part in pairs.groupby([*ARM, "examples_per_class"], sort=True):
        gaps = part.pretrained - part.scratch
        p_helps, p_within, p_worse = one_sided_pvalues(gaps, margin)
        rows.append(
            {
                **dict(zip([*ARM, "examples_per_class"], key)),
                "seeds": len(gaps),
                "gap": gaps.mean(),
                "sd": gaps.std(ddof=1),
                "margin": margin,
                "p_helps": p_helps,
                "p_within": p_within,
                "p_scratch_better": p_worse,
            }
        )
    table = pd.DataFrame(
        rows, columns=[*ARM, "examples_per_class", "seeds", "gap", "sd", "margin", *P_COLUMNS]
    )
    for column in P_COLUMNS:
        table[column] = table.groupby(ARM, sort=False)[column].transform(holm)
    sizes = table.groupby(ARM, sort=False).examples_per_class.transform("size")
    table["decision"] = [decide(*p, alpha=alpha) for p in table[P_COLUMNS].itertuples(index=False)]
    table["seeds_needed"] = [
        seeds_to_decide(gap, sd, margin, alpha / m, power) if decision == UNDECIDED else np.nan
        for gap, sd, m, decision in zip(table.gap, table.sd, sizes, table.decision)
    ]
    return table
