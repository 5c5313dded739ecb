"""The study's one-page report: a self-contained HTML file (figures embedded) with the headline per dataset, the
tables, the figures, the incomplete cells and the settings it was made with."""

from __future__ import annotations

import base64
import html
import platform
from importlib import metadata
from pathlib import Path

import pandas as pd
import yaml

from ..config import Params

TOOLS = ("torch", "timm", "numpy", "pandas", "scikit-learn", "scipy", "dvc", "mlflow", "matplotlib")
STYLE = (
    "body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}"
    "img{max-width:100%}pre{background:#f6f6f6;padding:1em;overflow:auto}"
)


def _points(value: float) -> str:
    return f"{value * 100:+.1f} points"


def headlines(gap: pd.DataFrame, crossover: pd.DataFrame) -> list[str]:
    """One sentence per dataset × backbone × pretrained arm: the gap at the smallest and largest studied sizes and
    where scratch catches up."""
    sentences = []
    for (dataset, backbone, arm), part in gap.groupby(["dataset", "backbone", "arm"], sort=True):
        part = part.sort_values("examples_per_class")
        first, last = part.iloc[0], part.iloc[-1]
        cross = crossover[
            (crossover.dataset == dataset) & (crossover.backbone == backbone) & (crossover.arm == arm)
        ]
        status = cross.status.iloc[0] if len(cross) else "no interval"
        ending = {
            "reached": f"scratch catches up at {cross.crossover.iloc[0]:g} per class"
            if cross.crossover.iloc[0] > first.examples_per_class
            else "the 95% interval includes 0 (or lies below it) already at the smallest size",
            "not reached": f"scratch does not catch up within the studied sizes (up to {last.examples_per_class:g})",
            "no interval": "no crossover: some size has fewer than two paired seeds, so no interval",
        }[status]
        sentences.append(
            f"{dataset} · {backbone}: {arm} pretraining adds {_points(first.gap)} at "
            f"{first.examples_per_class:g} example{'s' if first.examples_per_class != 1 else ''} per "
            f"class and {_points(last.gap)} at {last.examples_per_class:g}; {ending}."
        )
    return sentences


def accuracy_table(accuracy: pd.DataFrame) -> pd.DataFrame:
    """Sizes down, arms across: 'mean ± s.e.' in percent, per dataset and backbone."""
    text = accuracy.assign(
        cell=[
            f"{m * 100:.1f} ± {s * 100:.1f}" if pd.notna(s) else f"{m * 100:.1f}"
            for m, s in zip(accuracy["mean"], accuracy.stderr)
        ]
    )
    return text.pivot(index=["dataset", "backbone", "examples_per_class"], columns="arm", values="cell")


def gap_table(gap: pd.DataFrame) -> pd.DataFrame:
    text = gap.assign(
        cell=[
            f"{g * 100:+.1f} [{lo * 100:+.1f}, {hi * 100:+.1f}]" if pd.notna(lo) else f"{g * 100:+.1f}"
            for g, lo, hi in zip(gap.gap, gap.low, gap.high)
        ]
    )
    return text.pivot(index=["dataset", "backbone", "examples_per_class"], columns="arm", values="cell")


def _show(frame: pd.DataFrame) -> str:
    """A table as HTML, without the columns the arm name already says (regime, and depth unless used)."""
    drop = ["regime"] + (["depth"] if frame.get("depth", pd.Series(dtype=float)).isna().all() else [])
    return frame.drop(columns=drop, errors="ignore").round(3).to_html(index=False, na_rep="")


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for tool in TOOLS:
        try:
            versions[tool] = metadata.version(tool)
        except metadata.PackageNotFoundError:
            versions[tool] = "not installed"
    return versions


def _figure(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}"></figure>'


def _section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>\n{body}"


def build(
    tables: dict[str, pd.DataFrame],
    incomplete: dict[str, str],
    figures: list[Path],
    params: Params,
    commit: str | None,
) -> str:
    """The report as one HTML string."""
    gap, name = tables["gap"], params.study.name
    parts = [
        f"<h1>{html.escape(name)}: how much is ImageNet pretraining worth?</h1>",
        "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in headlines(gap, tables["crossover"])) + "</ul>"
        if len(gap)
        else "<p>No pretrained regime has a scratch partner yet: no gap to report.</p>",
        _section(
            "Test accuracy (%, mean ± standard error over seeds)",
            accuracy_table(tables["accuracy"]).to_html(na_rep=""),
        ),
        _section(
            "Gap to scratch (accuracy points, paired by seed, [95% t interval])",
            gap_table(gap).to_html(na_rep="") if len(gap) else "<p>none</p>",
        ),
        _section(
            "Crossover and effective data transferred",
            _show(tables["crossover"]) + _show(tables["effective_data"]) + _show(tables["transfer_exponent"]),
        ),
        _section("The three benefits (validation curves; means over seeds)", _show(tables["benefits"])),
        _section(
            "Per-layer transferability T (fine-tuned cells; means over seeds)",
            _show(tables["transferability"]) if len(tables["transferability"]) else "<p>no T recorded</p>",
        ),
        _section(
            f"Incomplete cells ({len(incomplete)}), left out of every mean",
            "<ul>"
            + "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in incomplete.items())
            + "</ul>"
            if incomplete
            else "<p>none: every cell of the grid finished.</p>",
        ),
        _section("Figures", "\n".join(_figure(f) for f in figures)),
        _section(
            "Settings",
            f"<p>git commit: <code>{html.escape(commit or 'unknown')}</code></p>"
            + "<p>"
            + ", ".join(f"{k} {v}" for k, v in tool_versions().items())
            + "</p>"
            + f"<pre>{html.escape(yaml.safe_dump(params.model_dump(mode='json'), sort_keys=False))}</pre>",
        ),
    ]
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(name)}</title>"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def read_tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {f.stem: pd.read_csv(f) for f in sorted(Path(folder).glob("*.csv"))}
