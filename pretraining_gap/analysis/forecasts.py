"""Transferability forecasts: four scores of a pretrained backbone on a labelled target set, computed from its frozen
features and its ImageNet head before any fine-tuning, and how well they rank what the study then measured.

- LogME (You et al. 2021, "LogME: Practical Assessment of Pre-trained Models for Transfer Learning"):
  the maximum log evidence per image of a Bayesian linear model from the features to each one-hot label column,
  averaged over the classes.
- LEEP (Nguyen et al. 2020, "LEEP: A New Measure to Evaluate Transferability of Learned Representations", §3): the
  mean log-likelihood of the target labels under the source head's soft labels mapped through the empirical
  conditional P(y | z).
- NCE (Tran et al. 2019, "Transferability and Hardness of Supervised Classification Tasks", §3): the negative
  conditional entropy −H(Y | Z) of the target labels given the source head's hard labels.
- H-score (Bao et al. 2019, "An Information-Theoretic Approach to Transferability in Task Transfer Learning", §2):
  tr(cov(f)⁻¹ cov(E[f | y])), cov(f) shrunk (Ledoit-Wolf) as Ibrahim et al. (2022) recommend.

Higher is better for all four. `check` correlates them (Spearman) with the fine-tuned test accuracy and with the
measured fine-tune − scratch gap over every (backbone, size, seed) cell, with a paired bootstrap interval.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from scipy import optimize, special, stats
from sklearn.covariance import LedoitWolf

from ..data import subsets

SCORES = ("logme", "leep", "nce", "h_score")
TARGETS = {"finetune_accuracy": "fine-tuned accuracy", "gap": "fine-tune − scratch gap"}
MIN_CELLS = 4  # a rank correlation over fewer cells has no interval
LOG_BOUND = 25.0  # LogME's search range for log α and log β


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME of features (N, D) for integer labels (N,): per class, the log evidence of y = 1[label = class] under
    y ~ N(F m, β⁻¹ I), m ~ N(0, α⁻¹ I) (You et al. 2021), maximised over α and β, divided by N; the mean
    over the classes. Nats per image.

    The paper maximises by MacKay's fixed point (Algorithm 1); where a subset has fewer images than dimensions it
    steps to β = 0 (γ reaches N), so this maximises the same evidence by a bounded quasi-Newton search over log α
    and log β in [−LOG_BOUND, LOG_BOUND] (scipy L-BFGS-B), which finds the fixed point's maximum where that one
    converges."""
    f = np.asarray(features, dtype=np.float64)
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    evidences = []
    for c in np.unique(labels):
        y = (labels == c).astype(np.float64)
        z = u.T @ y  # y's coordinates along the left singular vectors
        rest = max(float(y @ y - z @ z), 0.0)  # the part of y no weight vector reaches
        found = optimize.minimize(
            lambda p, z=z, rest=rest: -log_evidence(np.exp(p[0]), np.exp(p[1]), s, z, rest, n, d),
            x0=[0.0, 0.0],
            method="L-BFGS-B",
            bounds=[(-LOG_BOUND, LOG_BOUND)] * 2,
        )
        evidences.append(-found.fun / n)
    return float(np.mean(evidences))


def _fit_terms(alpha: float, beta: float, s: np.ndarray, z: np.ndarray, rest: float) -> tuple[float, float]:
    """m'm and ‖F m − y‖² at the posterior mean m = β (αI + βF'F)⁻¹ F'y, in F's singular basis."""
    shrink = alpha + beta * s**2
    return float(np.sum((beta * s * z / shrink) ** 2)), float(np.sum((alpha * z / shrink) ** 2) + rest)


def log_evidence(
    alpha: float, beta: float, s: np.ndarray, z: np.ndarray, rest: float, n: int, d: int
) -> float:
    """log p(y | α, β) of the Bayesian linear model, from F's singular values `s` (min(N, D),) and y's coordinates
    `z` along its left singular vectors, `rest` = ‖y‖² − ‖z‖² (You et al. 2021)."""
    m2, residual = _fit_terms(alpha, beta, s, z, rest)
    eigen = np.concatenate([s**2, np.zeros(d - len(s))])  # F'F's eigenvalues, its null space included
    return float(
        d / 2 * np.log(alpha)
        + n / 2 * np.log(beta)
        - n / 2 * np.log(2 * np.pi)
        - beta / 2 * residual
        - alpha / 2 * m2
        - np.sum(np.log(alpha + beta * eigen)) / 2
    )


def _joint(source: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The empirical joint P̂(y, z) (classes, source classes) from source probabilities (N, Z), the conditional
    P̂(y | z) (0 where z never occurs) and the classes."""
    classes = np.unique(labels)
    joint = np.stack([source[labels == c].sum(0) for c in classes]) / len(labels)
    return joint, joint / np.maximum(joint.sum(0, keepdims=True), 1e-300), classes


def leep(source_probabilities: np.ndarray, labels: np.ndarray) -> float:
    """LEEP (Nguyen et al. 2020, §3) from the source head's probabilities θ (N, Z) over its Z classes and the target
    labels (N,): (1/N) Σᵢ log Σ_z P̂(yᵢ | z) θ(xᵢ)_z. Nats per image, at most 0."""
    theta = np.asarray(source_probabilities, dtype=np.float64)
    _, conditional, classes = _joint(theta, labels)
    row = np.searchsorted(classes, labels)
    return float(np.mean(np.log(np.sum(conditional[row] * theta, axis=1))))


def nce(source_probabilities: np.ndarray, labels: np.ndarray) -> float:
    """NCE (Tran et al. 2019, §3): −H(Y | Z) = Σ_{y,z} P̂(y, z) log P̂(y | z), Z the source head's hard label
    (argmax of θ, (N, Z)). Nats, at most 0."""
    theta = np.asarray(source_probabilities)
    joint, conditional, _ = _joint(np.eye(theta.shape[1])[theta.argmax(1)], labels)
    seen = joint > 0
    return float(np.sum(joint[seen] * np.log(conditional[seen])))


def h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """H-score (Bao et al. 2019, §2) of features (N, D): tr(cov(f)⁻¹ cov(E[f | y])), cov(f) estimated with
    Ledoit-Wolf shrinkage (scikit-learn), as Ibrahim et al. (2022, "Newer is not always better") recommend: with
    fewer images than dimensions the plain estimate is singular and its pseudo-inverse gives every labelling C − 1."""
    f = np.asarray(features, dtype=np.float64)
    f = f - f.mean(0)
    means = np.zeros_like(f)
    for c in np.unique(labels):
        means[labels == c] = f[labels == c].mean(0)
    total = LedoitWolf(assume_centered=True).fit(f).covariance_
    between = means.T @ means / len(f)
    return float(np.trace(np.linalg.solve(total, between)))


def scores(features: np.ndarray, source_logits: np.ndarray | None, labels: np.ndarray) -> dict[str, float]:
    """The four forecasts of one labelled set: features (N, D) and source (ImageNet) logits (N, Z) of the same N
    images, labels (N,). Without source logits (weights without their head) LEEP and NCE are NaN."""
    found = {
        "logme": logme(features, labels),
        "leep": np.nan,
        "nce": np.nan,
        "h_score": h_score(features, labels),
    }
    if source_logits is not None:
        theta = special.softmax(np.asarray(source_logits, dtype=np.float64), axis=1)
        found |= {"leep": leep(theta, labels), "nce": nce(theta, labels)}
    return found


def beside_measured(forecasts: pd.DataFrame, done: pd.DataFrame) -> pd.DataFrame:
    """The forecasts (one row per dataset, backbone, size, seed) with the measured fine-tuned and scratch test
    accuracies of the same cells (aggregate.load_cells: `size` as params.yaml writes it, `examples_per_class` a
    number) and their gap (fraction); cells without both arms are left out."""
    keys = ["dataset", "backbone", "size", "seed"]
    columns = [*keys, "examples_per_class", *SCORES, "finetune_accuracy", "scratch_accuracy", "gap"]
    measured = (
        done[done.regime.isin(["finetune", "scratch"])]
        .pivot_table(index=[*keys, "examples_per_class"], columns="regime", values="test_accuracy")
        .reindex(columns=["finetune", "scratch"])
        .dropna()
    )
    if measured.empty or forecasts.empty:
        return pd.DataFrame(columns=columns)
    measured = measured.rename(columns={"finetune": "finetune_accuracy", "scratch": "scratch_accuracy"})
    measured["gap"] = measured.finetune_accuracy - measured.scratch_accuracy
    found = forecasts.rename(columns={"examples_per_class": "size"}).astype({"size": str})
    return found.merge(measured.reset_index().astype({"size": str}), on=keys)[columns]


def check(beside: pd.DataFrame, level: float, draws: int = 2000) -> pd.DataFrame:
    """Per dataset, forecast and target (fine-tuned accuracy, the fine-tune − scratch gap): the Spearman rank
    correlation over every (backbone, size, seed) cell with a paired percentile-bootstrap interval (`draws`
    resamples of cells, seeded); and, at each size with three or more backbones, across the backbones (each one's
    mean over seeds): the choice of backbone, indicative only with so few (no interval under MIN_CELLS)."""
    rows = []
    for dataset, mine in beside.groupby("dataset", sort=True):
        scopes = [("every cell", mine)]
        for size, part in mine.groupby("examples_per_class", sort=True):
            if part.backbone.nunique() >= 3:
                means = part.groupby("backbone")[[*SCORES, *TARGETS]].mean()
                scopes.append((f"backbones at {size:g} per class", means))
        for scope, table in scopes:
            for score in SCORES:
                for target in TARGETS:
                    rows.append(
                        {"dataset": dataset, "scope": scope, "forecast": score, "target": target}
                        | _spearman(table[score].to_numpy(), table[target].to_numpy(), level, draws)
                    )
    columns = ["dataset", "scope", "forecast", "target", "rho", "low", "high", "cells"]
    return pd.DataFrame(rows, columns=columns).dropna(subset="rho")


def _spearman(x: np.ndarray, y: np.ndarray, level: float, draws: int) -> dict:
    """ρ with its bootstrap interval (NaN bounds under MIN_CELLS), and the cells it was computed on."""
    out = {"rho": np.nan, "low": np.nan, "high": np.nan, "cells": len(x)}
    if len(x) < 3 or np.isnan(x).any() or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    out["rho"] = float(stats.spearmanr(x, y).statistic)
    if len(x) >= MIN_CELLS:
        interval = stats.bootstrap(
            (x, y),
            lambda a, b: stats.spearmanr(a, b).statistic,
            paired=True,
            vectorized=False,
            n_resamples=draws,
            confidence_level=level,
            method="percentile",
            random_state=np.random.default_rng(0),
        ).confidence_interval
        out |= {"low": float(interval.low), "high": float(interval.high)}
    return out


def by_subset(
    features: np.ndarray,
    source_logits: np.ndarray | None,
    labels: np.ndarray,
    orderings: dict[int, dict[int, np.ndarray]],
    sizes: list,
) -> pd.DataFrame:
    """The four forecasts of every training subset of the study: per seed (its class orderings, data/subsets.py)
    and size, from the features (N, D) and source logits (N, Z) of all N prepared images; one row each, with the
    subset's images and the seconds the four took."""
    rows = []
    for seed, classes in orderings.items():
        for size in sizes:
            chosen = subsets.subset(classes, size)
            began = time.perf_counter()
            logits = None if source_logits is None else source_logits[chosen]
            found = scores(features[chosen], logits, labels[chosen])
            rows.append(
                {"examples_per_class": size, "seed": seed, "images": len(chosen)}
                | found
                | {"seconds": round(time.perf_counter() - began, 3)}
            )
    return pd.DataFrame(rows)


NAMES = {"logme": "LogME", "leep": "LEEP", "nce": "NCE", "h_score": "H-score"}


def _rho(row) -> str:
    interval = "" if np.isnan(row.low) else f" [{row.low:+.2f}, {row.high:+.2f}]"
    return f"{NAMES[row.forecast]} ρ {row.rho:+.2f}{interval}"


def verdict(row) -> str:
    """'ranks' where the interval of ρ lies above 0, 'ranks backwards' below 0, else 'does not rank'."""
    if row.low > 0:
        return "ranks"
    return "ranks backwards" if row.high < 0 else "does not rank"


def sentences(check_table: pd.DataFrame, level: float) -> list[str]:
    """What the rank check says, per dataset and target, every ρ with its interval (`check`'s rows)."""
    said = []
    for (dataset, target), part in check_table.groupby(["dataset", "target"], sort=True):
        every = part[part.scope == "every cell"]
        if len(every):
            groups: dict[str, list[str]] = {}
            for row in every.itertuples():
                groups.setdefault(verdict(row), []).append(_rho(row))
            said.append(
                f"{dataset}, {TARGETS[target]} over its {int(every.cells.iloc[0])} cells (Spearman ρ, "
                f"{level:.0%} intervals): "
                + "; ".join(f"{kind}: {', '.join(items)}" for kind, items in groups.items())
                + "."
            )
        for scope, rows in part[part.scope != "every cell"].groupby("scope", sort=False):
            said.append(
                f"{dataset}, {TARGETS[target]} across {int(rows.cells.iloc[0])} {scope} (indicative: too few "
                "backbones for an interval): " + ", ".join(_rho(r) for r in rows.itertuples()) + "."
            )
    return said
