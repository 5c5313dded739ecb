"""Learning curves: test error against examples per class n, fitted, bootstrapped over seeds and extrapolated, and
the crossover: the size from which scratch stays within a margin of a pretrained arm.

Laws (error as a fraction of test images; the same laws fit a loss curve in nats):
- saturating power law  err(n) = e_inf + a·n^−b,  0 ≤ e_inf ≤ 1, a ≥ 0, 0 ≤ b ≤ 10 (Hestness et al. 2017);
- broken power law with one break (Caballero et al. 2022, eq. 1):
  err(n) = e_inf + a·n^−b·(1 + (n / break_n)^(1/sharpness))^(−(b_after − b)·sharpness), whose log-log slope is b
  well below break_n and b_after well above it; break_n is kept inside the measured sizes.

Scale of the fit: least squares on logit(error) = −log-odds(accuracy), against the per-size mean over seeds of
logit(error) (the log-odds mean of Kornblith et al. 2019), errors clipped to [ε, 1 − ε]. On the error scale itself
the noisy points at 1–2 per class (errors of 0.5, seeds 10–20 points apart) would set the fit, and the tail where
a crossover lies (errors of a few percent) would barely count; logit(error) ≈ log(error) for small errors, the
log-scale loss Caballero et al. fit with, and it is the study's log-odds scale, so every point counts by its relative
error and predictions stay inside (0, 1).

Choice of law: the corrected Akaike criterion on the m per-size means, AICc = m·ln(RSS/m) + 2k + 2k(k + 1)/(m − k − 1)
(Hurvich & Tsai 1989; k = 3 or 6 parameters), lower wins. The broken law is only a candidate from MIN_SIZES_BROKEN = 10
sizes: its AICc is infinite up to 7 sizes (six parameters would interpolate the points), and at 8 or 9 it would need
a residual sum of squares 10^−4.5 or 10^−2 times the power law's to win; at 10 sizes 1/20, at 12 1/5. RSS is floored
at m·1e−12 so noise-free data do not pick the larger law for a rounding difference.

Bootstrap over both sources of noise (the `noise` module): whole seeds (nested subset series) are drawn with
replacement and, inside each draw, the test images too (seeds.resample_images), the same draws for every arm of a
dataset and backbone (so paired arms stay paired, seed by seed and image by image); each replicate refits the law
chosen on all seeds, starting from its parameters. Intervals are percentile intervals. A single seed still has the
test images' interval. Cells stored without per-image outputs leave only the seeds: with 3 seeds that is only 10
distinct draws (rough intervals), and with 1 seed none.

Crossover: on a grid of PER_DECADE points per decade from the smallest measured size to a cap, the smallest n from
which on (up to the cap) the predicted accuracies satisfy scratch ≥ pretrained − margin. "From which on" rather than
"first touch": a curve pair that touches and parts again has not stopped mattering. inf = the fits do not meet
before the cap ("beyond cap"). Its interval: percentiles of the refits' crossovers, counting the replicates that
never meet as inf, taken without interpolation (numpy's "lower"/"higher"), so high = inf when more than the upper
tail never meets; `met_fraction` says how many met.

Backtest and trust: each law is refitted without the largest measured size (law chosen anew) and predicts it; the
absolute error is in accuracy (fraction). A crossover's backtest error is the larger of its two arms'. An
extrapolated crossover (beyond the largest size both arms were measured at) is trusted only when that backtest error
is at most the margin (the curves predicted one size ahead more closely than the difference they are asked to
resolve) and the crossover (or the cap, when beyond it) lies within MAX_EXTRAPOLATION times the largest measured
size. Without a backtest (fewer than MIN_SIZES + 1 sizes) it is not trusted.

The crossover as a decision, read off the fitted gap at unlimited data, e_inf(scratch) − e_inf(arm), and its t
interval over both sources of noise (`asymptotic_gap`):
- REACHED "at n* [low, high]" only when that interval lies below the margin (scratch within it, or ahead), the
  fitted curves meet before the cap, and the crossover is trusted (the backtest, a second gate);
- NOT_WITHIN when the interval lies above the margin: pretraining still matters at any size;
- BEHIND when the arm is behind scratch at every size measured (a baseline such as pixels, or a transfer that
  hurts): there is nothing for scratch to catch up;
- otherwise UNDECIDED, with the reason, the seeds that would decide it and, where no number of seeds would (every
  seed is scored on the same test images), the test images that would.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize

from . import noise
from .equivalence import seeds_to_decide, test_images_to_decide
from .scales import logit, sigmoid
from .seeds import ARM, SCRATCH, correct_tensor, resample_images, resample_seeds, resampled_means, seed_matrix

POWER_LAW, BROKEN = "power", "broken"
PARAMETERS = {POWER_LAW: ("e_inf", "a", "b"), BROKEN: ("e_inf", "a", "b", "b_after", "break_n", "sharpness")}
ALL_PARAMETERS = PARAMETERS[BROKEN]
MIN_SIZES = 4  # one more than the power law's parameters, so its fit has a residual
MIN_SIZES_BROKEN = 10  # module docstring
PER_DECADE = 100  # crossover grid: steps of 2.3 %
MAX_EXTRAPOLATION = 10.0  # times the largest measured size
MIN_MEAN_SQUARE = 1e-12  # floor of RSS / m in AICc
# the crossover as a decision (module docstring)
REACHED, NOT_WITHIN, UNDECIDED = "reached", "not within the margin at any size", "undecided"
BEHIND, NOT_FITTED = "behind scratch at every size", "not fitted"


def power_law(n, e_inf, a, b) -> np.ndarray:
    """e_inf + a·n^−b."""
    return e_inf + a * np.asarray(n, dtype=float) ** -b


def broken_power_law(n, e_inf, a, b, b_after, break_n, sharpness) -> np.ndarray:
    """Caballero et al. 2022, eq. 1 with one break (see module docstring); computed in logs so large n/break_n
    with a sharp break cannot overflow."""
    log_n = np.log(np.asarray(n, dtype=float))
    bend = np.logaddexp(0.0, (log_n - np.log(break_n)) / sharpness)
    return e_inf + a * np.exp(-b * log_n - (b_after - b) * sharpness * bend)


LAWS = {POWER_LAW: power_law, BROKEN: broken_power_law}
METHOD = {POWER_LAW: "dogbox", BROKEN: "trf"}


@dataclass(frozen=True)
class Curve:
    """A fitted law: `model` (POWER_LAW or BROKEN), `params` in the order of PARAMETERS[model], `rss` the sum of
    squared residuals on the fitted scale and `points` the number of sizes fitted."""

    model: str
    params: tuple[float, ...]
    rss: float
    points: int

    def __call__(self, n) -> np.ndarray:
        """The modelled error (fraction) or loss at n examples per class."""
        return LAWS[self.model](n, *self.params)

    @property
    def aicc(self) -> float:
        """Corrected Akaike criterion of the fit (module docstring); inf when m ≤ k + 1."""
        m, k = self.points, len(self.params)
        if m <= k + 1:
            return np.inf
        return m * np.log(max(self.rss / m, MIN_MEAN_SQUARE)) + 2 * k + 2 * k * (k + 1) / (m - k - 1)


def predict_accuracy(curve: Curve, n) -> np.ndarray:
    """Predicted test accuracy (fraction) at n examples per class from an error curve."""
    return 1 - np.clip(curve(n), 0.0, 1.0)


def _on_scale(values, scale: str, epsilon: float) -> np.ndarray:
    """logit for error fractions, log for positive values (losses)."""
    if scale == "logit":
        return logit(values, epsilon)
    return np.log(np.maximum(np.asarray(values, dtype=float), epsilon))


def _scale_slope(modelled: np.ndarray, scale: str, epsilon: float) -> np.ndarray:
    """Derivative of `_on_scale` at the modelled values (0 where clipping holds them constant)."""
    if scale == "logit":
        return ((modelled > epsilon) & (modelled < 1 - epsilon)) / (modelled * (1 - modelled))
    return (modelled > epsilon) / np.maximum(modelled, epsilon)


def _jacobian(model: str, sizes: np.ndarray, scale: str, epsilon: float):
    """Analytic Jacobian of a law's residuals on `scale` (several times faster than finite differences)."""
    log_n = np.log(sizes)

    def power(params):
        e_inf, a, b = params
        powers = np.exp(-b * log_n)
        slope = _scale_slope(e_inf + a * powers, scale, epsilon)
        return np.stack([slope, slope * powers, -slope * a * powers * log_n], axis=1)

    def broken(params):
        e_inf, a, b, b_after, break_n, sharpness = params
        u = (log_n - np.log(break_n)) / sharpness
        bend, weight = np.logaddexp(0.0, u), sigmoid(u)  # softplus(u) and its derivative
        shape = np.exp(-b * log_n - (b_after - b) * sharpness * bend)
        term = a * shape
        slope = _scale_slope(e_inf + term, scale, epsilon)
        columns = [
            np.ones_like(log_n),
            shape,
            term * (sharpness * bend - log_n),
            -term * sharpness * bend,
            term * (b_after - b) * weight / break_n,
            -term * (b_after - b) * (bend - weight * u),
        ]
        return slope[:, None] * np.stack(columns, axis=1)

    return {POWER_LAW: power, BROKEN: broken}[model]


def _least_squares(model: str, sizes, values, scale: str, epsilon: float, starts, bounds) -> Curve:
    """The best of scipy's bounded local least-squares fits from the given starts (dogbox for the power law, trf for
    the broken law: the faster of the two for each, and trf never ran out of evaluations on the broken law)."""
    target, law = _on_scale(values, scale, epsilon), LAWS[model]
    lower, upper = (np.asarray(bound, dtype=float) for bound in bounds)
    jacobian = _jacobian(model, sizes, scale, epsilon)

    def residuals(params):
        return _on_scale(law(sizes, *params), scale, epsilon) - target

    best = None
    for start in starts:
        result = optimize.least_squares(
            residuals, np.clip(start, lower, upper), jac=jacobian, bounds=(lower, upper), method=METHOD[model]
        )
        if best is None or result.cost < best.cost:
            best = result
    return Curve(model, tuple(float(x) for x in best.x), rss=2 * float(best.cost), points=len(sizes))


def _upper_asymptote(values, scale: str) -> float:
    return 1.0 if scale == "logit" else float(np.max(values))


def fit_power_law(sizes, values, scale: str, epsilon: float, start=None) -> Curve:
    """Saturating power law through (sizes, values): sizes in examples per class, values per-size error fractions
    (scale "logit") or losses (scale "log"); `epsilon` clips the errors to [ε, 1 − ε] (scales.clip_epsilon) or
    floors the losses. Starts from `start` (parameters of an earlier fit), else from three guesses of e_inf (0, half
    and 0.9 of the smallest value) with a and b from a log-log line."""
    sizes, values = np.asarray(sizes, dtype=float), np.asarray(values, dtype=float)
    if start is None:
        start = []
        for e_inf in np.array([0.0, 0.5, 0.9]) * np.min(values):
            slope, intercept = np.polyfit(np.log(sizes), np.log(np.maximum(values - e_inf, epsilon)), 1)
            start.append((e_inf, np.exp(intercept), np.clip(-slope, 0.05, 5.0)))
    else:
        start = [start]
    bounds = ([0.0, 0.0, 0.0], [_upper_asymptote(values, scale), np.inf, 10.0])
    return _least_squares(POWER_LAW, sizes, values, scale, epsilon, start, bounds)


def fit_broken_power_law(sizes, values, scale: str, epsilon: float, start=None) -> Curve:
    """Broken power law with one break through (sizes, values) (units as `fit_power_law`). Starts from `start`,
    else from the power law's fit with the break between each pair of neighbouring sizes, the slope after it
    0.3 or 3 times the slope before, and sharpness 0.5."""
    sizes, values = np.asarray(sizes, dtype=float), np.asarray(values, dtype=float)
    if start is None:
        e_inf, a, b = fit_power_law(sizes, values, scale, epsilon).params
        breaks = np.sqrt(sizes[:-1] * sizes[1:])
        start = [(e_inf, a, b, b * factor, d, 0.5) for d in breaks for factor in (0.3, 3.0)]
    else:
        start = [start]
    bounds = (
        [0.0, 0.0, 0.0, 0.0, sizes[0], 0.05],
        [_upper_asymptote(values, scale), np.inf, 10.0, 10.0, sizes[-1], 5.0],
    )
    return _least_squares(BROKEN, sizes, values, scale, epsilon, start, bounds)


FITTERS = {POWER_LAW: fit_power_law, BROKEN: fit_broken_power_law}


def fit_candidates(sizes, values, scale: str, epsilon: float) -> list[Curve]:
    """The power law, and the broken law too from MIN_SIZES_BROKEN sizes. Raises ValueError below MIN_SIZES."""
    if len(sizes) < MIN_SIZES:
        raise ValueError(f"a learning curve needs at least {MIN_SIZES} sizes, got {len(sizes)}")
    candidates = [fit_power_law(sizes, values, scale, epsilon)]
    if len(sizes) >= MIN_SIZES_BROKEN:
        candidates.append(fit_broken_power_law(sizes, values, scale, epsilon))
    return candidates


def fit_curve(sizes, values, scale: str, epsilon: float) -> Curve:
    """The candidate law with the lowest AICc (module docstring) through (sizes, values)."""
    return min(fit_candidates(sizes, values, scale, epsilon), key=lambda curve: curve.aicc)


def backtest(sizes, values, scale: str, epsilon: float) -> float:
    """|predicted − measured| at the largest size, the law chosen and fitted without it (units of `values`: for
    errors, accuracy as a fraction). NaN with fewer than MIN_SIZES + 1 sizes."""
    sizes, values = np.asarray(sizes, dtype=float), np.asarray(values, dtype=float)
    if len(sizes) < MIN_SIZES + 1:
        return np.nan
    curve = fit_curve(sizes[:-1], values[:-1], scale, epsilon)
    return float(abs(curve(sizes[-1]) - values[-1]))


@dataclass(frozen=True)
class ArmFit:
    """One arm's learning curve. `key`: (dataset, backbone, regime, arm); `sizes`: measured examples per class,
    ascending; `accuracy`: per-size log-odds mean accuracy over seeds (fraction); `curve`: the chosen law (None
    below MIN_SIZES sizes); `candidates`: every law tried; `replicates`: refits on the bootstrap draws of seeds
    (None where a draw left fewer than MIN_SIZES sizes; empty with one seed and no per-image outputs) on the
    bootstrap draws of seeds and test images; `seed_replicates`: refits on the same draws of seeds alone (their
    spread is the seeds' part of the noise); `images`: test images resampled (0: none); `backtest_abs_error`
    (fraction)."""

    key: tuple
    sizes: np.ndarray
    accuracy: np.ndarray
    seeds: int
    curve: Curve | None
    candidates: tuple[Curve, ...]
    replicates: tuple[Curve | None, ...]
    backtest_abs_error: float
    seed_replicates: tuple[Curve | None, ...] = ()
    images: int = 0


def _refit(curve: Curve, sizes: np.ndarray, logit_errors: np.ndarray, epsilon: float) -> Curve | None:
    keep = ~np.isnan(logit_errors)
    if keep.sum() < MIN_SIZES:
        return None
    return FITTERS[curve.model](
        sizes[keep], sigmoid(logit_errors[keep]), "logit", epsilon, start=curve.params
    )


def fit_arm(
    key: tuple,
    sizes: np.ndarray,
    accuracies: np.ndarray,
    draws: np.ndarray,
    epsilon: float,
    resampled: np.ndarray | None = None,
    images: int = 0,
) -> ArmFit:
    """Fit one arm from its (sizes × seeds) accuracy array (NaN = missing cell) and refit it on each row of
    seed-index `draws` (see seeds.resample_seeds). `resampled`: the cells' accuracies under each replicate's draw of
    test images, (replicates × sizes × seeds) (seeds.resample_images), from a test set of `images` images; without it
    the seeds are the only noise."""
    logit_errors = logit(1 - accuracies, epsilon)
    means = np.nanmean(logit_errors, axis=1)
    errors, seeds = sigmoid(means), int(np.any(~np.isnan(accuracies), axis=0).sum())
    if len(sizes) < MIN_SIZES:
        return ArmFit(key, sizes, 1 - errors, seeds, None, (), (), np.nan)
    candidates = fit_candidates(sizes, errors, "logit", epsilon)
    curve = min(candidates, key=lambda c: c.aicc)
    # a draw's means depend only on which seeds it holds, not their order: 3 seeds give 10 distinct draws, so
    # each distinct draw is refitted once (1000 replicates of 4 arms: 11.6 s -> 0.2 s)
    seed_replicates = ()
    if seeds > 1:
        distinct, which = np.unique(np.sort(draws, axis=1), axis=0, return_inverse=True)
        refits = [_refit(curve, sizes, row, epsilon) for row in resampled_means(logit_errors, distinct)]
        seed_replicates = tuple(refits[i] for i in np.ravel(which))
    replicates = seed_replicates
    if resampled is not None:
        drawn = logit(1 - resampled, epsilon)[
            np.arange(len(draws))[:, None], :, draws
        ]  # replicates × seeds × sizes
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", RuntimeWarning
            )  # a size no drawn seed has: NaN, left out of the refit
            rows = np.nanmean(drawn, axis=1)
        replicates = tuple(_refit(curve, sizes, row, epsilon) for row in rows)
    return ArmFit(
        key,
        sizes,
        1 - errors,
        seeds,
        curve,
        tuple(candidates),
        replicates,
        backtest(sizes, errors, "logit", epsilon),
        seed_replicates,
        0 if resampled is None else images,
    )


def fit_arms(cells: pd.DataFrame, n_boot: int, epsilon: float, seed: int = 0) -> list[ArmFit]:
    """Every arm's learning curve with `n_boot` bootstrap refits over seeds and test images (module docstring),
    one draw per dataset × backbone shared by its arms.

    `cells`: one row per finished cell with columns dataset, backbone, regime, arm, examples_per_class, seed,
    test_accuracy (fraction), and test_logits, test_labels where stored: the test images are resampled when every
    cell of the dataset × backbone has them. Accuracies are clipped to [ε, 1 − ε] (`epsilon`, scales.clip_epsilon).
    `seed` seeds the resampling.
    """
    fits = []
    for _, group in cells.groupby(["dataset", "backbone"], sort=True):
        seeds = np.sort(group.seed.unique())
        arms = [(key, part, correct_tensor(part, seeds)) for key, part in group.groupby(ARM, sort=True)]
        images = _test_set_size([correct for *_, correct in arms]) if n_boot else 0
        draws = resample_seeds(len(seeds), n_boot, seed, images=images > 0)
        weights = resample_images(images, n_boot, seed) if images else None
        for key, part, correct in arms:
            sizes, accuracies = seed_matrix(part, "test_accuracy", seeds)
            resampled = under_draws(correct[1], weights) if images else None
            fits.append(fit_arm(key, sizes, accuracies, draws, epsilon, resampled, images))
    return fits


def _test_set_size(tensors: list) -> int:
    """The number of test images every arm's cells were scored on (seeds.correct_tensor's results); 0 when a cell
    lacks per-image outputs or the arms disagree."""
    lengths = {0 if tensor is None else tensor[1].shape[2] for tensor in tensors}
    return lengths.pop() if len(lengths) == 1 else 0


def under_draws(correct: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Each cell's accuracy under each draw of test images: (draws × sizes × seeds), from per-image correctness
    (sizes × seeds × images, NaN for a missing cell) and image weights (draws × images, seeds.resample_images)."""
    return np.einsum("kni,bi->bkn", correct, weights) / weights.shape[1]


def _interval(values, level: float) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return np.nan, np.nan
    return float(np.quantile(values, (1 - level) / 2)), float(np.quantile(values, (1 + level) / 2))


def learning_curves(fits: list[ArmFit], level: float) -> pd.DataFrame:
    """One row per arm: dataset, backbone, regime, arm, model, sizes, seeds, then every parameter of
    ALL_PARAMETERS with `_low` and `_high` (percentile bootstrap interval at `level`; NaN where the law lacks it),
    rmse (fit against the per-size log-odds mean accuracies, fraction), aicc_power, aicc_broken, backtest_abs_error
    (fraction), replicates (bootstrap refits that succeeded)."""
    rows = []
    for fit in fits:
        row = dict(zip(ARM, fit.key)) | {
            "model": fit.curve.model if fit.curve else None,
            "sizes": len(fit.sizes),
            "seeds": fit.seeds,
        }
        refits = [r for r in fit.replicates if r is not None]
        for i, name in enumerate(ALL_PARAMETERS):
            inside = fit.curve is not None and i < len(fit.curve.params)
            row[name] = fit.curve.params[i] if inside else np.nan
            row[f"{name}_low"], row[f"{name}_high"] = (
                _interval([r.params[i] for r in refits], level) if inside else (np.nan, np.nan)
            )
        aicc = {c.model: c.aicc for c in fit.candidates}
        row |= {
            "rmse": (
                float(np.sqrt(np.mean((predict_accuracy(fit.curve, fit.sizes) - fit.accuracy) ** 2)))
                if fit.curve
                else np.nan
            ),
            "aicc_power": aicc.get(POWER_LAW, np.nan),
            "aicc_broken": aicc.get(BROKEN, np.nan),
            "backtest_abs_error": fit.backtest_abs_error,
            "replicates": len(refits),
        }
        rows.append(row)
    columns = [
        *ARM,
        "model",
        "sizes",
        "seeds",
        *[f"{p}{s}" for p in ALL_PARAMETERS for s in ("", "_low", "_high")],
        "rmse",
        "aicc_power",
        "aicc_broken",
        "backtest_abs_error",
        "replicates",
    ]
    return pd.DataFrame(rows, columns=columns)


def prediction_band(fit: ArmFit, n, level: float) -> pd.DataFrame:
    """Predicted accuracy (fraction) at sizes `n` with its percentile bootstrap band: columns n, accuracy, low,
    high (NaN without refits)."""
    n = np.asarray(n, dtype=float)
    refits = np.array([predict_accuracy(r, n) for r in fit.replicates if r is not None]).reshape(-1, len(n))
    low, high = (
        (np.quantile(refits, (1 - level) / 2, axis=0), np.quantile(refits, (1 + level) / 2, axis=0))
        if len(refits)
        else (np.full(len(n), np.nan),) * 2
    )
    return pd.DataFrame({"n": n, "accuracy": predict_accuracy(fit.curve, n), "low": low, "high": high})


def refit_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval at `level` of values read off the refits (sizes, inf for "not before the cap", or
    ratios of sizes), without interpolation (numpy's "lower"/"higher"): each end is a value some refit gave; NaN
    (a failed refit) is ignored; (NaN, NaN) without any."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return np.nan, np.nan
    return (
        float(np.quantile(values, (1 - level) / 2, method="lower")),
        float(np.quantile(values, (1 + level) / 2, method="higher")),
    )


def size_grid(smallest: float, cap: float, per_decade: int = PER_DECADE) -> np.ndarray:
    """Examples per class from `smallest` to `cap`, evenly spaced in log n."""
    return np.geomspace(smallest, cap, int(np.ceil(np.log10(cap / smallest) * per_decade)) + 1)


def crossover_size(scratch: Curve, pretrained: Curve, grid: np.ndarray, margin: float) -> float:
    """Smallest n of `grid` from which on (to the grid's end) predicted scratch accuracy ≥ predicted pretrained
    accuracy − margin (fraction); inf when that does not hold at the grid's end."""
    within = predict_accuracy(scratch, grid) >= predict_accuracy(pretrained, grid) - margin
    settled = np.logical_and.accumulate(within[::-1])[::-1]
    return float(grid[np.argmax(settled)]) if settled[-1] else np.inf


def _status(estimate: float, smallest: float, largest: float) -> str:
    if np.isinf(estimate):
        return "beyond cap"
    if estimate <= smallest:
        return "at smallest size"
    return "extrapolated" if estimate > largest else "within measured sizes"


def asymptotic_gap(scratch: ArmFit, pretrained: ArmFit) -> noise.Estimate:
    """The fitted gap at unlimited data, e_inf(scratch) − e_inf(arm) (accuracy, fraction; > 0: the arm stays ahead),
    with its standard error from both sources (the `noise` module): the seeds' part is the spread of the refits on
    seeds alone, scaled by S / (S − 1) (a bootstrap's variance of a mean of S is (S − 1) / S of the sample
    variance's); the test images' part is what the refits on seeds and test images add to it."""
    mean = scratch.curve.params[0] - pretrained.curve.params[0]

    def spread(left, right) -> float:
        gaps = [s.params[0] - p.params[0] for s, p in zip(left, right) if s is not None and p is not None]
        return float(np.var(gaps, ddof=1)) if len(gaps) > 1 else np.nan

    seeds, images = pretrained.seeds, pretrained.images
    seed_part = spread(scratch.seed_replicates, pretrained.seed_replicates)
    per_seed = seed_part * seeds**2 / (seeds - 1) if seeds > 1 else np.nan
    per_image = np.nan
    if images:
        total = spread(scratch.replicates, pretrained.replicates)
        per_image = max(total - (seed_part if np.isfinite(seed_part) else 0.0), 0.0) * images
    return noise.combine(mean, per_seed, seeds, per_image, images)


def _behind_everywhere(scratch: ArmFit, pretrained: ArmFit) -> bool:
    """Whether the arm's mean accuracy is below scratch's at every size both measured."""
    common, mine, theirs = np.intersect1d(pretrained.sizes, scratch.sizes, return_indices=True)
    return len(common) > 0 and bool(np.all(pretrained.accuracy[mine] < scratch.accuracy[theirs]))


def _decision(interval, estimate: float, trusted: bool, margin: float, behind: bool) -> tuple[str, str]:
    """(decision, reason) of a crossover (module docstring)."""
    low, high = interval
    if behind:
        return BEHIND, "the arm is behind scratch at every size measured"
    if np.isnan(high):
        return UNDECIDED, "no interval: one seed and no per-image test outputs"
    if low > margin:
        return NOT_WITHIN, "the fitted gap at unlimited data exceeds the margin"
    if high >= margin:
        return UNDECIDED, "the interval of the fitted gap at unlimited data straddles the margin"
    if not np.isfinite(estimate):
        return UNDECIDED, "the fitted curves come within the margin only beyond the cap"
    if not trusted:
        return UNDECIDED, "an extrapolation the backtest does not support"
    return REACHED, ""


def _crossover_row(scratch: ArmFit, pretrained: ArmFit, margin: float, cap: float, level: float) -> dict:
    row = dict(zip(ARM, pretrained.key)) | {"margin": margin, "cap": cap}
    if scratch.curve is None or pretrained.curve is None:
        return row | {"status": "not fitted", "extrapolated": False, "trusted": False, "decision": NOT_FITTED}
    grid = size_grid(min(scratch.sizes[0], pretrained.sizes[0]), cap)
    largest = min(scratch.sizes[-1], pretrained.sizes[-1])
    estimate = crossover_size(scratch.curve, pretrained.curve, grid, margin)
    pairs = [
        (s, p) for s, p in zip(scratch.replicates, pretrained.replicates) if s is not None and p is not None
    ]
    met = {}  # replicates may share refits (see fit_arm): one crossover per distinct pair
    for s, p in pairs:
        if (id(s), id(p)) not in met:
            met[id(s), id(p)] = crossover_size(s, p, grid, margin)
    replicates = np.array([met[id(s), id(p)] for s, p in pairs])
    low, high = refit_interval(replicates, level)
    backtest_error = float(np.maximum(scratch.backtest_abs_error, pretrained.backtest_abs_error))
    extrapolated = bool(estimate > largest)
    reach_ok = min(estimate, cap) <= MAX_EXTRAPOLATION * largest
    trusted = bool(not extrapolated or (backtest_error <= margin and reach_ok))
    gap = asymptotic_gap(scratch, pretrained)
    gap_low, gap_high = gap.interval(level)
    decision, reason = _decision(
        (gap_low, gap_high), estimate, trusted, margin, _behind_everywhere(scratch, pretrained)
    )
    seeds_needed = images_needed = np.nan
    if decision == UNDECIDED and np.isfinite(gap_high):
        alpha = (1 - level) / 2  # each side of the two-sided interval the decision reads
        seeds_needed = seeds_to_decide(gap, margin, alpha)
        if np.isinf(seeds_needed):
            images_needed = test_images_to_decide(gap, margin, alpha)
    return row | {
        "estimate": estimate,
        "low": float(low),
        "high": float(high),
        "met_fraction": float(np.mean(np.isfinite(replicates))) if len(replicates) else np.nan,
        "largest_measured": largest,
        "extrapolated": extrapolated,
        "backtest_abs_error": backtest_error,
        "trusted": trusted,
        "status": _status(estimate, grid[0], largest),
        "asymptotic_gap": gap.mean,
        "asymptotic_gap_low": gap_low,
        "asymptotic_gap_high": gap_high,
        "noise": gap.sources,
        "decision": decision,
        "reason": reason,
        "seeds_needed": seeds_needed,
        "test_images_needed": images_needed,
    }


def crossovers(
    fits: list[ArmFit], margin: float, cap: float, level: float, scratch: str = SCRATCH
) -> pd.DataFrame:
    """Per non-scratch arm: where scratch's fitted curve stays within `margin` (accuracy, fraction) of it.

    Returns columns dataset, backbone, regime, arm, margin, cap, estimate, low, high (examples per class; inf =
    beyond the cap), met_fraction (bootstrap refits that met before the cap), largest_measured, extrapolated
    (estimate beyond largest_measured), backtest_abs_error (fraction, the worse of the two arms), trusted (module
    docstring), status ("within measured sizes", "at smallest size", "extrapolated", "beyond cap" or "not fitted"),
    asymptotic_gap with _low and _high (`asymptotic_gap`, fraction, its t interval at `level`), noise (the sources
    it carries), decision (REACHED, NOT_WITHIN, UNDECIDED, BEHIND or NOT_FITTED; module docstring), reason (why
    undecided), seeds_needed and test_images_needed (undecided only: equivalence.seeds_to_decide, and where no
    number of seeds would, equivalence.test_images_to_decide, in all; at α = (1 − level) / 2).
    """
    rows = []
    for group in sorted({fit.key[:2] for fit in fits}):
        arms = [fit for fit in fits if fit.key[:2] == group]
        base = [fit for fit in arms if fit.key[2] == scratch]
        rows += [
            _crossover_row(base[0], fit, margin, cap, level) for fit in arms if base and fit.key[2] != scratch
        ]
    columns = [
        *ARM,
        "margin",
        "cap",
        "estimate",
        "low",
        "high",
        "met_fraction",
        "largest_measured",
        "extrapolated",
        "backtest_abs_error",
        "trusted",
        "status",
        "asymptotic_gap",
        "asymptotic_gap_low",
        "asymptotic_gap_high",
        "noise",
        "decision",
        "reason",
        "seeds_needed",
        "test_images_needed",
    ]
    return pd.DataFrame(rows, columns=columns)
