"""Effective data transferred (Hernandez, Kaplan, Henighan & McCandlish 2021, "Scaling Laws for Transfer"):
D_T = D_E − D_F, where D_F is the data the pretrained arm was trained on (here n examples per class) and D_E the data
a from-scratch model needs to reach the same test loss. Read off scratch's test *loss* (mean cross-entropy, nats), as
they do: accuracy saturates and is floored at chance, the loss keeps measuring. All sizes are examples per class.
The losses are temperature-scaled on each cell's validation split first where the cells stored their per-image
outputs (the `calibration` module): otherwise D_T would measure calibration, not transfer. Only sizes where the arm's
mean test accuracy is above scratch's get a D_T (NOT_AHEAD elsewhere): an arm behind scratch transferred nothing.

D_E: scratch's loss per size is the mean over seeds; its running minimum (a tuned learner does not get worse with
more data, so a rise is noise) is interpolated linearly in (log n, log loss) at its first crossing of the pretrained
arm's mean loss at n. Censored:
- not reached within the measured sizes: D_E > scratch's largest size, a "lower bound" (D_T ≥ largest − n); besides,
  a marked extrapolation from the saturating power law fitted to scratch's loss on the log scale
  (learning_curves.fit_power_law), inf when that does not get there before the cap, and made only up to
  MAX_EXTRAPOLATION times scratch's largest size (the crossover's gate);
- reached already at scratch's smallest size: D_E ≤ smallest, an "upper bound".
Arms without a finite loss (e.g. the pixels baselines) are left out.

Bootstrap: whole seeds drawn with replacement, one draw per dataset shared by every arm and backbone (subsets depend
on the dataset and seed only), so arms and backbones stay paired. Percentile intervals are taken without
interpolation, censored draws ordered below (upper bound) or above (lower bound) every estimate; a percentile that
falls on a censored draw becomes its conservative end: low = scratch's largest size or 0, high = inf or scratch's
smallest size (then less n, for D_T). high = inf means "more than the measured sizes can tell".

Exponents: Hernandez et al. fit D_T = k·(D_F)^α·N^β (N: parameters of the model). α is the slope of log D_T on
log n over the sizes whose D_T is an uncensored, positive estimate, and only from MIN_UNCENSORED = 4 such sizes;
otherwise "not estimable". With two or more backbones of one family (different N), α and β come from one least-squares
fit of log D_T = log k + α log n + β log N over their pooled uncensored points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .learning_curves import MAX_EXTRAPOLATION, MIN_SIZES, Curve, fit_power_law
from .seeds import ARM, SCRATCH, resample_seeds, resampled_means, seed_matrix

ESTIMATE, LOWER_BOUND, UPPER_BOUND, NOT_AHEAD = "estimate", "lower bound", "upper bound", "not ahead"
MIN_UNCENSORED = 4
# nats: scratch's mean losses are floored here for its log-scale fit, far below any loss measured
LOSS_FLOOR = 1e-3


def scratch_size_for_loss(sizes, losses, target: float) -> tuple[float, str]:
    """(D_E, kind): examples per class at which scratch's loss curve (`losses`, nats, at ascending `sizes`) reaches
    `target` (module docstring). kind ESTIMATE; or (smallest size, UPPER_BOUND); or (largest size, LOWER_BOUND)."""
    sizes, best = np.asarray(sizes, dtype=float), np.minimum.accumulate(np.asarray(losses, dtype=float))
    if best[0] <= target:
        return float(sizes[0]), UPPER_BOUND
    if best[-1] > target:
        return float(sizes[-1]), LOWER_BOUND
    i = int(np.argmax(best <= target))  # best[i - 1] > target ≥ best[i]
    x, y = np.log(sizes[i - 1 : i + 1]), np.log(best[i - 1 : i + 1])
    return float(np.exp(x[0] + (np.log(target) - y[0]) / (y[1] - y[0]) * (x[1] - x[0]))), ESTIMATE


def size_for_loss_from_fit(curve: Curve, target: float, cap: float) -> float:
    """n at which a fitted loss curve L(n) = L_inf + a·n^−b reaches `target` (nats); inf beyond `cap` or never."""
    l_inf, a, b = curve.params
    if target <= l_inf or a <= 0 or b <= 0:
        return np.inf
    n = ((target - l_inf) / a) ** (-1 / b)
    return float(n) if n <= cap else np.inf


def _draw_value(sizes, losses, target) -> float:
    """One bootstrap draw's D_E, censored values coded as inf (lower bound) or 0 (upper bound)."""
    keep = ~np.isnan(losses)
    if np.isnan(target) or not keep.any():
        return np.nan
    n_e, kind = scratch_size_for_loss(sizes[keep], losses[keep], target)
    return {ESTIMATE: n_e, LOWER_BOUND: np.inf, UPPER_BOUND: 0.0}[kind]


@dataclass(frozen=True)
class Transfer:
    """One pretrained arm against scratch on loss. `key`: (dataset, backbone, regime, arm); per size of the arm
    (`sizes`, ascending): `loss` (mean over seeds, nats), `n_effective` (D_E), `kind`, `n_extrapolated` (D_E from
    scratch's loss fit, lower-bound sizes only, else NaN), and `replicates` (n_boot × sizes D_E of the bootstrap
    draws, censored coded inf / 0, NaN where a draw lacks the cells); `scratch_range`: scratch's smallest and
    largest measured sizes."""

    key: tuple
    scratch_range: tuple[float, float]
    sizes: np.ndarray
    loss: np.ndarray
    n_effective: np.ndarray
    kind: tuple[str, ...]
    n_extrapolated: np.ndarray
    replicates: np.ndarray


def _arm_transfer(key, scratch_curve, sizes, losses, ahead, draws, fit: Curve | None, cap: float) -> Transfer:
    """`scratch_curve`: (sizes, per-size mean losses, resampled means); `losses`: the arm's (sizes × seeds) array;
    `ahead`: per size whether the arm's mean accuracy is above scratch's (elsewhere nothing was transferred)."""
    s_sizes, s_loss, s_draws = scratch_curve
    loss, loss_draws = np.nanmean(losses, axis=1), resampled_means(losses, draws)
    loss, loss_draws = np.where(ahead, loss, np.nan), np.where(ahead, loss_draws, np.nan)
    point = [
        scratch_size_for_loss(s_sizes, s_loss, target) if np.isfinite(target) else (np.nan, NOT_AHEAD)
        for target in loss
    ]
    reach = MAX_EXTRAPOLATION * s_sizes[-1]  # as far as a crossover may be extrapolated
    extrapolated = [
        size_for_loss_from_fit(fit, target, cap) if kind == LOWER_BOUND and fit is not None else np.nan
        for target, (_, kind) in zip(loss, point)
    ]
    extrapolated = [n if not np.isfinite(n) or n <= reach else np.nan for n in extrapolated]
    replicates = np.array(
        [[_draw_value(s_sizes, s_row, target) for target in row] for s_row, row in zip(s_draws, loss_draws)]
    ).reshape(len(draws), len(sizes))
    return Transfer(
        key,
        (float(s_sizes[0]), float(s_sizes[-1])),
        sizes,
        loss,
        np.array([n for n, _ in point]),
        tuple(k for _, k in point),
        np.array(extrapolated, dtype=float),
        replicates,
    )


def _mean_accuracy(cells: pd.DataFrame, sizes: np.ndarray) -> np.ndarray:
    """Mean test accuracy over seeds at each of `sizes` (NaN where unmeasured)."""
    return cells.groupby("examples_per_class").test_accuracy.mean().reindex(sizes).to_numpy(dtype=float)


def effective_transfers(
    cells: pd.DataFrame,
    n_boot: int,
    cap: float,
    seed: int = 0,
    scratch: str = SCRATCH,
    loss: str = "test_loss",
) -> list[Transfer]:
    """D_E per non-scratch arm and size, with bootstrap draws over seeds, at the sizes where the arm's mean test
    accuracy is above scratch's (elsewhere kind NOT_AHEAD).

    `cells`: one row per finished cell with columns dataset, backbone, regime, arm, examples_per_class, seed,
    test_accuracy and the `loss` column (mean cross-entropy, nats: the test loss, or calibration.calibrated_losses);
    rows without a finite loss are ignored. `seed` seeds the resampling.
    """
    cells = cells[np.isfinite(cells[loss])]
    transfers = []
    for _, data in cells.groupby("dataset", sort=True):
        seeds = np.sort(data.seed.unique())
        draws = resample_seeds(len(seeds), n_boot, seed)
        for _, group in data.groupby("backbone", sort=True):
            base = group[group.regime == scratch]
            if base.empty:
                continue
            s_sizes, s_losses = seed_matrix(base, loss, seeds)
            s_loss = np.nanmean(s_losses, axis=1)
            fit = fit_power_law(s_sizes, s_loss, "log", LOSS_FLOOR) if len(s_sizes) >= MIN_SIZES else None
            curve = (s_sizes, s_loss, resampled_means(s_losses, draws))
            for key, part in group[group.regime != scratch].groupby(ARM, sort=True):
                sizes, losses = seed_matrix(part, loss, seeds)
                ahead = _mean_accuracy(part, sizes) > _mean_accuracy(base, sizes)
                transfers.append(_arm_transfer(key, curve, sizes, losses, ahead, draws, fit, cap))
    return transfers


def _bounds(draws, scratch_range: tuple[float, float], level: float) -> tuple[float, float]:
    """Percentile interval of D_E draws coded as in `Transfer`, censored ends made conservative (module docstring)."""
    draws = draws[~np.isnan(draws)]
    if len(draws) == 0:
        return np.nan, np.nan
    low = float(np.quantile(draws, (1 - level) / 2, method="lower"))
    high = float(np.quantile(draws, (1 + level) / 2, method="higher"))
    return (scratch_range[1] if np.isinf(low) else low), (scratch_range[0] if high == 0 else high)


def effective_data(transfers: list[Transfer], level: float) -> pd.DataFrame:
    """One row per arm and size: dataset, backbone, regime, arm, examples_per_class, pretrained_loss (nats),
    n_effective (D_E), transferred (D_T = D_E − n), low, high (percentile bootstrap interval of D_T; inf = beyond
    the measured sizes), kind (ESTIMATE, LOWER_BOUND: D_T ≥ transferred, UPPER_BOUND: D_T ≤ transferred),
    uncensored_fraction (bootstrap draws with an estimate), n_extrapolated and transferred_extrapolated (from
    scratch's loss fit, lower-bound rows only; inf = beyond the cap). Sizes in examples per class."""
    rows = []
    for t in transfers:
        for i, n in enumerate(t.sizes):
            draws = t.replicates[:, i]
            low, high = _bounds(draws, t.scratch_range, level)
            valid = draws[~np.isnan(draws)]
            rows.append(
                dict(zip(ARM, t.key))
                | {
                    "examples_per_class": n,
                    "pretrained_loss": t.loss[i],
                    "n_effective": t.n_effective[i],
                    "transferred": t.n_effective[i] - n,
                    "low": low - n,
                    "high": high - n,
                    "kind": t.kind[i],
                    "uncensored_fraction": float(np.mean(np.isfinite(valid) & (valid > 0)))
                    if len(valid)
                    else np.nan,
                    "n_extrapolated": t.n_extrapolated[i],
                    "transferred_extrapolated": t.n_extrapolated[i] - n,
                }
            )
    columns = [
        *ARM,
        "examples_per_class",
        "pretrained_loss",
        "n_effective",
        "transferred",
        "low",
        "high",
        "kind",
        "uncensored_fraction",
        "n_extrapolated",
        "transferred_extrapolated",
    ]
    return pd.DataFrame(rows, columns=columns)


def _usable(sizes: np.ndarray, n_effective: np.ndarray) -> np.ndarray:
    """Sizes whose D_E is an uncensored estimate with positive D_T (censored draws are coded inf / 0)."""
    return np.isfinite(n_effective) & (n_effective - sizes > 0)


def fit_exponents(sizes, transferred, parameters=None) -> tuple[float, ...]:
    """Least squares of log D_T on log n (and log N when `parameters` is given, one N per point): returns
    (log k, α) or (log k, α, β); NaN when fewer than MIN_UNCENSORED distinct sizes (or fewer than two distinct N,
    or no point to spare) make the fit determined."""
    sizes, transferred = np.asarray(sizes, dtype=float), np.asarray(transferred, dtype=float)
    columns = [np.ones_like(sizes), np.log(sizes)]
    if parameters is not None:
        columns.append(np.log(np.asarray(parameters, dtype=float)))
    enough = len(np.unique(sizes)) >= MIN_UNCENSORED and len(sizes) > len(columns)
    if parameters is not None:
        enough = enough and len(np.unique(parameters)) >= 2
    if not enough:
        return (np.nan,) * len(columns)
    return tuple(np.linalg.lstsq(np.stack(columns, axis=1), np.log(transferred), rcond=None)[0])


def _pooled(transfers: list[Transfer], parameters: list[float], draw: int | None):
    """Pooled (n, D_T, N) of the usable points, from the point estimates (draw None) or one bootstrap draw."""
    sizes, transferred, counts = [], [], []
    for t, count in zip(transfers, parameters):
        n_e = t.n_effective if draw is None else t.replicates[draw]
        n_e = np.where([k == ESTIMATE for k in t.kind], n_e, np.nan) if draw is None else n_e
        keep = _usable(t.sizes, n_e)
        sizes += list(t.sizes[keep])
        transferred += list(n_e[keep] - t.sizes[keep])
        counts += [count] * int(keep.sum())
    return np.array(sizes), np.array(transferred), np.array(counts)


def _exponent_row(transfers: list[Transfer], parameters: list[float] | None, level: float) -> dict:
    counts = parameters or [1.0] * len(transfers)
    joint = parameters is not None
    sizes, transferred, n_params = _pooled(transfers, counts, None)
    point = fit_exponents(sizes, transferred, n_params if joint else None)
    draws = []
    for b in range(len(transfers[0].replicates)):
        d_sizes, d_transferred, d_params = _pooled(transfers, counts, b)
        draws.append(fit_exponents(d_sizes, d_transferred, d_params if joint else None))
    draws = np.array(draws).reshape(-1, len(point))
    estimable = ~np.isnan(draws[:, 1])
    row = {
        "points": len(sizes),
        "alpha": point[1],
        "beta": point[2] if joint else np.nan,
        "estimable_fraction": float(estimable.mean()) if len(draws) else np.nan,
        "status": "estimated" if not np.isnan(point[1]) else "not estimable",
    }
    for name, column in (("alpha", 1), ("beta", 2)):
        inside = column < len(point) and not np.isnan(point[column]) and estimable.any()
        row[f"{name}_low"], row[f"{name}_high"] = (
            (
                float(np.quantile(draws[estimable, column], (1 - level) / 2)),
                float(np.quantile(draws[estimable, column], (1 + level) / 2)),
            )
            if inside
            else (np.nan, np.nan)
        )
    return row


EXPONENT_COLUMNS = [
    "points",
    "alpha",
    "alpha_low",
    "alpha_high",
    "beta",
    "beta_low",
    "beta_high",
    "estimable_fraction",
    "status",
]


def transfer_exponents(transfers: list[Transfer], level: float) -> pd.DataFrame:
    """α of D_T ∝ n^α per arm (module docstring). Columns dataset, backbone, regime, arm, points (usable sizes),
    alpha, alpha_low, alpha_high (percentile bootstrap over the draws where α was estimable), beta* (NaN here),
    estimable_fraction, status ("estimated" or "not estimable")."""
    rows = [dict(zip(ARM, t.key)) | _exponent_row([t], None, level) for t in transfers]
    return pd.DataFrame(rows, columns=[*ARM, *EXPONENT_COLUMNS])


def family_exponents(transfers: list[Transfer], backbones: pd.DataFrame, level: float) -> pd.DataFrame:
    """α and β of D_T = k·n^α·N^β per dataset, backbone family and arm, from two or more backbones of the family.

    `backbones`: columns backbone, family, parameters (N, a count). Returns columns dataset, family, regime, arm,
    backbones (their names joined by "+"), then as `transfer_exponents` with beta filled in.
    """
    family_of = backbones.set_index("backbone")
    groups: dict[tuple, list[Transfer]] = {}
    for t in transfers:
        dataset, backbone, regime, arm = t.key
        if backbone in family_of.index:
            groups.setdefault((dataset, family_of.loc[backbone, "family"], regime, arm), []).append(t)
    rows = []
    for (dataset, family, regime, arm), members in sorted(groups.items()):
        if len(members) < 2:
            continue
        counts = [float(family_of.loc[t.key[1], "parameters"]) for t in members]
        rows.append(
            {
                "dataset": dataset,
                "family": family,
                "regime": regime,
                "arm": arm,
                "backbones": "+".join(t.key[1] for t in members),
            }
            | _exponent_row(members, counts, level)
        )
    return pd.DataFrame(rows, columns=["dataset", "family", "regime", "arm", "backbones", *EXPONENT_COLUMNS])
