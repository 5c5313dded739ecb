"""Figures people open from a folder: test accuracy against examples per class, one line and band per regime."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

COLOURS = {"scratch": "tab:grey", "linear": "tab:blue", "finetune": "tab:orange"}


def accuracy_vs_size(summary: pd.DataFrame, title: str, out: Path) -> Path:
    """Mean test accuracy over seeds with a ±1 standard-error band, log-scaled examples per class."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), constrained_layout=True)
    for regime, part in summary.groupby("regime", sort=False):
        part = part.sort_values("examples_per_class")
        x, mean, err = part.examples_per_class, part["mean"], part.stderr.fillna(0)
        ax.plot(x, mean, marker="o", label=regime, color=COLOURS.get(regime))
        ax.fill_between(x, mean - err, mean + err, alpha=0.2, color=COLOURS.get(regime))
    ax.set_xscale("log")
    sizes = sorted(summary.examples_per_class.unique())
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training examples per class (log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(title="regime (mean ± s.e. over seeds)")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
