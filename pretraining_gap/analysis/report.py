"""The study's one-page report: a self-contained HTML file (figures embedded). The answer first (a headline per
dataset × backbone × pretrained arm, built from the tables), then the figures that carry it (accuracy, gap), a
glossary, the data and cells behind it, per-layer transferability, and every table folded at the end.

One unit convention throughout: accuracy in %, gaps in percentage points ("points"); log-odds and the error ratio
are named wherever they are used; sizes are training examples per class.
"""

from __future__ import annotations

import base64
import html
import platform
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..config import Analysis, Params
from . import answer, effort, forecasts, label_budget
from . import equivalence as eq
from .aggregate import is_pretrained
from .answer import size_text
from .effective_data import MIN_UNCENSORED, NOT_AHEAD
from .learning_curves import BEHIND, MAX_EXTRAPOLATION, MIN_SIZES, NOT_FITTED, NOT_WITHIN, UNDECIDED

TOOLS = ("torch", "timm", "numpy", "pandas", "scikit-learn", "scipy", "dvc", "mlflow", "matplotlib")
STYLE = (
    "body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em;line-height:1.45}"
    "table{border-collapse:collapse;margin:.5em 0 1em;display:block;overflow-x:auto;max-width:100%}"
    "td,th{border:1px solid #ccc;padding:.2em .5em;"
    "text-align:right}th{background:#f3f3f3}img{max-width:100%}pre{background:#f6f6f6;padding:1em;overflow:auto}"
    "figcaption{color:#444;font-size:.92em;margin:.2em 0 1.5em}details{margin:.4em 0}summary{cursor:pointer}"
    "dt{font-weight:bold;margin-top:.4em}dd{margin-left:1.5em}.answer li{margin:.6em 0}"
)
KEY = ["dataset", "backbone", "arm"]


def points(value: float) -> str:
    """An accuracy difference (fraction) in points: 30, 6.9, 0.4 (integers from 10 on)."""
    v = abs(value) * 100
    return f"{v:.0f}" if v >= 10 else f"{v:.1f}"


def errors(ratio: float) -> str:
    """Scratch errors per arm error as '2.1x fewer errors' (or 'more errors' below 1)."""
    if not np.isfinite(ratio):
        return "error ratio unknown"
    return f"{ratio:.1f}x fewer errors" if ratio >= 1 else f"{1 / ratio:.1f}x more errors"


def _size(n: float) -> str:
    """A measured size: '10'; 'all (109.7)' for the whole pool, the only size that can be a fraction (its mean
    examples per class)."""
    return f"{n:g}" if float(n).is_integer() else f"all ({n:.1f})"


def _per_class(n: float) -> str:
    return f"{_size(n)} example{'s' if n != 1 else ''} per class"


def _listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _pt(margin: float) -> str:
    """A margin (fraction) as an adjective: '1-point'."""
    return f"{margin * 100:g}-point"


def _mine(table: pd.DataFrame, key: tuple) -> pd.DataFrame:
    if table is None or table.empty:
        return pd.DataFrame(columns=table.columns if table is not None else [])
    chosen = np.logical_and.reduce([table[k] == v for k, v in zip(KEY, key)])
    return table[chosen]


def gap_sentence(gap: pd.DataFrame, baseline: bool) -> str:
    """The gap at the smallest and largest size in points with the error ratio, then in log-odds, saying so when
    the two scales move in opposite directions. A baseline arm's gap says where it stands against scratch."""
    gap = gap.sort_values("examples_per_class")
    first, last = gap.iloc[0], gap.iloc[-1]

    def verb(row, later: bool) -> str:
        if baseline:
            return ("ahead by " if row.points >= 0 else "behind by ") if later else ""
        same = later and (row.points >= 0) == (first.points >= 0)
        return "" if same else ("adds " if row.points >= 0 else "costs ")

    if baseline:
        side = "ahead of" if first.points >= 0 else "behind"
        sentence = f"{first.arm} (no pretraining) is {side} scratch by "
    else:
        sentence = "Pretraining " + verb(first, False)
    sentence += f"{points(first.points)} points ({errors(first.error_ratio)}) at {_per_class(first.examples_per_class)}"
    if len(gap) > 1:
        sentence += (
            f" and {verb(last, True)}{points(last.points)} ({errors(last.error_ratio)}) at "
            f"{_size(last.examples_per_class)}"
        )
    sentence += " [accuracy points, paired by seed]."
    if len(gap) > 1 and np.isfinite([first.logodds, last.logodds]).all():
        # magnitudes compare only while each scale keeps its sign; a sign change is stated as it is
        steady = first.points * last.points > 0 and first.logodds * last.logodds > 0
        shrinks = steady and abs(last.points) < abs(first.points)
        grows = steady and abs(last.logodds) > abs(first.logodds)
        change = (
            f"{first.logodds:+.2f} at {_size(first.examples_per_class)} to {last.logodds:+.2f} at "
            f"{_size(last.examples_per_class)}"
        )
        if shrinks and grows:
            sentence += (
                f" In log-odds (Kornblith et al.'s scale) it grows from {change}: the gap shrinks in points but "
                "grows in log-odds."
            )
        elif steady and not shrinks and not grows:
            sentence += (
                f" In log-odds it shrinks from {change}: the gap grows in points but shrinks in log-odds."
            )
        else:
            sentence += f" In log-odds: {change}."
    return sentence


def _crossover_interval(row, analysis: Analysis) -> str:
    """' [95%: 120 to 400]' in examples per class."""
    cap = analysis.cap
    return f" [{analysis.level:.0%}: {size_text(row.low, cap)} to {size_text(row.high, cap).replace('>', 'beyond ')}]"


def _backtest_text(row) -> str:
    if not np.isfinite(row.backtest_abs_error):
        return "no backtest: too few sizes"
    return f"backtest error {points(row.backtest_abs_error)} points"


def _asymptote_text(row, level: float) -> str:
    """'the fitted gap at unlimited data is +0.3 points [95%: −0.4 to +1.1; seeds and test images]'."""
    return (
        f"the fitted gap at unlimited data is {row.asymptotic_gap * 100:+.1f} points [{level:.0%}: "
        f"{row.asymptotic_gap_low * 100:+.1f} to {row.asymptotic_gap_high * 100:+.1f}; {row.noise}]"
    )


def _to_decide(row, classes: float) -> str:
    """What would decide an undecided crossover: seeds, or where no number of seeds would, test images."""
    if np.isfinite(row.seeds_needed):
        return f" About {row.seeds_needed:.0f} seeds would decide it (`make study-full` runs 5; study.seeds)."
    if np.isfinite(row.test_images_needed):
        per_class = f" ({row.test_images_needed / classes:,.0f} per class)" if np.isfinite(classes) else ""
        return (
            " No number of seeds would decide it: every seed is scored on the same test images. A test set of "
            f"about {row.test_images_needed:,.0f} images{per_class} would (test_per_class in params.yaml)."
        )
    if row.noise in ("", "test images"):
        return " Add seeds to decide it (study.seeds in params.yaml; `make study-full` runs 5)."
    return (
        " Neither more seeds nor a larger test set would decide it within reach: the gap sits on the margin."
    )


def crossover_sentence(row, analysis: Analysis, baseline: bool, classes: float = np.nan) -> str:
    """The crossover as a decision (learning_curves.crossovers): where scratch's fitted curve stays within the margin
    of the arm's, with its interval; or that it does not at any size; or that the arm is behind everywhere; or
    undecided, with why and what would decide it."""
    if row.decision == NOT_FITTED:
        return f"No fitted crossover: a learning curve needs at least {MIN_SIZES} measured sizes."
    if row.decision == BEHIND:
        return f"{row.arm} is behind scratch at every size measured: there is no gap for scratch to close."
    within = f"{row.margin * 100:g} point{'s' if row.margin != 0.01 else ''}"
    whom = f"of {row.arm}" if baseline else "of the pretrained arm"
    asymptote = _asymptote_text(row, analysis.level)
    if row.decision == NOT_WITHIN:
        return f"Scratch does not come within {within} {whom} at any size: {asymptote}, above the margin."
    if row.decision == UNDECIDED:
        return (
            f"Whether scratch comes within {within} {whom} is undecided ({row.reason}); {asymptote}."
            + _to_decide(row, classes)
        )
    start = f"Scratch is within {within} {whom} or ahead"
    interval = _crossover_interval(row, analysis)
    if row.status == "at smallest size":
        text = f"{start} from the smallest size measured on{interval}"
    else:
        text = f"{start} from about {size_text(row.estimate, analysis.cap)} per class on{interval}"
        if row.status == "extrapolated":
            text += f", extrapolated beyond the largest size measured ({row.largest_measured:g}; {_backtest_text(row)})"
    return f"{text}; {asymptote}."


def _what_decides(n: float, seeds: float, images: float) -> str:
    """'at 5, about 16 seeds'; 'at 50, a test set of about 1,027 images' where no number of seeds would."""
    if np.isfinite(seeds):
        return f"at {_size(n)}, about {seeds:.0f} seeds"
    if np.isfinite(images):
        return f"at {_size(n)}, a test set of about {images:,.0f} images"
    return f"at {_size(n)}, neither 1000 seeds nor a test set 100 times larger"


def decision_sentence(decisions: pd.DataFrame) -> str:
    """The per-size equivalence decisions, with the seeds that would decide the undecided sizes."""
    decisions = decisions.sort_values("examples_per_class")
    if decisions.empty or decisions.decision.isna().all():
        return ""
    parts = []
    for decision, part in decisions.groupby("decision", sort=False):
        sizes = [_size(n) for n in part.examples_per_class]
        text = f"{decision} at {_listing(sizes)}"
        if decision == eq.UNDECIDED:
            images = part.get("test_images_needed", pd.Series(np.nan, index=part.index))
            needed = [
                _what_decides(n, seeds, more)
                for n, seeds, more in zip(part.examples_per_class, part.seeds_needed, images)
                if not np.isnan(seeds)
            ]
            if needed:
                text += f" (what would decide {'it' if len(needed) == 1 else 'them'}: {'; '.join(needed)})"
        parts.append(text)
    return f"Per size: {'; '.join(parts)}."


def method_sentence(decisions: pd.DataFrame, analysis: Analysis) -> str:
    """How the per-size decisions were made: seeds, margin, correction, level."""
    if decisions.empty:
        return "Gaps are arm − scratch, paired by seed."
    seeds, sizes = int(decisions.seeds.max()), int(decisions.groupby(KEY).size().max())
    sentence = (
        f"Gaps are arm − scratch, paired by seed; every interval carries the noise of the seeds and of the test "
        f"images. Per-size decisions: one-sided t tests against the ±{_pt(analysis.margin)} margin with {seeds} "
        f"seed{'s' if seeds != 1 else ''}, Holm-corrected over the {sizes} sizes of each arm, at level "
        f"{1 - analysis.level:.2g}."
    )
    if seeds == 1:
        sentence += (
            " One seed: the intervals carry the test images' noise only, and the accuracies, effective data and "
            "transferability are single cells. Add seeds with `dvc exp run -S 'study.seeds=[1,2,3]'` (or `make "
            "study-full` for 5)."
        )
    return sentence


def _classes(tables: dict[str, pd.DataFrame]) -> pd.Series:
    """Dataset → its number of classes, from the `labels` table (empty without it)."""
    labels = tables.get("labels", pd.DataFrame(columns=["dataset", "classes"]))
    return labels.dropna(subset="classes").groupby("dataset").classes.first()


def class_sentence(rows: pd.DataFrame, level: float) -> str:
    """Which classes an arm helps most and least at one size (per_class.per_class_gaps rows), with intervals."""
    rows = rows.dropna(subset=["gap_low"]).sort_values(["gap", "class"], ascending=[False, True])
    if len(rows) < 3:
        return ""

    def said(r) -> str:
        interval = f"[{level:.0%}: {r.gap_low * 100:+.0f} to {r.gap_high * 100:+.0f}]"
        return f"{r['class']} ({r.gap * 100:+.0f} points {interval})"

    first = rows.iloc[0]
    return (
        f"Per class at {first.examples_per_class:g} per class ({int(first.images)} test images each), {first.arm} "
        f"helps most on classes {said(first)} and {said(rows.iloc[1])}, least on {said(rows.iloc[-1])}."
    )


def _budget_text(n: float, low: float, high: float, status: str, cap: float) -> str:
    """'12 [8, 20]', with ' (beyond the measured sizes)' where it is an extrapolation; 'not before the cap'."""
    if not np.isfinite(n):
        return f"not before the cap of {cap:,.0f}"
    interval = f" [{size_text(low, cap)}, {size_text(high, cap)}]" if np.isfinite(low) else ""
    where = " (beyond the measured sizes)" if status == label_budget.BEYOND_MEASURED else ""
    return f"{size_text(n, cap)}{interval}{where}"


def budget_sentences(budget: pd.DataFrame, arm: str, classes: float, analysis: Analysis) -> list[str]:
    """Per target accuracy: the examples per class `arm` and scratch need, and the labels pretraining saves, each
    with its interval (label_budget.label_budget rows of one dataset × backbone)."""
    cap, sentences = analysis.cap, []
    for target, part in budget.groupby("target", sort=True):
        mine, theirs = part[part.arm == arm], part[part.arm == "scratch"]
        if mine.empty or theirs.empty:
            continue
        a, s = mine.iloc[0], theirs.iloc[0]
        text = (
            f"To reach {target:.0%}: {arm} needs {_budget_text(a.examples_per_class, a.low, a.high, a.status, cap)} "
            f"examples per class, scratch {_budget_text(s.examples_per_class, s.low, s.high, s.status, cap)}"
        )
        if np.isfinite(a.ratio):
            images = f", {a.saved_per_class * classes:,.0f} images" if np.isfinite(classes) else ""
            interval = f" [{a.ratio_low:.1f}x to {a.ratio_high:.1f}x]" if np.isfinite(a.ratio_low) else ""
            text += (
                f": pretraining saves {a.ratio:.1f}x{interval} the labels ({a.saved_per_class:,.0f} per class"
                f"{images})"
            )
        sentences.append(text + ".")
    return sentences


def answer_lines(tables: dict[str, pd.DataFrame], analysis: Analysis) -> dict[tuple, str]:
    """(dataset, backbone) → the study's answer in one sentence (answer.line)."""
    table, classes = tables.get("answer", pd.DataFrame(columns=answer.COLUMNS)), _classes(tables)
    per_class = tables.get(
        "per_class", pd.DataFrame(columns=["dataset", "backbone", "arm", "examples_per_class"])
    )
    lines = {}
    for row in table.itertuples():
        line = answer.line(
            row, analysis.margin, analysis.cap, analysis.level, classes.get(row.dataset, np.nan)
        )
        mine = per_class[
            (per_class.dataset == row.dataset)
            & (per_class.backbone == row.backbone)
            & (per_class.arm == row.arm)
            & (per_class.examples_per_class == row.examples_per_class)
        ]
        lines[row.dataset, row.backbone] = f"{line} {class_sentence(mine, analysis.level)}".strip()
    return lines


def headlines(tables: dict[str, pd.DataFrame], analysis: Analysis) -> dict[tuple, list[str]]:
    """(dataset, backbone) → one paragraph per pretrained arm, then one per baseline arm (where scratch stands
    against it): the gap at the smallest and largest size, the crossover, the per-size decisions."""
    out: dict[tuple, list[str]] = {}
    gap = tables["gap"]
    classes = _classes(tables)
    keys = gap[KEY].drop_duplicates().itertuples(index=False)
    ordered = sorted(keys, key=lambda k: (k[0], k[1], not is_pretrained(_regime(gap, k)), k[2]))
    for key in ordered:
        baseline = not is_pretrained(_regime(gap, key))
        parts = [gap_sentence(_mine(gap, key), baseline)]
        for row in _mine(tables["crossover"], key).itertuples():
            parts.append(crossover_sentence(row, analysis, baseline, classes.get(key[0], np.nan)))
        parts.append(decision_sentence(_mine(tables["equivalence"], key)))
        label = f"{key[2]} vs scratch" if baseline else key[2]
        out.setdefault(key[:2], []).append(f"{label}: " + " ".join(p for p in parts if p))
    return out


def _regime(table: pd.DataFrame, key) -> str:
    return _mine(table, tuple(key)).regime.iloc[0]


def effective_sentence(effective: pd.DataFrame, exponents: pd.DataFrame, level: float) -> str:
    """D_T per size of one arm in words, bounds named, and α."""
    effective = effective.sort_values("examples_per_class")
    if effective.empty:
        return ""
    arm, texts = effective.arm.iloc[0], []
    behind = effective[effective.kind == NOT_AHEAD]
    for row in effective[effective.kind != NOT_AHEAD].itertuples():
        n = f"{row.examples_per_class:g}"
        if row.kind == "estimate":
            high = "beyond" if np.isinf(row.high) else f"{row.high:.1f}"
            interval = f" [{row.low:.1f} to {high}]" if np.isfinite(row.low) else ""
            texts.append(f"{row.transferred:.1f} at {n}{interval}")
        elif row.kind == "lower bound":
            extra = (
                f", about {row.transferred_extrapolated:.0f} extrapolated from scratch's loss fit"
                if np.isfinite(row.transferred_extrapolated)
                else ""
            )
            texts.append(f"at least {row.transferred:.0f} at {n}{extra}")
        else:
            texts.append(f"at most {row.transferred:.1f} at {n}")
    loss = (
        "temperature-scaled test loss"
        if effective.get("loss", pd.Series(["test"])).iloc[0] == "calibrated"
        else "test loss"
    )
    sentence = (
        f"{arm}: D_T (examples per class, on the {loss}) = {'; '.join(texts)} ({level:.0%} bootstrap intervals; "
        "negative: the arm's loss is worse than scratch's at the same size)."
        if texts
        else f"{arm}: no D_T."
    )
    if len(behind):
        sizes = _listing([f"{n:g}" for n in behind.examples_per_class])
        sentence += f" Not ahead of scratch at {sizes}: nothing transferred there."
    for row in exponents[exponents.family.isna() | (exponents.family == "")].itertuples():
        bounded = np.isfinite(row.alpha_low) and np.isfinite(row.alpha_high)
        interval = (
            f" [{row.alpha_low:.2f} to {row.alpha_high:.2f}]"
            if bounded
            else " (no bootstrap interval: too few draws where α was estimable)"
        )
        sentence += (
            f" α = {row.alpha:.2f}{interval} over {row.points} sizes."
            if row.status == "estimated"
            else f" α not estimable ({row.points} uncensored sizes with D_T > 0; {MIN_UNCENSORED} needed)."
        )
    return sentence


GLOSSARY = {
    "arm": "one line of the figures: a regime (scratch, linear, frozen, finetune, chainthaw, pixels), or a regime at "
    "one transfer depth (depth_k3). Pretrained arms start from ImageNet weights; baseline arms (pixels) do not.",
    "gap": "arm − scratch test accuracy, paired by seed (both trained on the same subset), in accuracy points; also "
    "in log-odds, logit(arm) − logit(scratch), the scale Kornblith et al. (2019) average on, and as the error "
    "ratio, scratch errors / arm errors. A gap can shrink in points while it grows in log-odds.",
    "margin": "the gap below which pretraining no longer matters (params.yaml analysis.margin).",
    "equivalence decision": "per size: 'pretraining helps' (gap shown above the margin), 'within margin' (two "
    "one-sided tests show it inside ± margin), 'scratch better' (shown below − margin), or 'undecided' (the seeds "
    "cannot tell; the report says about how many would). Holm-corrected over the sizes of an arm.",
    "learning curve": "test error against examples per class n, fitted as e_inf + a·n^−b (a broken power law, "
    "Caballero et al. 2022, only from 10 sizes, chosen by AICc) on logit(error), with a bootstrap over whole seeds.",
    "crossover": "the smallest n from which scratch's fitted curve stays within the margin of the arm's (or above "
    "it) up to the cap; its interval comes from the bootstrap refits; 'extrapolated' when it lies beyond the "
    "largest size measured. It is a decision: 'reached' only when the interval of the fitted gap at unlimited data "
    "(e_inf of scratch − e_inf of the arm, over seeds and test images) lies below the margin, the curves meet "
    "before the cap and the backtest supports it; 'not within the margin at any size' when that interval lies "
    "above it; otherwise 'undecided', with what would decide it.",
    "backtest": "each curve refitted without the largest size, asked to predict it; the error (points, the worse "
    "of the two arms) says how far to trust an extrapolation: only when it is within the margin and the crossover "
    f"within {MAX_EXTRAPOLATION:g}x the largest size.",
    "D_T": "effective data transferred (Hernandez et al. 2021): the extra examples per class scratch needs to reach "
    "the arm's test loss at n (D_E − n), read off scratch's loss curve; 'at least' when scratch does not get there "
    "within the measured sizes. Losses are temperature-scaled on each cell's validation split first (Guo et al. "
    "2017), so D_T measures transfer, not calibration; only where the arm's accuracy is above scratch's.",
    "α, β": "exponents of D_T ∝ n^α (and N^β across backbone sizes of one family, N = parameters).",
    "T": "per-layer transferability (Chen et al., arXiv 2212.00399): mean |θ_random − θ_finetuned| / mean "
    "|θ_pretrained − θ_finetuned| over a layer group's convolution and linear weights: how much nearer the "
    "fine-tuned weights stayed to their pretrained values than to a random init.",
    "steps to 90% odds": "(benefits table) the first validation step whose odds p/(1 − p) reach 90% of the run's "
    "best odds (Kornblith et al. 2019, Fig. 8).",
    "seed": "one nested subset series with its initialisation and data order; the unit that is paired and resampled.",
}


def glossary() -> str:
    return (
        "<dl>"
        + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in GLOSSARY.items())
        + "</dl>"
    )


def labels_text(labels: pd.DataFrame) -> str:
    """The labelled images per size, and how the validation labels compare with the training labels."""
    if labels.empty or labels.classes.isna().all():
        return "<p>Label counts need the prepared datasets (data/prepared/).</p>"
    notes = []
    for dataset, part in labels.groupby("dataset"):
        first = part.sort_values("examples_per_class").iloc[0]
        notes.append(
            f"{dataset}: every cell chose its learning rate (or C) and its stopping step on the same "
            f"{first.validation_labels:.0f} validation labels, {first.validation_labels / first.training_labels:.0f}x "
            f"the {first.training_labels:.0f} training labels of its smallest size."
        )
    shown = labels.rename(
        columns={
            "examples_per_class": "examples per class",
            "training_labels": "training labels",
            "validation_labels": "validation labels",
            "test_labels": "test labels",
        }
    )
    return "<p>" + " ".join(html.escape(n) for n in notes) + "</p>" + shown.to_html(index=False, na_rep="")


def unconverged(cells: pd.DataFrame) -> str:
    """The cells whose ladder reached its top rung with validation still gaining (when results record it)."""
    if cells is None or "converged" not in cells:
        return ""
    done = cells[cells.status == "finished"]
    flag = done.converged.map(lambda v: str(v).lower() in ("false", "0", "0.0"))
    bad = done[flag]
    if bad.empty:
        return "<p>Every finished cell converged: its ladder stopped when validation stopped gaining.</p>"
    counts = bad.groupby("arm").size()
    lines = "".join(
        f"<li>{html.escape(arm)}: {n} of {int((done.arm == arm).sum())} cells</li>"
        for arm, n in counts.items()
    )
    columns = [
        c
        for c in (
            "dataset",
            "backbone",
            "arm",
            "examples_per_class",
            "seed",
            "steps",
            "best_step",
            "budget_steps",
        )
        if c in bad
    ]
    return (
        "<p>Cells whose ladder reached its top rung with validation still gaining: their accuracy may be "
        "understated (a scratch arm stopped early inflates the gap).</p>"
        f"<ul>{lines}</ul>" + _folded("the unconverged cells", bad[columns].to_html(index=False, na_rep=""))
    )


def transferability_text(table: pd.DataFrame) -> str:
    """What Chen et al. found, then what these cells show, with steps beside T."""
    paper = (
        "Chen et al. (arXiv 2212.00399) define T per layer and find, against the consensus of Yosinski et al. (2014), "
        "that the lower layers are usually <em>not</em> the most transferable: they are domain-sensitive. T falls "
        "with more target data. T also grows with a layer's weight scale and shrinks with the number of optimisation "
        "steps, so T is compared like with like: between sizes trained for the same number of steps, and between "
        "layers with the weight scale in mind."
    )
    if table.empty:
        return f"<p>{paper}</p><p>No cell of this study recorded T.</p>"
    notes = []
    for (dataset, backbone, arm), part in table.groupby(KEY, sort=True):
        steps = part.groupby("examples_per_class").steps.mean()
        # read back from CSV: one rate is a number, several a string, none NaN
        rates = part.groupby("examples_per_class").lr.first().map(lambda v: "" if pd.isna(v) else f"{v}")
        top = part.loc[part.groupby("examples_per_class")["T"].idxmax()].set_index("examples_per_class").group
        leaders = top.unique()
        lead = (
            f"highest T in {leaders[0]} at every size"
            if len(leaders) == 1
            else "highest T in " + _listing([f"{g} at {n:g}" for n, g in top.items()])
        )
        text = f"{dataset} · {backbone} · {arm}: {lead}."
        if steps.notna().all():
            text += (
                " Optimisation steps and chosen learning rate (seeds' mean, rates): "
                + ", ".join(f"{s:.0f} at lr {rates[n]} at {n:g}" for n, s in steps.items())
                + "."
            )
            # data alone only between sizes whose seeds all took the same steps and the same single rate
            like = pd.DataFrame({"steps": steps.round(), "lr": rates})
            same = [
                list(g.index)
                for _, g in like.groupby(["steps", "lr"])
                if len(g) > 1 and g.lr.iloc[0] and "/" not in g.lr.iloc[0]
            ]
            for sizes in same:
                small, large = (
                    part[part.examples_per_class == sizes[0]],
                    part[part.examples_per_class == sizes[-1]],
                )
                ratio = (large.set_index("group")["T"] / small.set_index("group")["T"]).median()
                text += (
                    f" At the same steps and rate, {sizes[-1]:g} against {sizes[0]:g} per class changes T by "
                    f"{(ratio - 1) * 100:+.0f}% (median over groups): data alone."
                )
            if not same:
                text += (
                    " No two sizes share both their step count and their rate: between sizes, data, steps and "
                    "rate change together, so T says nothing about the data alone here."
                )
        notes.append(html.escape(text))
    return f"<p>{paper}</p><p>" + "</p><p>".join(notes) + "</p>"


def _bold_arm(sentence: str) -> str:
    """A headline as a list item, its arm (before the first colon) in bold."""
    arm, _, rest = sentence.partition(": ")
    return f"<li><strong>{html.escape(arm)}</strong>: {html.escape(rest)}</li>"


def _figure(path: Path, caption: str = "") -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    text = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">{text}</figure>'


def _folded(title: str, body: str) -> str:
    return f"<details><summary>{html.escape(title)}</summary>{body}</details>"


def _section(title: str, body: str, level: int = 2) -> str:
    return f"<h{level}>{html.escape(title)}</h{level}>\n{body}"


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for tool in TOOLS:
        try:
            versions[tool] = metadata.version(tool)
        except metadata.PackageNotFoundError:
            versions[tool] = "not installed"
    return versions


def _percent(frame: pd.DataFrame, columns, digits: int = 1) -> pd.DataFrame:
    frame = frame.copy()
    for c in columns:
        if c in frame:
            frame[c] = (pd.to_numeric(frame[c], errors="coerce") * 100).round(digits)
    return frame


def _show(frame: pd.DataFrame, digits: int = 3) -> str:
    """A table as HTML without the columns the arm name already says (regime, and depth unless used)."""
    drop = ["regime"] + (["depth"] if frame.get("depth", pd.Series(dtype=float)).isna().all() else [])
    return frame.drop(columns=drop, errors="ignore").round(digits).to_html(index=False, na_rep="")


def accuracy_table(accuracy: pd.DataFrame) -> pd.DataFrame:
    """Sizes down, arms across: 'mean ± s.e.' in %, per dataset and backbone."""
    text = accuracy.assign(
        cell=[
            f"{m * 100:.1f} ± {s * 100:.1f}" if pd.notna(s) else f"{m * 100:.1f}"
            for m, s in zip(accuracy["mean"], accuracy.stderr)
        ]
    )
    return text.pivot(index=["dataset", "backbone", "examples_per_class"], columns="arm", values="cell")


def gap_table(gap: pd.DataFrame, decisions: pd.DataFrame) -> pd.DataFrame:
    """Per arm and size: the gap in points [interval], log-odds [interval], error ratio, decision."""
    merged = gap.merge(
        decisions[[*KEY, "examples_per_class", "decision", "seeds_needed"]],
        on=[*KEY, "examples_per_class"],
        how="left",
    )
    return pd.DataFrame(
        {
            "dataset": merged.dataset,
            "backbone": merged.backbone,
            "arm": merged.arm,
            "examples per class": merged.examples_per_class,
            "points [interval]": [
                f"{p * 100:+.1f} [{lo * 100:+.1f}, {hi * 100:+.1f}]" if pd.notna(lo) else f"{p * 100:+.1f}"
                for p, lo, hi in zip(merged.points, merged.points_low, merged.points_high)
            ],
            "log-odds [interval]": [
                f"{p:+.2f} [{lo:+.2f}, {hi:+.2f}]" if pd.notna(lo) else f"{p:+.2f}"
                for p, lo, hi in zip(merged.logodds, merged.logodds_low, merged.logodds_high)
            ],
            "error ratio [interval]": [
                f"{r:.2f} [{lo:.2f}, {hi:.2f}]" if pd.notna(lo) else f"{r:.2f}"
                for r, lo, hi in zip(merged.error_ratio, merged.error_ratio_low, merged.error_ratio_high)
            ],
            "decision": merged.decision,
            "seeds to decide": merged.seeds_needed,
        }
    )


def _tables(tables: dict[str, pd.DataFrame]) -> str:
    points_columns = ["e_inf", "e_inf_low", "e_inf_high", "rmse", "backtest_abs_error"]
    crossover = _percent(tables["crossover"], ["margin", "backtest_abs_error"])
    folded = [
        (
            "Test accuracy (%, mean ± standard error over seeds)",
            accuracy_table(tables["accuracy"]).to_html(na_rep=""),
        ),
        (
            "Gap to scratch on three scales, with the equivalence decision (points, log-odds, error ratio; "
            "t intervals per size)",
            gap_table(tables["gap"], tables["equivalence"]).to_html(index=False, na_rep=""),
        ),
        (
            "Equivalence tests (gap and margin in points; Holm-adjusted p-values)",
            _show(_percent(tables["equivalence"], ["gap", "sd", "margin"])),
        ),
        (
            "Learning-curve fits (error = e_inf + a·n^−b; e_inf, rmse and backtest in points)",
            _show(_percent(tables["learning_curves"], points_columns).dropna(axis=1, how="all")),
        ),
        ("Crossover (examples per class; margin and backtest in points)", _show(crossover, 2)),
        ("Effective data transferred (examples per class, on test loss)", _show(tables["effective_data"], 2)),
        ("Transfer exponents α (and β)", _show(tables["transfer_exponent"].dropna(axis=1, how="all"))),
        (
            "The three benefits (validation curves; accuracies in %, steps as counted)",
            _show(
                _percent(
                    tables["benefits"],
                    [c for c in tables["benefits"] if c.split("_vs")[0] in ("start", "area", "final")],
                ),
                1,
            )
            if len(tables["benefits"])
            else "<p>No validation curves recorded.</p>",
        ),
    ]
    return "\n".join(_folded(title, body) for title, body in folded)


def _figures_of(figures: list[Path], stem: str, kinds: tuple[str, ...]) -> list[Path]:
    return [f for kind in kinds for f in figures if f.name == f"{stem}_{kind}.png"]


CAPTIONS = {
    "label_budget": "Examples per class each arm needs to reach each target test accuracy (log scale), with the "
    "bootstrap interval; open markers: beyond the measured sizes (the fitted law's extrapolation); arrows at the top: "
    "not before the cap.",
    "accuracy": "Test accuracy (left, %) and test error (right, %, log scale) against training examples per "
    "class: faint dots are seeds, markers the log-odds means, lines the fitted learning curves with their bootstrap "
    "bands (dashed: extrapolated to the crossover or the cap); dotted verticals: where scratch comes within the "
    "margin of a pretrained arm.",
    "gap": "The gap to scratch per size: left in accuracy points with the margin shaded grey, each size's decision "
    "as its marker (filled: decided, open: undecided), t intervals as bars and the fitted curves' difference with "
    "its band; right the same gaps in log-odds.",
    "effective_data": "Effective data transferred D_T against size, on the test loss (filled: estimates with "
    "bootstrap intervals; open triangles: bounds; crosses: extrapolated from scratch's fitted loss curve).",
    "transferability": "Per-layer transferability T by layer group (left, one line per size with its optimisation "
    "steps) and against the optimisation steps (right, one line per layer group).",
    "learning": "Validation accuracy against optimisation step, per size: one line per seed and arm.",
    "depth": "Test accuracy against transfer depth k (pretrained layer groups kept), per size.",
}


def _pair_figures(figures: list[Path], pairs: list[tuple[str, str]], kinds: tuple[str, ...]) -> list[Path]:
    """The figures of these kinds, dataset × backbone by dataset × backbone."""
    return [f for dataset, backbone in pairs for f in _figures_of(figures, f"{dataset}_{backbone}", kinds)]


def _answer_section(
    dataset: str,
    backbone: str,
    sentences: list[str],
    decisions: pd.DataFrame,
    figures: list[Path],
    analysis: Analysis,
) -> str:
    """One dataset × backbone: how the gaps were decided, a headline per arm, the accuracy and gap figures."""
    stem = f"{dataset}_{backbone}"
    mine = decisions[(decisions.dataset == dataset) & (decisions.backbone == backbone)]
    answer = (
        f"<p>{html.escape(method_sentence(mine, analysis))}</p><ul class='answer'>"
        + "".join(_bold_arm(s) for s in sentences)
        + "</ul>"
        if sentences
        else "<p>No arm has a scratch partner yet: no gap to report.</p>"
    )
    shown = "".join(
        _figure(f, CAPTIONS[f.stem.removeprefix(stem + "_")])
        for f in _figures_of(figures, stem, ("accuracy", "gap"))
    )
    return _section(f"{dataset} · {backbone}", answer + shown)


def _budget_section(tables: dict[str, pd.DataFrame], figures: list[Path], analysis: Analysis) -> str:
    """The label budget of the answer's arm against scratch per dataset × backbone, with its figure."""
    budget = tables.get("label_budget", pd.DataFrame())
    answers, classes, body = tables.get("answer", pd.DataFrame()), _classes(tables), []
    for row in answers.itertuples():
        mine = budget[(budget.dataset == row.dataset) & (budget.backbone == row.backbone)]
        sentences = budget_sentences(mine, row.arm, classes.get(row.dataset, np.nan), analysis)
        if sentences:
            stem = f"{row.dataset}_{row.backbone}"
            shown = "".join(
                _figure(f, CAPTIONS["label_budget"]) for f in _figures_of(figures, stem, ("label_budget",))
            )
            items = "".join(f"<li>{html.escape(t)}</li>" for t in sentences)
            body.append(f"<h3>{html.escape(f'{row.dataset} · {row.backbone}')}</h3><ul>{items}</ul>{shown}")
    if not body:
        return ""
    intro = (
        "<p>Examples per class each arm needs to reach a target test accuracy (90, 95 and 99%), read "
        "off its fitted learning curve, with the interval of the bootstrap over seeds and test images; beyond the "
        "measured sizes it is the fitted law's extrapolation.</p>"
    )
    return _section("The label budget", intro + "".join(body))


def _forecast_section(tables: dict[str, pd.DataFrame], level: float) -> str:
    """How well the forecasts computed before training ranked what the study measured."""
    check = tables.get("forecast_check", pd.DataFrame())
    if check.empty:
        return ""
    intro = (
        "<p>LogME (You et al. 2021), LEEP (Nguyen et al. 2020), NCE (Tran et al. 2019) and H-score (Bao et al. "
        "2019, with Ledoit-Wolf shrinkage) score a pretrained backbone on each training subset from its features "
        "and ImageNet head alone, in seconds, before any training (the forecast stage). Below, their rank "
        "correlation with what the study then measured. They were designed to compare backbones on one target "
        "set: over cells of several sizes they also answer to the subset's size, so one that ranks there may only "
        "track the size. Choosing a backbone is tested by the rows across backbones at one size (three or more "
        "backbones: <code>make study-ladder</code>); a forecast is trusted only where it ranks with an interval "
        "above zero.</p>"
    )
    items = "".join(f"<li>{html.escape(t)}</li>" for t in forecasts.sentences(check, level))
    table = _folded("the forecasts beside the measured cells", _show(tables["forecasts"], 3))
    return _section("Forecasts before training", f"{intro}<ul>{items}</ul>{table}")


def _effective_section(
    tables: dict[str, pd.DataFrame], figures: list[Path], pairs: list[tuple[str, str]], level: float
) -> str:
    """D_T in words per arm, with α, and its figures."""
    effective, exponents = tables["effective_data"], tables["transfer_exponent"]
    words = [
        effective_sentence(_mine(effective, key), _mine(exponents, key), level)
        for key in effective[KEY].drop_duplicates().itertuples(index=False)
    ]
    shown = "".join(
        _figure(f, CAPTIONS["effective_data"]) for f in _pair_figures(figures, pairs, ("effective_data",))
    )
    return _section(
        "Effective data transferred (on the test loss)",
        "<ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in words if w) + "</ul>" + shown,
    )


def _tuning_section(cells: pd.DataFrame | None, convergence: pd.DataFrame, margin: float) -> str:
    """Tuning effort per arm beside its accuracy, and the arms whose validation moved at twice their budget."""
    if cells is None or "tuning_steps" not in cells:
        return ""
    moved = effort.moved(convergence, margin)
    checked = (
        "<p>At twice its chosen budget (<code>make convergence-check</code>), validation moved by more than the "
        f"margin for: {html.escape('; '.join(moved))}.</p>"
        if moved
        else "<p>At twice its chosen budget (<code>make convergence-check</code>), no arm's validation moved by "
        "more than the margin.</p>"
        if len(convergence)
        else "<p>The convergence check has not run here (<code>make convergence-check</code>).</p>"
    )
    return _section(
        "Tuning effort per arm",
        "<p>Every gradient arm is chosen by one procedure (successive halving up one budget ladder, on "
        "validation): its effort per cell, beside what it reached. The winner's curse is how much choosing on "
        "half of validation overstates the choice on the other half.</p>"
        + effort.table(cells).to_html(index=False, na_rep="")
        + checked,
    )


def _cells_section(incomplete: pd.DataFrame, cells: pd.DataFrame | None) -> str:
    """The cells left out of the means, and those that stopped on their step budget."""
    left_out = (
        f"<p>{len(incomplete)} cell{'s' if len(incomplete) != 1 else ''} without an accuracy, left out of "
        "every mean:</p>" + incomplete.to_html(index=False, na_rep="")
        if len(incomplete)
        else "<p>Every cell of the grid finished.</p>"
    )
    return _section("Cells", left_out + unconverged(cells))


def _transferability_section(
    transfer: pd.DataFrame, figures: list[Path], pairs: list[tuple[str, str]]
) -> str:
    """T in words against Chen et al., its figures, and its table folded."""
    return _section(
        "Per-layer transferability T",
        transferability_text(transfer)
        + "".join(
            _figure(f, CAPTIONS["transferability"])
            for f in _pair_figures(figures, pairs, ("transferability",))
        )
        + (
            _folded("T per layer group and size, with the steps", _show(transfer, 2)) if len(transfer) else ""
        ),
    )


def _more_figures(figures: list[Path], pairs: list[tuple[str, str]]) -> list[str]:
    """The validation curves, accuracy against depth and against inference cost, as HTML figures."""
    return [
        _figure(f, CAPTIONS.get(f.stem.rsplit("_", 1)[-1], ""))
        for f in _pair_figures(figures, pairs, ("learning", "depth"))
    ] + [
        _figure(f, "Test accuracy against inference cost per backbone, per size.")
        for f in figures
        if f.stem.endswith("_cost")
    ]


def _settings_section(params: Params, commit: str | None) -> str:
    """The git commit, the tools' versions and params.yaml as read."""
    return _section(
        "Settings",
        f"<p>git commit: <code>{html.escape(commit or 'unknown')}</code></p><p>"
        + ", ".join(f"{k} {v}" for k, v in tool_versions().items())
        + "</p>"
        + _folded(
            "params.yaml as read",
            f"<pre>{html.escape(yaml.safe_dump(params.model_dump(mode='json'), sort_keys=False))}</pre>",
        ),
    )


def build(
    tables: dict[str, pd.DataFrame],
    cells: pd.DataFrame | None,
    figures: list[Path],
    params: Params,
    commit: str | None,
    convergence: pd.DataFrame | None = None,
) -> str:
    """The report as one HTML string (module docstring). `tables`: results/tables/ by name; `cells`: cells.csv;
    `convergence`: the convergence check's table, where it ran."""
    name, analysis = params.study.name, params.analysis
    said = headlines(tables, analysis) if len(tables["gap"]) else {}
    parts = [
        f"<h1>{html.escape(name)}: how much is ImageNet pretraining worth, and when does it stop mattering?</h1>",
        "<p><em>Accuracy in %, gaps in percentage points (points) unless a sentence names log-odds or the error "
        "ratio; sizes in training examples per class. Terms: see the glossary below.</em></p>",
    ]
    lines = answer_lines(tables, analysis)
    if lines:
        parts.append(
            "<h2>The answer</h2><ul class='answer'>"
            + "".join(
                f"<li><strong>{html.escape(f'{d} · {b}')}</strong>: {html.escape(t)}</li>"
                for (d, b), t in lines.items()
            )
            + "</ul>"
        )
    pairs = sorted(set(tables["accuracy"][["dataset", "backbone"]].itertuples(index=False, name=None)))
    for dataset, backbone in pairs:
        sentences = said.get((dataset, backbone), [])
        parts.append(_answer_section(dataset, backbone, sentences, tables["equivalence"], figures, analysis))
    budget = _budget_section(tables, figures, analysis)
    if budget:
        parts.append(budget)
    parts.append(_section("Glossary", glossary()))
    forecast = _forecast_section(tables, analysis.level)
    if forecast:
        parts.append(forecast)
    if len(tables["effective_data"]):
        parts.append(_effective_section(tables, figures, pairs, analysis.level))
    parts.append(_section("Labels per size", labels_text(tables.get("labels", pd.DataFrame()))))
    parts.append(
        _tuning_section(cells, pd.DataFrame() if convergence is None else convergence, analysis.margin)
    )
    parts.append(_cells_section(tables.get("incomplete", pd.DataFrame()), cells))
    parts.append(_transferability_section(tables["transferability"], figures, pairs))
    more = _more_figures(figures, pairs)
    if more:
        parts.append(_section("More figures", "".join(more)))
    parts.append(_section("Tables", _tables(tables)))
    parts.append(_settings_section(params, commit))
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(name)}</title>"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def read_tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {f.stem: pd.read_csv(f) for f in sorted(Path(folder).glob("*.csv"))}
