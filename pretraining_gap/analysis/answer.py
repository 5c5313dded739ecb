"""The study's answer in one line per dataset × backbone, each claim with its interval:

    pretraining (finetune) is worth +20 points [95%: 15 to 25] at 1 example per class; it stops mattering (within
    ±1 point) from 180 [120, 400] per class — or it still matters at any size, or that is undecided and what would
    decide it; and where a baseline without pretraining beats it (pixels at 1 per class on digits), it says so.

"Pretraining" is the pretrained arm most accurate at the smallest size (the best case for it there). The report
puts the line first, the MLflow parent run's description starts with it, and the README quotes it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import REGIMES
from . import learning_curves, scales
from .seeds import SCRATCH

COLUMNS = [
    "dataset",
    "backbone",
    "arm",
    "examples_per_class",
    "seeds",
    "noise",
    "points",
    "points_low",
    "points_high",
    "decision",
    "crossover",
    "crossover_low",
    "crossover_high",
    "asymptotic_gap",
    "asymptotic_gap_low",
    "asymptotic_gap_high",
    "seeds_needed",
    "test_images_needed",
    "beaten_by",
]
FROM_CROSSOVER = (
    "asymptotic_gap",
    "asymptotic_gap_low",
    "asymptotic_gap_high",
    "seeds_needed",
    "test_images_needed",
)


def _beaten_by(done: pd.DataFrame, arm: pd.Series, level: float, epsilon: float) -> str:
    """Where a baseline arm (no pretraining, not scratch) beats `arm` with its whole interval above zero:
    'pixels at 1 (+3.2 points [95%: 0.4 to 6.0])', several joined by '; ', '' for none."""
    baselines = [r for r in done.regime.unique() if r != SCRATCH and not REGIMES[r].pretrained]
    mine = done[(done.dataset == arm.dataset) & (done.backbone == arm.backbone)]
    mine = mine[(mine.arm == arm.arm) | mine.regime.isin(baselines)]
    if not baselines or mine.arm.nunique() < 2:
        return ""
    versus = scales.gap_scales(mine, level, epsilon, scratch=arm.regime)
    ahead = versus[versus.points_low > 0].sort_values(["arm", "examples_per_class"])
    return "; ".join(
        f"{r.arm} at {r.examples_per_class:g} ({r.points * 100:+.1f} points [{level:.0%}: "
        f"{r.points_low * 100:+.1f} to {r.points_high * 100:+.1f}])"
        for r in ahead.itertuples()
    )


def answers(
    done: pd.DataFrame, tables: dict[str, pd.DataFrame], level: float, epsilon: float
) -> pd.DataFrame:
    """One row per dataset × backbone of `done` (finished cells, one dataset's, with test_logits and test_labels
    where stored) that has a pretrained arm with a scratch partner: that arm (module docstring), its gap at the
    smallest size (points, _low, _high: fraction, `gap` table), the crossover's decision, size and interval
    (examples per class) and the fitted gap at unlimited data (`crossover` table), what would decide it, and the
    baselines that beat it (`beaten_by`). Columns: COLUMNS."""
    gap, crossover = tables["gap"], tables["crossover"]
    pretrained = gap[gap.regime.map(lambda r: REGIMES[r].pretrained).astype(bool)]
    rows = []
    for (dataset, backbone), part in pretrained.groupby(["dataset", "backbone"], sort=True):
        smallest = part[part.examples_per_class == part.examples_per_class.min()]
        best = smallest.sort_values(["pretrained_accuracy", "arm"], ascending=[False, True]).iloc[0]
        mine = (crossover.dataset == dataset) & (crossover.backbone == backbone) & (crossover.arm == best.arm)
        cross = crossover[mine]
        row = {c: best.get(c, np.nan) for c in ["dataset", "backbone", "arm", "examples_per_class", "seeds"]}
        row |= {c: best[c] for c in ["noise", "points", "points_low", "points_high"]}
        if len(cross):
            c = cross.iloc[0]
            row |= {
                "decision": c.decision,
                "crossover": c.estimate if c.decision == learning_curves.REACHED else np.nan,
                "crossover_low": c.low if c.decision == learning_curves.REACHED else np.nan,
                "crossover_high": c.high if c.decision == learning_curves.REACHED else np.nan,
                **{k: c[k] for k in FROM_CROSSOVER},
            }
        row["beaten_by"] = _beaten_by(done, best, level, epsilon)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def size_text(n: float, cap: float) -> str:
    """Examples per class as the report and metrics print them: 3.1, 180, 1,200, >10,000 (beyond the cap)."""
    if not np.isfinite(n):
        return f">{cap:,.0f}"
    return f"{n:.1f}".removesuffix(".0") if n < 10 else f"{n:,.0f}"


def _interval(low: float, high: float, level: float) -> str:
    return f"[{level:.0%}: {low * 100:+.1f} to {high * 100:+.1f}]"


def line(row, margin: float, cap: float, level: float, classes: float = np.nan) -> str:
    """The answer of one `answers` row as a sentence; every number with its interval, none without one."""
    n = f"{row.examples_per_class:g}" if float(row.examples_per_class).is_integer() else "all"
    if np.isfinite(row.points_low):
        worth = (
            f"pretraining ({row.arm}) is worth {row.points * 100:+.1f} points "
            f"{_interval(row.points_low, row.points_high, level)} at {n} example"
            f"{'s' if n != '1' else ''} per class"
        )
    else:
        worth = (
            f"pretraining ({row.arm}) has no interval at {n} per class yet (one seed, no per-image outputs)"
        )
    if row.noise == "test images":
        worth += " (one seed: test-image noise only; add seeds with study.seeds or `make study-full`)"
    within = f"within ±{margin * 100:g} point{'s' if margin != 0.01 else ''}"
    asymptote = (
        f"the fitted gap at unlimited data is {row.asymptotic_gap * 100:+.1f} points "
        f"{_interval(row.asymptotic_gap_low, row.asymptotic_gap_high, level)}"
        if np.isfinite(row.asymptotic_gap_low)
        else ""
    )
    if row.decision == learning_curves.REACHED:
        then = (
            f"it stops mattering ({within}) from {size_text(row.crossover, cap)} "
            f"[{size_text(row.crossover_low, cap)}, {size_text(row.crossover_high, cap)}] per class"
        )
    elif row.decision == learning_curves.NOT_WITHIN:
        then = f"it still matters at any size: {asymptote}"
    elif row.decision == learning_curves.UNDECIDED:
        then = f"whether it stops mattering ({within}) is undecided" + (f": {asymptote}" if asymptote else "")
        if np.isfinite(row.seeds_needed):
            then += f"; about {row.seeds_needed:.0f} seeds would decide it"
        elif np.isfinite(row.test_images_needed):
            per_class = f", {row.test_images_needed / classes:,.0f} per class" if np.isfinite(classes) else ""
            then += (
                f"; no number of seeds would (the same test images score every seed), a test set of about "
                f"{row.test_images_needed:,.0f} images{per_class} would"
            )
    else:
        then = f"its crossover is {row.decision}"
    beaten = row.beaten_by if isinstance(row.beaten_by, str) else ""
    return f"{worth}; {then}" + (f"; ahead of it without pretraining: {beaten}." if beaten else ".")
