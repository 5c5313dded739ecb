"""Figures people open from a folder: one PNG per question, with titles, units and legends.

Units: accuracy in %, gaps in accuracy points (or log-odds, named as such), sizes in training examples per class.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import ScalarFormatter  # noqa: E402

from ..config import REGIMES, Analysis  # noqa: E402
from . import equivalence as eq  # noqa: E402
from .forecasts import NAMES as FORECAST_NAMES  # noqa: E402
from .learning_curves import REACHED, ArmFit, predict_accuracy, prediction_band  # noqa: E402
from .seeds import SCRATCH  # noqa: E402

COLOURS = {name: regime.colour for name, regime in REGIMES.items()}
MARKERS = {name: regime.marker for name, regime in REGIMES.items()}
MARKERS_CYCLE = "osD^v"  # one per backbone of a ladder
# a size's equivalence decision as a marker: filled when decided, open when undecided
DECISION_MARKERS = {eq.HELPS: "^", eq.WITHIN: "D", eq.SCRATCH_BETTER: "v", eq.UNDECIDED: "o"}
CURVE_POINTS = 200


def _colour(arm: str) -> str | None:
    return COLOURS.get(arm.split("_k")[0])


def _size_axis(ax, sizes, end: float | None = None) -> None:
    """Log-scaled examples per class, ticks at the measured sizes and at the decades beyond them up to `end`."""
    sizes = sorted(set(int(s) for s in sizes))
    beyond = [10**k for k in range(1, 7) if sizes[-1] * 3 <= 10**k <= (end or 0) * 1.01]  # labels apart
    ticks = sizes + beyond
    ax.set_xscale("log")
    ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("training examples per class (log scale)")


def _save(fig, out: Path, title: str) -> Path:
    fig.suptitle(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _panels(count: int, width: float = 3.4, height: float = 3.0):
    """A row-major grid of at most four panels a row, flattened; unused panels hidden."""
    cols = min(count, 4)
    rows = -(-count // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(width * cols, height * rows + 0.6), squeeze=False, constrained_layout=True
    )
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:count])


def _rows(table: pd.DataFrame, arm: str) -> pd.DataFrame:
    return table[table.arm == arm]


def reached(crossover: pd.DataFrame) -> pd.DataFrame:
    """The crossovers decided as reached (learning_curves.crossovers): the only ones drawn."""
    if "decision" not in crossover:
        return crossover.iloc[0:0]
    return crossover[crossover.decision == REACHED]


def reach(fits: list[ArmFit], crossover: pd.DataFrame, cap: float) -> float:
    """How far right the size axis goes: the largest measured size, or beyond it to the farthest reached crossover
    (x 1.5)."""
    largest = max((f.sizes[-1] for f in fits if f.curve is not None), default=np.nan)
    estimates = reached(crossover).estimate
    if np.isnan(largest) or estimates.empty:
        return largest
    return float(min(max(largest, estimates.max() * 1.5), cap))


def _grids(fit: ArmFit, end: float) -> tuple[np.ndarray, np.ndarray]:
    """Sizes over the measured range (drawn solid) and from its end to `end` (drawn dashed; empty if none)."""
    first, last = fit.sizes[0], fit.sizes[-1]
    inside = np.geomspace(first, last, CURVE_POINTS)
    beyond = np.geomspace(last, end, CURVE_POINTS) if end > last * 1.01 else np.empty(0)
    return inside, beyond


def _draw_curve(ax, n_in, n_out, band_in, band_out, colour, label=None) -> None:
    """A fitted curve: solid with its band over the measured sizes, dashed with a lighter band beyond."""
    ax.plot(n_in, band_in["value"], color=colour, lw=1.6, label=label)
    ax.fill_between(n_in, band_in["low"], band_in["high"], color=colour, alpha=0.18, lw=0)
    if len(n_out):
        ax.plot(n_out, band_out["value"], color=colour, lw=1.4, ls="--")
        ax.fill_between(n_out, band_out["low"], band_out["high"], color=colour, alpha=0.08, lw=0)


def _accuracy_band(fit: ArmFit, n: np.ndarray, level: float, error: bool = False) -> dict:
    band = prediction_band(fit, n, level)
    value, low, high = (band[c].to_numpy() * 100 for c in ("accuracy", "low", "high"))
    if error:
        value, low, high = 100 - value, 100 - high, 100 - low
    return {"value": value, "low": low, "high": high}


def _plot_arm_accuracy(
    ax,
    error: bool,
    part: pd.DataFrame,
    seeds: pd.DataFrame,
    arm: str,
    fit: ArmFit | None,
    end: float,
    level: float,
) -> None:
    """One arm on one panel: its seeds as faint dots, its log-odds means as markers and its fitted curve with the
    band (dashed beyond the measured sizes to `end`); accuracy in %, or test error in % when `error`."""
    colour, marker = _colour(arm), MARKERS.get(arm.split("_k")[0], "o")
    values = seeds.test_accuracy * 100
    dots = np.maximum(100 - values, 0.1) if error else values
    ax.scatter(seeds.examples_per_class, dots, color=colour, s=9, alpha=0.35, lw=0)
    means = part.logodds_mean * 100
    ax.plot(
        part.examples_per_class,
        np.maximum(100 - means, 0.1) if error else means,
        ls="none",
        marker=marker,
        color=colour,
        ms=6,
        label=None if fit is not None else arm,
    )
    if fit is not None:
        n_in, n_out = _grids(fit, end if np.isfinite(end) else fit.sizes[-1])
        _draw_curve(
            ax,
            n_in,
            n_out,
            _accuracy_band(fit, n_in, level, error),
            _accuracy_band(fit, n_out, level, error) if len(n_out) else None,
            colour,
            label=f"{arm} ({fit.curve.model} law)",
        )


def _error_axis(ax, runs: pd.DataFrame) -> None:
    """Test error in % on a log scale, down to a tenth of the smallest error measured."""
    lowest = float(np.maximum(100 - runs.test_accuracy * 100, 0.1).min())
    ax.set_yscale("log")
    ax.set_ylim(bottom=max(0.05, lowest / 10))  # the extrapolated tail says little far below the data
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.set_ylabel("test error (%, log scale)")


def _accuracy_legend(
    ax, fitted: dict[str, ArmFit], end: float, crossings: pd.DataFrame, analysis: Analysis
) -> None:
    """The arms, then what dashed (extrapolated) and dotted (crossover) lines mean, where drawn."""
    extras = (
        [Line2D([], [], color="black", ls="--", label="extrapolated fit")]
        if end > max((f.sizes[-1] for f in fitted.values()), default=np.inf)
        else []
    )
    if len(crossings):
        label = f"scratch within {analysis.margin * 100:g} pt from here"
        extras.append(Line2D([], [], color="black", ls=":", label=label))
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(
        handles=handles + extras,
        title=f"arm: log-odds mean, seeds{f', fit ± {analysis.level:.0%} band' if fitted else ''}",
        fontsize="small",
        title_fontsize="small",
        loc="lower right",
    )


def accuracy_vs_size(
    summary: pd.DataFrame,
    runs: pd.DataFrame,
    fits: list[ArmFit],
    crossover: pd.DataFrame,
    analysis: Analysis,
    title: str,
    out: Path,
) -> Path:
    """Test accuracy (left, %) and test error (right, %, log scale: power laws look straight) against examples per
    class: each seed as a faint dot, the log-odds mean over seeds as a marker, the fitted learning curve with its
    bootstrap band solid over the measured sizes and dashed beyond them to the crossover (or the cap); a dotted
    vertical line where scratch comes within the margin of a pretrained arm. Without fitted curves (fewer than
    four sizes) only the accuracy panel."""
    end = reach(fits, crossover, analysis.cap)
    fitted = {f.key[3]: f for f in fits if f.curve is not None}
    if fitted:
        fig, (left, right) = plt.subplots(1, 2, figsize=(12.5, 4.8), constrained_layout=True)
    else:
        fig, left = plt.subplots(figsize=(6.4, 4.6), constrained_layout=True)
        right = None
    panels = [(left, False)] + ([(right, True)] if right else [])
    for arm, part in summary.groupby("arm", sort=True):
        for ax, error in panels:
            seeds, fit = _rows(runs, arm), fitted.get(arm)
            _plot_arm_accuracy(
                ax, error, part.sort_values("examples_per_class"), seeds, arm, fit, end, analysis.level
            )
    crossings = reached(crossover)
    for row in crossings.itertuples():
        for ax, _ in panels:
            ax.axvline(row.estimate, color=_colour(row.arm), ls=":", lw=1.2)
    for ax, _ in panels:
        _size_axis(ax, summary.examples_per_class, end)
        ax.grid(alpha=0.3)
    left.set_ylabel("test accuracy (%)")
    left.set_ylim(top=100.5)
    if right:
        _error_axis(right, runs)
    _accuracy_legend(left, fitted, end, crossings, analysis)
    return _save(fig, out, title)


def _gap_band(scratch: ArmFit, fit: ArmFit, n: np.ndarray, level: float) -> dict:
    """Fitted gap (arm − scratch, points) at sizes n with a percentile band over the paired bootstrap refits."""
    value = (predict_accuracy(fit.curve, n) - predict_accuracy(scratch.curve, n)) * 100
    pairs = [
        (predict_accuracy(p, n) - predict_accuracy(s, n)) * 100
        for s, p in zip(scratch.replicates, fit.replicates)
        if s is not None and p is not None
    ]
    if not pairs:
        return {"value": value, "low": np.full(len(n), np.nan), "high": np.full(len(n), np.nan)}
    low, high = np.quantile(np.array(pairs), [(1 - level) / 2, (1 + level) / 2], axis=0)
    return {"value": value, "low": low, "high": high}


def _plot_gap_points(ax, part: pd.DataFrame, scale: str, shift: float, decided: pd.Series, colour) -> None:
    """One arm's measured gaps on one scale ("points", drawn in points, or "logodds"): the t interval as a bar and
    each size's decision as its marker (filled: decided, open: undecided); x shifted by the factor `shift`."""
    factor = 100 if scale == "points" else 1
    x = part.examples_per_class * shift
    y = part[scale] * factor
    ax.errorbar(
        x,
        y,
        yerr=[y - part[f"{scale}_low"] * factor, part[f"{scale}_high"] * factor - y],
        ls="none",
        color=colour,
        elinewidth=1,
        capsize=2,
        alpha=0.8,
    )
    for decision, marker in DECISION_MARKERS.items():
        chosen = (decided == decision).to_numpy()
        if chosen.any():
            ax.scatter(
                x[chosen],
                y[chosen],
                marker=marker,
                s=46,
                zorder=3,
                edgecolors=colour,
                facecolors="white" if decision == eq.UNDECIDED else colour,
                linewidths=1.4,
            )


def _decision_handles(decisions: pd.DataFrame) -> list[Line2D]:
    """A legend entry per decision shown: its marker, open for undecided; a baseline's "<arm> better" as ▲."""
    drawn = [
        Line2D(
            [],
            [],
            ls="none",
            marker=m,
            color="black",
            markerfacecolor="white" if d == eq.UNDECIDED else "black",
            label=d,
        )
        for d, m in DECISION_MARKERS.items()
        if (decisions.decision == d).any()
    ]
    return drawn + [
        Line2D([], [], ls="none", marker="^", color="black", label=d)
        for d in sorted(set(decisions.decision) - set(DECISION_MARKERS))
    ]


def _gap_axes(left, right, sizes: pd.Series, end: float, analysis: Analysis) -> None:
    """Zero lines, size axes (the left one out to `end`), labels and titles of the two gap panels."""
    for ax in (left, right):
        ax.axhline(0, color="black", lw=0.8)
        _size_axis(ax, sizes, end if ax is left else None)
        ax.grid(alpha=0.3)
    left.set_ylabel("arm − scratch (accuracy points)")
    right.set_ylabel("arm − scratch (log-odds)")
    right.set_title("log-odds: logit(arm) − logit(scratch)", fontsize="medium")
    left.set_title(
        f"accuracy points; grey: within the ±{analysis.margin * 100:g} pt margin; bars: {analysis.level:.0%} t "
        "intervals",
        fontsize="medium",
    )


def _gap_legends(left, right, arms: list[str], decisions: pd.DataFrame, fitted: bool) -> None:
    """The arms' colours on the left panel, the decisions' markers on the right."""
    arm_handles = [Line2D([], [], color=_colour(a), lw=2, label=a) for a in arms]
    left.legend(
        handles=arm_handles,
        title="arm (fit ± band)" if fitted else "arm",
        fontsize="small",
        loc="upper right",
    )
    right.legend(
        handles=_decision_handles(decisions),
        title="decision at each size (Holm-corrected)",
        fontsize="small",
        title_fontsize="small",
        loc="best",
    )


def gap_vs_size(
    gap: pd.DataFrame,
    decisions: pd.DataFrame,
    fits: list[ArmFit],
    crossover: pd.DataFrame,
    analysis: Analysis,
    title: str,
    out: Path,
) -> Path:
    """The gap to scratch per arm and size, paired by seed: left in accuracy points with the equivalence margin
    shaded, each size's decision as its marker (filled: decided, open: undecided), the t interval as a bar and the
    fitted curves' difference with its bootstrap band (dashed beyond the measured sizes); right in log-odds, the
    scale on which Kornblith et al. average, where a gap can grow while it shrinks in points."""
    end = reach(fits, crossover, analysis.cap)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12.5, 4.8), constrained_layout=True)
    margin = analysis.margin * 100
    left.axhspan(-margin, margin, color="grey", alpha=0.25, lw=0)
    fitted = {f.key[3]: f for f in fits if f.curve is not None}
    arms = sorted(gap.arm.unique())
    for i, arm in enumerate(arms):
        part, colour = _rows(gap, arm).sort_values("examples_per_class"), _colour(arm)
        shift = 1.035 ** (
            i - (len(arms) - 1) / 2
        )  # side by side, so the interval bars do not hide each other
        decided = (
            _rows(decisions, arm).set_index("examples_per_class").decision.reindex(part.examples_per_class)
        )
        for ax, scale in ((left, "points"), (right, "logodds")):
            _plot_gap_points(ax, part, scale, shift, decided, colour)
        if arm in fitted and SCRATCH in fitted:
            n_in, n_out = _grids(fitted[arm], end if np.isfinite(end) else fitted[arm].sizes[-1])
            _draw_curve(
                left,
                n_in,
                n_out,
                _gap_band(fitted[SCRATCH], fitted[arm], n_in, analysis.level),
                _gap_band(fitted[SCRATCH], fitted[arm], n_out, analysis.level) if len(n_out) else None,
                colour,
            )
    for row in reached(crossover).itertuples():
        left.axvline(row.estimate, color=_colour(row.arm), ls=":", lw=1.2)
    _gap_axes(left, right, gap.examples_per_class, end, analysis)
    _gap_legends(left, right, arms, decisions, bool(fitted))
    return _save(fig, out, title)


def _plot_arm_transfer(ax, arm: str, part: pd.DataFrame, top: float) -> None:
    """One arm's D_T per size: estimates with their interval (open-ended ones drawn up to `top`), bounds as open
    triangles, extrapolations from scratch's loss fit as crosses."""
    colour = _colour(arm)
    estimates = part[part.kind == "estimate"]
    ax.plot(estimates.examples_per_class, estimates.transferred, color=colour, alpha=0.5)
    high = estimates.high.where(np.isfinite(estimates.high), top)
    ax.errorbar(
        estimates.examples_per_class,
        estimates.transferred,
        yerr=[estimates.transferred - estimates.low, high - estimates.transferred],
        ls="none",
        marker="o",
        color=colour,
        capsize=3,
        label=f"{arm}: estimate",
    )
    for kind, marker, label in (("lower bound", "^", "at least"), ("upper bound", "v", "at most")):
        shown = part[part.kind == kind]
        if len(shown):
            ax.scatter(
                shown.examples_per_class,
                shown.transferred,
                marker=marker,
                facecolors="none",
                edgecolors=colour,
                s=60,
                zorder=3,
                label=f"{arm}: {label}",
            )
    extrapolated = part[np.isfinite(part.transferred_extrapolated)]
    if len(extrapolated):
        ax.scatter(
            extrapolated.examples_per_class,
            extrapolated.transferred_extrapolated,
            marker="x",
            color=colour,
            s=40,
            label=f"{arm}: extrapolated from scratch's loss fit",
        )


def effective_data(effective: pd.DataFrame, level: float, title: str, out: Path) -> Path:
    """D_T = D_E − n per size, read off scratch's test-loss curve: filled markers are estimates with their bootstrap
    interval (an arrow where it is open-ended), open triangles the bounds (▲ at least, ▼ at most), crosses the
    extrapolations from scratch's fitted loss curve where the measured sizes give only a lower bound."""
    fig, ax = plt.subplots(figsize=(9.6, 4.6), constrained_layout=True)
    finite = pd.concat(
        [effective.transferred, effective.low, effective.high, effective.transferred_extrapolated]
    )
    finite = finite[np.isfinite(finite)]
    top = max(float(finite.max()) * 3 if len(finite) else 10, 10)
    for arm, part in effective.groupby("arm", sort=True):
        _plot_arm_transfer(ax, arm, part.sort_values("examples_per_class"), top)
    ax.axhline(0, color="black", lw=0.8)
    _size_axis(ax, effective.examples_per_class)
    ax.set_yscale("symlog", linthresh=1)
    ax.set_ylim(top=top)
    ax.set_ylabel("effective data transferred D_T\n(examples per class, symlog)")
    ax.grid(alpha=0.3)
    ax.legend(
        fontsize="small",
        title=f"arm (bars: {level:.0%} bootstrap interval)",
        title_fontsize="small",
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
    )
    return _save(fig, out, title)


def label_budget(budget: pd.DataFrame, level: float, cap: float, title: str, out: Path) -> Path:
    """Examples per class needed per target accuracy (label_budget.label_budget rows of one dataset × backbone),
    one line per arm on a log axis, with the bootstrap interval; open markers beyond the measured sizes, an arrow at
    the cap where the arm does not get there before it."""
    fig, ax = plt.subplots(figsize=(7.2, 4.6), constrained_layout=True)
    arms = sorted(budget.arm.unique())
    offsets = dict(zip(arms, np.linspace(-0.15, 0.15, len(arms)) if len(arms) > 1 else [0.0]))
    targets = sorted(budget.target.unique())
    where = {t: i for i, t in enumerate(targets)}
    for arm, part in budget.groupby("arm", sort=True):
        part = part.sort_values("target")
        x = np.array([where[t] for t in part.target]) + offsets[arm]
        colour, marker = _colour(arm), MARKERS.get(arm.split("_k")[0], "o")
        shown = np.minimum(part.examples_per_class.to_numpy(dtype=float), cap)
        low = np.minimum(part.low.to_numpy(dtype=float), cap)
        high = np.minimum(part.high.to_numpy(dtype=float), cap)
        ax.plot(x, shown, color=colour, lw=1.0, alpha=0.6)
        ax.vlines(x, low, high, color=colour, lw=1.4)
        beyond = (part.status != "within the measured sizes").to_numpy()
        ax.scatter(x[~beyond], shown[~beyond], color=colour, marker=marker, zorder=3, label=arm)
        ax.scatter(x[beyond], shown[beyond], facecolors="none", edgecolors=colour, marker=marker, zorder=3)
        never = ~np.isfinite(part.examples_per_class.to_numpy(dtype=float))
        for xi in x[never]:
            ax.annotate("", (xi, cap * 1.6), (xi, cap), arrowprops={"arrowstyle": "->", "color": colour})
    ax.set_yscale("log")
    if not np.isfinite(budget.examples_per_class.to_numpy(dtype=float)).all():
        ax.set_ylim(top=cap * 2)  # room for the arrows above the cap
    ax.set_xticks(range(len(targets)), [f"{t:.0%}" for t in targets])
    ax.set_xlabel("target test accuracy")
    ax.set_ylabel("examples per class needed (log)")
    ax.grid(alpha=0.3)
    ax.legend(
        fontsize="small",
        title=f"arm (bars: {level:.0%} interval; open: extrapolated)",
        title_fontsize="small",
    )
    return _save(fig, out, title)


def learning_curves(cells: pd.DataFrame, title: str, out: Path) -> Path:
    """Validation accuracy against optimisation step, one panel per size, one thin line per seed and arm."""
    runs = cells[cells.history.map(lambda h: isinstance(h, dict) and bool(h.get("val_accuracy")))]
    sizes = sorted(runs.examples_per_class.unique())
    fig, axes = _panels(len(sizes))
    for ax, size in zip(axes, sizes):
        for arm, part in runs[runs.examples_per_class == size].groupby("arm", sort=True):
            for i, history in enumerate(part.history):
                ax.plot(
                    history["step"],
                    np.asarray(history["val_accuracy"], dtype=float) * 100,
                    color=_colour(arm),
                    alpha=0.7,
                    lw=1,
                    label=arm if i == 0 else None,
                )
        ax.set_title(f"{size} per class")
        ax.set_xlabel("optimisation step")
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, out, title)


def transferability(table: pd.DataFrame, title: str, out: Path) -> Path:
    """Left: T per layer group in network order, one line per size (and arm), its optimisation steps in the
    legend. Right: T of each group against the optimisation steps its cells took (one point per size): T shrinks
    with steps, so sizes trained for different numbers of steps are not like for like (arXiv 2212.00399)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), constrained_layout=True)
    sizes = sorted(table.examples_per_class.unique())
    shades = plt.cm.viridis(np.linspace(0, 0.9, len(sizes)))
    for (arm, size), part in table.groupby(["arm", "examples_per_class"], sort=True):
        part = part.sort_values("order")
        steps = part.steps.mean()
        left.plot(
            part.group,
            part["T"],
            marker=MARKERS.get(arm.split("_k")[0], "o"),
            color=shades[sizes.index(size)],
            label=f"{arm}, {size}/class, {steps:.0f} steps" if np.isfinite(steps) else f"{arm}, {size}/class",
        )
    if table["T"].min() < 3:  # T = 1: as near the random as the pretrained weights
        left.axhline(1, color="black", lw=0.8)
    left.set_xlabel("layer group (input → output)")
    left.set_ylabel("transferability T (ratio, log scale)")
    left.set_yscale("log")
    left.yaxis.set_major_formatter(ScalarFormatter())
    left.tick_params(axis="x", labelrotation=45)
    left.grid(alpha=0.3)
    left.legend(fontsize="small")
    groups = table.drop_duplicates("group").sort_values("order").group.tolist()
    tones = plt.cm.plasma(np.linspace(0, 0.85, len(groups)))
    if table.steps.notna().any():
        for group, tone in zip(groups, tones):
            part = table[table.group == group].sort_values("steps")
            right.plot(part.steps, part["T"], marker="o", color=tone, label=group)
        right.set_xlabel("optimisation steps of the fine-tuned cells (mean over seeds)")
        right.set_ylabel("transferability T (ratio, log scale)")
        right.set_yscale("log")
        right.yaxis.set_major_formatter(ScalarFormatter())
        right.grid(alpha=0.3)
        right.legend(
            fontsize="x-small",
            title="layer group",
            title_fontsize="small",
            loc="upper left",
            bbox_to_anchor=(1.01, 1),
        )
    else:
        right.set_visible(False)
    return _save(fig, out, title)


def accuracy_vs_depth(summary: pd.DataFrame, title: str, out: Path) -> Path:
    """Test accuracy of the depth-k cells against k, one line per size."""
    depth = summary[summary.depth.notna()]
    fig, ax = plt.subplots(figsize=(6.4, 4.4), constrained_layout=True)
    for size, part in depth.groupby("examples_per_class", sort=True):
        part = part.sort_values("depth")
        ax.errorbar(
            part.depth,
            part["mean"] * 100,
            yerr=part.stderr.fillna(0) * 100,
            marker="o",
            capsize=3,
            label=f"{size} per class",
        )
    ax.set_xticks(sorted(depth.depth.unique()))
    ax.set_xlabel("transfer depth k (pretrained blocks kept)")
    ax.set_ylabel("test accuracy (%, mean ± s.e.)")
    ax.grid(alpha=0.3)
    ax.legend(title="training set")
    return _save(fig, out, title)


def accuracy_vs_cost(summary: pd.DataFrame, costs: dict[str, dict], title: str, out: Path) -> Path:
    """Test accuracy against inference GFLOPs per image, one panel per size, one point per backbone and arm."""
    summary = summary[summary.backbone.isin(costs)]
    sizes = sorted(summary.examples_per_class.unique())
    fig, axes = _panels(len(sizes), width=4.0, height=3.4)
    for ax, size in zip(axes, sizes):
        for row in summary[summary.examples_per_class == size].itertuples():
            x = costs[row.backbone]["gflops_per_image"]
            ax.scatter(
                x,
                row.mean * 100,
                color=_colour(row.arm),
                marker=MARKERS.get(row.regime, "o"),
                label=row.arm,
            )
            ax.annotate(
                row.backbone,
                (x, row.mean * 100),
                fontsize="x-small",
                xytext=(3, 3),
                textcoords="offset points",
            )
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), fontsize="small")
        ax.set_title(f"{size} per class")
        ax.set_xscale("log")
        ax.set_xlabel("inference cost (GFLOPs per image, log)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    return _save(fig, out, title)


def ladder(
    summary: pd.DataFrame, costs: dict[str, dict], forecast: pd.DataFrame, title: str, out: Path
) -> Path:
    """The backbone ladder: fine-tuned test accuracy (mean ± standard error over seeds) against measured training
    time per 1,000 images, one panel per size, one point per backbone, labelled with its inference cost and its
    rank among the backbones by each forecast (`forecast`: the mean score per backbone and examples_per_class)."""
    summary = summary[summary.backbone.isin(costs) & (summary.regime == "finetune")]
    sizes = sorted(summary.examples_per_class.unique())
    fig, axes = _panels(len(sizes), width=5.4, height=3.6)
    for ax, size in zip(axes, sizes):
        scores = forecast[np.isclose(forecast.examples_per_class, size)].set_index("backbone")
        ranks = scores.rank(ascending=False)
        for i, row in enumerate(summary[summary.examples_per_class == size].itertuples()):
            cost = costs[row.backbone]
            x = 1000 / cost["train_images_per_second"]
            ax.errorbar(
                x,
                row.mean * 100,
                yerr=row.stderr * 100,
                fmt=MARKERS_CYCLE[i % len(MARKERS_CYCLE)],
                label=row.backbone,
                capsize=3,
            )
            ranked = (
                " · ".join(
                    f"{name} #{ranks.loc[row.backbone, key]:.0f}" for key, name in FORECAST_NAMES.items()
                )
                if row.backbone in ranks.index
                else "no forecast"
            )
            ax.annotate(
                f"{cost['gflops_per_image']:.3g} GFLOPs, {cost['inference_images_per_second']:,.0f} img/s\n{ranked}",
                (x, row.mean * 100),
                fontsize="xx-small",
                xytext=(4, -14),
                textcoords="offset points",
            )
        ax.margins(x=0.45, y=0.2)  # room for the labels
        ax.legend(fontsize="small")
        ax.set_title(f"{size:g} per class")
        ax.set_xlabel("training time (s per 1,000 images, measured)")
        ax.set_ylabel("fine-tuned test accuracy (%)")
        ax.grid(alpha=0.3)
    return _save(fig, out, title)
