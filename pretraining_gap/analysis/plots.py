"""Figures people open from a folder: one PNG per question, with titles, units and legends."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..config import REGIMES  # noqa: E402

COLOURS = {name: regime.colour for name, regime in REGIMES.items()}
MARKERS = {name: regime.marker for name, regime in REGIMES.items()}


def _colour(arm: str) -> str | None:
    return COLOURS.get(arm.split("_k")[0])


def _size_axis(ax, sizes) -> None:
    sizes = sorted(set(int(s) for s in sizes))
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(s) for s in sizes])
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


def accuracy_vs_size(summary: pd.DataFrame, title: str, out: Path) -> Path:
    """Mean test accuracy over seeds with a ±1 standard-error band per arm, log-scaled examples per class."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), constrained_layout=True)
    for arm, part in summary.groupby("arm", sort=True):
        part = part.sort_values("examples_per_class")
        x, mean, err = part.examples_per_class, part["mean"], part.stderr.fillna(0)
        ax.plot(x, mean, marker="o", label=arm, color=_colour(arm))
        ax.fill_between(x, mean - err, mean + err, alpha=0.2, color=_colour(arm))
    _size_axis(ax, summary.examples_per_class)
    ax.set_ylabel("test accuracy (fraction correct)")
    ax.grid(alpha=0.3)
    ax.legend(title="regime (mean ± s.e. over seeds)")
    return _save(fig, out, title)


def gap_vs_size(gap: pd.DataFrame, crossover: pd.DataFrame, title: str, out: Path) -> Path:
    """Pretrained − scratch accuracy per size with its 95% interval; a dotted line where scratch catches up."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), constrained_layout=True)
    ax.axhline(0, color="black", lw=0.8)
    for arm, part in gap.groupby("arm", sort=True):
        part = part.sort_values("examples_per_class")
        colour = _colour(arm)
        ax.plot(part.examples_per_class, part.gap * 100, marker="o", color=colour, label=arm)
        if part.low.notna().any():
            ax.fill_between(part.examples_per_class, part.low * 100, part.high * 100, alpha=0.2, color=colour)
        for row in crossover[crossover.arm == arm].itertuples():
            if row.status == "reached":
                ax.axvline(
                    row.crossover,
                    color=colour,
                    ls=":",
                    label=f"{arm}: scratch catches up at {row.crossover:g}",
                )
    _size_axis(ax, gap.examples_per_class)
    ax.set_ylabel("gap: pretrained − scratch (accuracy points)")
    ax.grid(alpha=0.3)
    one_seed = gap.low.isna().all()
    ax.legend(title="regime (mean, 95% t interval)" if not one_seed else "regime (one seed: no interval)")
    return _save(fig, out, title)


def effective_data(effective: pd.DataFrame, title: str, out: Path) -> Path:
    """D_T = n_E − n per size: filled markers are estimates, open triangles the bounds (▲ at least, ▼ at most)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), constrained_layout=True)
    for arm, part in effective.groupby("arm", sort=True):
        part, colour = part.sort_values("examples_per_class"), _colour(arm)
        estimates = part[part.kind == "estimate"]
        ax.plot(
            estimates.examples_per_class, estimates.transferred, color=colour, alpha=0.5
        )  # not through bounds
        for kind, marker, face, label in (
            ("estimate", "o", colour, arm),
            ("lower bound", "^", "none", f"{arm}: at least"),
            ("upper bound", "v", "none", f"{arm}: at most"),
        ):
            shown = part[part.kind == kind]
            if len(shown):
                ax.scatter(
                    shown.examples_per_class,
                    shown.transferred,
                    marker=marker,
                    facecolors=face,
                    edgecolors=colour,
                    s=50,
                    label=label,
                    zorder=3,
                )
    ax.axhline(0, color="black", lw=0.8)
    _size_axis(ax, effective.examples_per_class)
    ax.set_yscale("symlog", linthresh=1)
    ax.set_ylabel("effective data transferred D_T\n(examples per class, symlog)")
    ax.grid(alpha=0.3)
    ax.legend(title="regime")
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
                    history["val_accuracy"],
                    color=_colour(arm),
                    alpha=0.7,
                    lw=1,
                    label=arm if i == 0 else None,
                )
        ax.set_title(f"{size} per class")
        ax.set_xlabel("optimisation step")
        ax.set_ylabel("validation accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, out, title)


def transferability(table: pd.DataFrame, title: str, out: Path) -> Path:
    """T per layer group in network order, one line per size and arm (T > 1: the layer stayed nearer its
    pretrained than its random weights)."""
    fig, ax = plt.subplots(figsize=(7.2, 4.4), constrained_layout=True)
    sizes = sorted(table.examples_per_class.unique())
    shades = plt.cm.viridis(np.linspace(0, 0.9, len(sizes)))
    for (arm, size), part in table.groupby(["arm", "examples_per_class"], sort=True):
        part = part.sort_values("order")
        ax.plot(
            part.group,
            part["T"],
            marker=MARKERS.get(arm.split("_k")[0], "o"),
            color=shades[sizes.index(size)],
            label=f"{arm}, {size} per class",
        )
    ax.axhline(1, color="black", lw=0.8)
    ax.set_xlabel("layer group (input → output)")
    ax.set_ylabel("transferability T (ratio)")
    ax.tick_params(axis="x", labelrotation=45)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, out, title)


def accuracy_vs_depth(summary: pd.DataFrame, title: str, out: Path) -> Path:
    """Test accuracy of the depth-k cells against k, one line per size."""
    depth = summary[summary.depth.notna()]
    fig, ax = plt.subplots(figsize=(6.4, 4.4), constrained_layout=True)
    for size, part in depth.groupby("examples_per_class", sort=True):
        part = part.sort_values("depth")
        ax.errorbar(
            part.depth,
            part["mean"],
            yerr=part.stderr.fillna(0),
            marker="o",
            capsize=3,
            label=f"{size} per class",
        )
    ax.set_xticks(sorted(depth.depth.unique()))
    ax.set_xlabel("transfer depth k (pretrained blocks kept)")
    ax.set_ylabel("test accuracy (mean ± s.e.)")
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
                x, row.mean, color=_colour(row.arm), marker=MARKERS.get(row.regime, "o"), label=row.arm
            )
            ax.annotate(
                row.backbone, (x, row.mean), fontsize="x-small", xytext=(3, 3), textcoords="offset points"
            )
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), fontsize="small")
        ax.set_title(f"{size} per class")
        ax.set_xscale("log")
        ax.set_xlabel("inference cost (GFLOPs per image, log)")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
    return _save(fig, out, title)
