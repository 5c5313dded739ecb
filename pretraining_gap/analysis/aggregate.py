"""Aggregation: read the grid's cell results and write the tables, the DVC metrics, the curves and the figures.

The answer's tables (results/tables/<name>.csv), each described where it is computed:
- `accuracy` (curves.summarise): mean, standard error and log-odds mean per arm and size;
- `gap` (scales.gap_scales): every arm − scratch, paired by seed, in accuracy points, log-odds and error ratio;
- `equivalence` (equivalence.equivalence): per size "pretraining helps" / "within margin" / "scratch better" /
  "undecided" against `analysis.margin`, Holm-corrected over the sizes, with the seeds that would decide;
- `learning_curves` (learning_curves.learning_curves): the fitted law per arm with bootstrap intervals;
- `crossover` (learning_curves.crossovers): the size from which scratch stays within the margin, with its interval,
  backtest and trust;
- `label_budget` (label_budget.label_budget): examples per class each arm needs to reach each target accuracy
  (label_budget.TARGETS), and the labels pretraining saves, with intervals;
- `effective_data`, `transfer_exponent` (effective_data): D_T on the temperature-scaled test loss (`loss`:
  "calibrated"; "test" where cells lack per-image outputs), α (and β across a family);
- `per_class` (per_class.per_class_gaps): every arm − scratch on each class's test images, with intervals;
- `answer` (answer.answers): the one-line answer per dataset × backbone, every number with its interval;
- `forecasts`, `forecast_check` (forecasts): the forecast stage's LogME, LEEP, NCE and H-score beside the measured
  fine-tuned accuracy and gap of the same cells, and their rank correlations with intervals;
- `benefits`, `transferability` (with the optimisation steps beside T), `incomplete`, `labels`.

Accuracies are clipped to [ε, 1 − ε] on the log-odds scale, ε half an image of the dataset's own test set
(scales.clip_epsilon, `test_images`). The margin, cap, bootstrap and level come from params.yaml `analysis`
(config.Analysis holds their defaults).

Every non-scratch arm is compared with scratch (gap = arm − scratch). Pretrained arms (config.REGIMES[r].pretrained)
are the answer; the others (e.g. `pixels`) are baselines that say where scratch stands. Effective data transferred
is only computed for pretrained arms: nothing is transferred to a baseline.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import results
from ..config import REGIMES, Analysis, Params
from ..data.prepared import POOL, TEST, VAL
from ..grid import ALL
from . import (
    answer,
    benefits,
    calibration,
    curves,
    effective_data,
    equivalence,
    forecasts,
    label_budget,
    learning_curves,
    per_class,
    plots,
    scales,
)
from .answer import size_text
from .seeds import SCRATCH

# fields too large or nested for a column of cells.csv (histories, traces, per-layer values, per-image outputs):
# they stay in the result files
PER_CELL = (
    "identity_digests",
    "machine",
    "history",
    "trace",
    "transferability",
    "weight_scale",
    "test_logits",
    "test_labels",
    "val_logits",
    "val_labels",
    "traceback",
)
# cells.csv: every other field of a cell result, with the arm beside the regime
COLUMNS = ["arm", *(c for c in results.COLUMNS if c not in PER_CELL)]
FIGURE_TABLES = (  # the tables one dataset × backbone's figures read
    "accuracy",
    "gap",
    "equivalence",
    "crossover",
    "effective_data",
    "transferability",
    "label_budget",
)
SUMMARY = "summary.json"  # the study's row of `dvc metrics show`; each arm has its own row (see `metrics`)


def is_pretrained(regime: str) -> bool:
    """Whether a regime starts from pretrained weights (its gap to scratch is the answer) rather than being a
    baseline trained without them (scratch itself, `pixels`)."""
    return REGIMES[regime].pretrained


@dataclass
class Aggregated:
    cells: pd.DataFrame  # one row per grid cell, finished or not (status column)
    tables: dict[str, pd.DataFrame]  # name → table, also written as results/tables/<name>.csv
    fits: list[learning_curves.ArmFit]  # the fitted learning curves behind `learning_curves` and `crossover`
    metrics: dict[str, dict] = field(default_factory=dict)  # path under metrics/ → its content
    figures: list[Path] = field(default_factory=list)

    @property
    def finished(self) -> pd.DataFrame:
        return self.cells[self.cells.status == "finished"]


def load_cells(params: Params, root: Path) -> pd.DataFrame:
    """One row per cell of the current grid (cells outside it, an old size say, are left out), one column per
    result field. A cell without a result file gets status "missing"; failed and missing cells are kept so they
    are reported, and left out of every mean."""
    rows = []
    for cell in params.cells():
        result = results.read(results.path(results.group_dir(root, cell), cell))
        if result is None:
            rows.append(
                {
                    "dataset": cell.dataset,
                    "backbone": cell.backbone,
                    "regime": cell.regime,
                    "depth": cell.depth,
                    "examples_per_class": cell.examples_per_class,
                    "seed": cell.seed,
                    "status": "missing",
                    "reason": "no result file (run `dvc repro`)",
                }
            )
        else:
            rows.append(result.model_dump())
    table = pd.DataFrame(rows).reindex(columns=results.COLUMNS)
    # a size as a number: `all` is the mean pool images per class (classes may differ), so curves and fits use it
    table["size"] = table.examples_per_class.astype(str)
    every = table.examples_per_class == ALL
    table.loc[every, "examples_per_class"] = table.train_images[every] / table.classes[every]
    for column in ("examples_per_class", "depth", "test_accuracy", "test_loss", "steps", "best_step"):
        table[column] = pd.to_numeric(table[column], errors="coerce")
    table["arm"] = curves.arm_names(table.regime, table.depth)
    return table


def incomplete(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells without an accuracy: dataset, backbone, arm, examples_per_class, seed, status (failed or
    missing), reason."""
    bad = cells[(cells.status != "finished") | cells.test_accuracy.isna()]
    reason = bad.reason.where(bad.reason.map(lambda r: isinstance(r, str)), "no test accuracy")
    columns = ["dataset", "backbone", "arm", "examples_per_class", "seed", "status", "reason"]
    return bad.assign(reason=reason)[columns].sort_values(columns[:5], ignore_index=True)


def labels(params: Params, prepared: Path) -> pd.DataFrame:
    """Per dataset and size the labelled images a cell used: training (examples per class × classes; the whole
    pool for `all`, whose examples per class is then the pool's mean), validation (chooses learning rates and C,
    stops training) and test. Counted from the prepared split (data/prepared/<dataset>.npz); without that file
    the counts are unknown (NaN)."""
    rows = []
    for dataset in params.study.datasets:
        file = Path(prepared) / f"{dataset}.npz"
        classes = pool = validation = test = np.nan
        if file.exists():
            with np.load(file) as data:
                split = data["split"]
                classes, pool, validation, test = (
                    len(data["class_names"]),
                    int((split == POOL).sum()),
                    int((split == VAL).sum()),
                    int((split == TEST).sum()),
                )
        for n in params.study.sizes:
            training = pool if n == ALL else n * classes
            rows.append(
                {
                    "dataset": dataset,
                    "size": str(n),
                    "examples_per_class": training / classes,
                    "classes": classes,
                    "training_labels": training,
                    "validation_labels": validation,
                    "test_labels": test,
                }
            )
    return pd.DataFrame(rows).sort_values(["dataset", "examples_per_class"], kind="stable", ignore_index=True)


def _family(model: str) -> str:
    """A timm architecture without its size digits and pretrained tag: tf_efficientnet_lite0 → tf_efficientnet_lite."""
    return re.sub(r"\d+$", "", model.split(".")[0])


def _exponents(
    transfers: list[effective_data.Transfer], params: Params | None, costs: Path | None, level: float
) -> pd.DataFrame:
    """α per arm, then α and β per backbone family with two or more backbones that have cost records (their
    parameter counts are N; none without `params` and `costs`); family rows name their backbones joined by "+"."""
    table = effective_data.transfer_exponents(transfers, level).assign(family="")
    families = []
    for dataset in params.study.datasets if params is not None and costs is not None else ():
        counted = read_costs(costs, dataset)
        backbones = pd.DataFrame(
            [
                {
                    "backbone": b,
                    "family": _family(params.backbones[b].model),
                    "parameters": counted[b]["parameters"],
                }
                for b in params.study.backbones
                if b in counted
            ],
            columns=["backbone", "family", "parameters"],
        )
        mine = [t for t in transfers if t.key[0] == dataset]
        families.append(
            effective_data.family_exponents(mine, backbones, level).rename(columns={"backbones": "backbone"})
        )
    columns = ["dataset", "backbone", "family", "regime", "arm", *effective_data.EXPONENT_COLUMNS]
    return pd.concat([table, *families], ignore_index=True).reindex(columns=columns)


def _comparator_labels(table: pd.DataFrame) -> pd.DataFrame:
    """A baseline arm has no pretraining: its "pretraining helps" reads "<arm> better"."""
    baseline = ~table.regime.map(is_pretrained)
    named = table.arm + " better"
    return table.assign(
        decision=table.decision.where(~baseline | (table.decision != equivalence.HELPS), named)
    )


def test_images(labels: pd.DataFrame, cells: pd.DataFrame, params: Params) -> dict[str, int]:
    """Dataset → images in its test split, which sets how far its accuracies are clipped (scales.clip_epsilon):
    counted in the prepared split (`labels`, the table of that name), else test_per_class × the classes its cells
    recorded (prepare holds out exactly test_per_class images of every class). Datasets with neither are left out."""
    counted = labels.dropna(subset="test_labels").groupby("dataset").test_labels.first()
    recorded = cells.dropna(subset="classes").groupby("dataset").classes.max()
    sizes = {d: params.datasets[d].test_per_class * int(n) for d, n in recorded.items()}
    return sizes | {d: int(n) for d, n in counted.items()}


def _dataset_tables(
    done: pd.DataFrame, analysis: Analysis, epsilon: float
) -> tuple[dict[str, pd.DataFrame], list[learning_curves.ArmFit], list[effective_data.Transfer]]:
    """The tables of one dataset's finished cells (module docstring), its accuracies clipped to [ε, 1 − ε], with
    the learning-curve fits and the transfers behind them."""
    level, margin = analysis.level, analysis.margin
    fits = learning_curves.fit_arms(done, analysis.bootstrap, epsilon)
    pretrained_or_scratch = done[done.regime.map(is_pretrained) | (done.regime == SCRATCH)]
    calibrated = calibration.calibrated_losses(pretrained_or_scratch)
    # one loss for every arm: temperature-scaled where every cell stored its outputs, else the raw test loss
    loss = "calibrated_loss" if len(calibrated) and calibrated.notna().all() else "test_loss"
    transfers = effective_data.effective_transfers(
        pretrained_or_scratch.assign(calibrated_loss=calibrated), analysis.bootstrap, analysis.cap, loss=loss
    )
    tables = {
        "accuracy": curves.summarise(done, epsilon),
        "gap": scales.gap_scales(done, level, epsilon),
        "equivalence": _comparator_labels(equivalence.equivalence(done, margin, alpha=1 - level)),
        "learning_curves": learning_curves.learning_curves(fits, level),
        "crossover": learning_curves.crossovers(fits, margin, analysis.cap, level),
        "label_budget": label_budget.label_budget(fits, analysis.cap, level),
        "effective_data": effective_data.effective_data(transfers, level)
        .astype({"examples_per_class": int})
        .assign(loss=loss.removesuffix("_loss")),
        "benefits": benefits.summarise(done, epsilon),
        "transferability": curves.transferability(done),
        "per_class": per_class.per_class_gaps(done, level),
    }
    tables["answer"] = answer.answers(done, tables, level, epsilon)
    return tables, fits, transfers


def analyse(
    cells: pd.DataFrame,
    analysis: Analysis,
    test_images: dict[str, int],
    params: Params | None = None,
    costs: Path | None = None,
) -> tuple[dict[str, pd.DataFrame], list[learning_curves.ArmFit]]:
    """Every table of the study from the finished cells, and the learning-curve fits (module docstring).
    `test_images`: dataset → its test set's size (`test_images`); each dataset's accuracies are clipped to half an
    image of it (scales.clip_epsilon). `params` and `costs` add the family exponent β when two or more backbones of
    a family have cost records. Raises KeyError for a dataset with finished cells and no test set size."""
    done = cells[(cells.status == "finished") & cells.test_accuracy.notna()]
    # each dataset on its own: its ε is half an image of its own test set
    parts = [
        _dataset_tables(mine, analysis, scales.clip_epsilon(test_images[dataset]))
        for dataset, mine in done.groupby("dataset", sort=True)
    ]
    tables = {name: pd.concat([p[0][name] for p in parts], ignore_index=True) for name in parts[0][0]}
    transfers = [transfer for p in parts for transfer in p[2]]
    tables["transfer_exponent"] = _exponents(transfers, params, costs, analysis.level)
    tables["incomplete"] = incomplete(cells)
    return tables, [fit for p in parts for fit in p[1]]


def _round(value: float, digits: int = 1) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def crossover_text(row, cap: float) -> str:
    """A crossover as the metrics and the MLflow parent run show it, never a bare number: '180 [120, 400]' (examples
    per class, reached), else its decision: 'not within the margin at any size', 'behind scratch at every size',
    'undecided (needs 8 seeds)', 'undecided (needs 6,600 test images)', 'undecided', 'not fitted'
    (learning_curves.crossovers)."""
    if row.decision == learning_curves.REACHED:
        return f"{size_text(row.estimate, cap)} [{size_text(row.low, cap)}, {size_text(row.high, cap)}]"
    if row.decision != learning_curves.UNDECIDED:
        return row.decision
    if np.isfinite(row.seeds_needed):
        return f"undecided (needs {row.seeds_needed:.0f} seeds)"
    if np.isfinite(row.test_images_needed):
        return f"undecided (needs {row.test_images_needed:,.0f} test images)"
    return "undecided"


def metrics(cells: pd.DataFrame, tables: dict[str, pd.DataFrame], cap: float) -> dict[str, dict]:
    """The files under metrics/, one row each of `dvc metrics show` (which prints one row per file, one column
    per key, so a row per arm keeps it narrow): `summary.json` holds the study's finished / grid cells; each
    `<dataset>/<backbone>/<arm>.json` its finished / grid cells, `acc` (mean test accuracy, %) and `gap` (arm −
    scratch, accuracy points) at the smallest and largest size, `crossover` (crossover_text) and `labels` (the
    examples per class needed per target accuracy, label_budget; null beyond the cap; its interval is in the
    table and the report)."""
    finished = (cells.status == "finished") & cells.test_accuracy.notna()
    out: dict[str, dict] = {SUMMARY: {"cells": f"{int(finished.sum())}/{len(cells)}"}}
    for key, part in cells.groupby(["dataset", "backbone", "arm"], sort=True):
        node: dict = {"cells": f"{int(finished[part.index].sum())}/{len(part)}"}
        accuracy, gap = _ends(_of(tables["accuracy"], key)), _ends(_of(tables["gap"], key))
        if len(accuracy):
            node["acc"] = {str(r.examples_per_class): _round(r.mean * 100) for r in accuracy.itertuples()}
        if len(gap):
            node["gap"] = {str(r.examples_per_class): _round(r.points * 100) for r in gap.itertuples()}
        for row in _of(tables["crossover"], key).itertuples():
            node["crossover"] = crossover_text(row, cap)
        budget = _of(tables.get("label_budget", pd.DataFrame(columns=["dataset", "backbone", "arm"])), key)
        if len(budget):
            node["labels"] = {f"{r.target:g}": _round(r.examples_per_class) for r in budget.itertuples()}
        out["{}/{}/{}.json".format(*key)] = node
    return out


def _of(table: pd.DataFrame, key: tuple) -> pd.DataFrame:
    """The rows of one (dataset, backbone, arm)."""
    dataset, backbone, arm = key
    return table[(table.dataset == dataset) & (table.backbone == backbone) & (table.arm == arm)]


def _ends(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the smallest and the largest size (one row when they are the same; none for an empty table)."""
    table = table.sort_values("examples_per_class")
    return table.iloc[sorted({0, len(table) - 1})] if len(table) else table


def write_tables(
    cells: pd.DataFrame, tables: dict[str, pd.DataFrame], table: Path, tables_dir: Path, curves_dir: Path
) -> None:
    """cells.csv (one row per grid cell), results/tables/<name>.csv, and one CSV per arm for `dvc plots`."""
    table.parent.mkdir(parents=True, exist_ok=True)
    cells.reindex(columns=COLUMNS).to_csv(table, index=False)
    tables_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_csv(tables_dir / f"{name}.csv", index=False)
    for (dataset, backbone, arm), curve in tables["accuracy"].groupby(["dataset", "backbone", "arm"]):
        out = curves_dir / dataset / backbone / f"{arm}.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        curve.rename(columns={"mean": "test_accuracy"})[
            ["examples_per_class", "test_accuracy", "stderr"]
        ].to_csv(out, index=False)


def write_metrics(content: dict[str, dict], folder: Path) -> None:
    for name, node in content.items():
        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(node, indent=1) + "\n")


def read_metrics(folder: Path) -> dict:
    """metrics/ as one tree: the summary's keys at the top, each arm's file under dataset → backbone → arm."""
    tree: dict = {}
    for file in sorted(Path(folder).rglob("*.json")):
        content = json.loads(file.read_text())
        if file == Path(folder) / SUMMARY:
            tree.update(content)
            continue
        *branches, leaf = file.relative_to(folder).with_suffix("").parts
        node = tree
        for branch in branches:
            node = node.setdefault(branch, {})
        node[leaf] = content
    return tree


def read_costs(costs_dir: Path, dataset: str) -> dict[str, dict]:
    """Backbone → its cost record (results/costs/<dataset>/<backbone>.json), for the backbones that have one."""
    folder = Path(costs_dir) / dataset
    return (
        {f.stem: json.loads(f.read_text()) for f in sorted(folder.glob("*.json"))} if folder.is_dir() else {}
    )


def read_forecasts(forecasts_dir: Path) -> pd.DataFrame:
    """Every forecast stage's rows (results/forecasts/<dataset>/<backbone>.csv), in one table."""
    files = sorted(Path(forecasts_dir).glob("*/*.csv"))
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True) if files else pd.DataFrame()


def _of_pair(table: pd.DataFrame, dataset: str, backbone: str) -> pd.DataFrame:
    """The rows of one dataset × backbone."""
    return table[(table.dataset == dataset) & (table.backbone == backbone)]


def _answer_figures(
    tables: dict[str, pd.DataFrame],
    fits: list[learning_curves.ArmFit],
    runs: pd.DataFrame,
    analysis: Analysis,
    name: str,
    stem: Path,
) -> list[Path]:
    """One dataset × backbone's figures of the answer: accuracy with the fitted curves, the gap with the margin and
    decisions (with a scratch partner), the label budget, D_T (where some was transferred). `tables`: that pair's
    rows only."""
    figures = [
        plots.accuracy_vs_size(
            tables["accuracy"],
            runs,
            fits,
            tables["crossover"],
            analysis,
            f"{name}: test accuracy",
            Path(f"{stem}_accuracy.png"),
        )
    ]
    if not tables["gap"].empty:
        figures.append(
            plots.gap_vs_size(
                tables["gap"],
                tables["equivalence"],
                fits,
                tables["crossover"],
                analysis,
                f"{name}: gap to scratch",
                Path(f"{stem}_gap.png"),
            )
        )
    budget = tables["label_budget"]
    if len(budget):
        figures.append(
            plots.label_budget(
                budget,
                analysis.level,
                analysis.cap,
                f"{name}: the label budget",
                Path(f"{stem}_label_budget.png"),
            )
        )
    effective = tables["effective_data"]
    if len(effective) and effective.transferred.notna().any():
        figures.append(
            plots.effective_data(
                effective,
                analysis.level,
                f"{name}: effective data transferred (test loss)",
                Path(f"{stem}_effective_data.png"),
            )
        )
    return figures


def _training_figures(
    tables: dict[str, pd.DataFrame], runs: pd.DataFrame, name: str, stem: Path
) -> list[Path]:
    """One dataset × backbone's figures of how its cells trained, where recorded: validation curves, per-layer
    transferability, accuracy against depth k (two or more k). `tables`: that pair's rows only."""
    figures = []
    if runs.history.map(lambda h: isinstance(h, dict)).any():
        figures.append(
            plots.learning_curves(runs, f"{name}: validation curves", Path(f"{stem}_learning.png"))
        )
    if not tables["transferability"].empty:
        figures.append(
            plots.transferability(
                tables["transferability"],
                f"{name}: per-layer transferability",
                Path(f"{stem}_transferability.png"),
            )
        )
    if tables["accuracy"].depth.nunique() >= 2:
        figures.append(
            plots.accuracy_vs_depth(
                tables["accuracy"], f"{name}: accuracy vs transfer depth", Path(f"{stem}_depth.png")
            )
        )
    return figures


def _cost_figures(
    accuracy: pd.DataFrame, beside: pd.DataFrame, plots_dir: Path, costs_dir: Path
) -> list[Path]:
    """Per dataset with cost records for two or more of its backbones: accuracy against inference cost, and the
    backbone ladder (fine-tuned accuracy against training cost, with the forecasts' ranks: `beside`, the forecasts
    table)."""
    figures = []
    for dataset, summary in accuracy.groupby("dataset", sort=True):
        costs = read_costs(costs_dir, dataset)
        if len(set(costs) & set(summary.backbone)) >= 2:
            figures.append(
                plots.accuracy_vs_cost(
                    summary,
                    costs,
                    f"{dataset}: accuracy vs inference cost",
                    plots_dir / f"{dataset}_cost.png",
                )
            )
            mine = beside[beside.dataset == dataset]
            scores = mine.groupby(["backbone", "examples_per_class"], as_index=False)[
                list(forecasts.SCORES)
            ].mean()
            figures.append(
                plots.ladder(
                    summary,
                    costs,
                    scores,
                    f"{dataset}: the backbone ladder, fine-tuned",
                    plots_dir / f"{dataset}_ladder.png",
                )
            )
    return figures


def draw(
    cells: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    fits: list[learning_curves.ArmFit],
    analysis: Analysis,
    plots_dir: Path,
    costs_dir: Path,
) -> list[Path]:
    """The figures that can say something, per dataset × backbone (accuracy with fitted curves; the gap with the
    margin and decisions; D_T; validation curves; transferability; accuracy vs depth k) and per dataset (accuracy
    vs inference cost, with two or more backbones)."""
    figures = []
    finished = cells[cells.status == "finished"]
    pairs = tables["accuracy"][["dataset", "backbone"]].drop_duplicates().sort_values(["dataset", "backbone"])
    for dataset, backbone in pairs.itertuples(index=False):
        mine = {name: _of_pair(tables[name], dataset, backbone) for name in FIGURE_TABLES}
        name, stem = f"{dataset} · {backbone}", plots_dir / f"{dataset}_{backbone}"
        runs = _of_pair(finished, dataset, backbone)
        pair_fits = [f for f in fits if f.key[:2] == (dataset, backbone)]
        figures += _answer_figures(mine, pair_fits, runs, analysis, name, stem)
        figures += _training_figures(mine, runs, name, stem)
    beside = tables.get("forecasts", forecasts.beside_measured(pd.DataFrame(), finished))
    return figures + _cost_figures(tables["accuracy"], beside, plots_dir, costs_dir)


def run(
    params: Params,
    cells_root: Path,
    table: Path,
    tables_dir: Path,
    curves_dir: Path,
    metrics_dir: Path,
    plots_dir: Path,
    costs_dir: Path,
    prepared_dir: Path,
    forecasts_dir: Path,
) -> Aggregated:
    cells = load_cells(params, cells_root)
    counts = labels(params, prepared_dir)
    tables, fits = analyse(cells, params.analysis, test_images(counts, cells, params), params, costs_dir)
    tables["labels"] = counts
    finished = cells[(cells.status == "finished") & cells.test_accuracy.notna()]
    tables["forecasts"] = forecasts.beside_measured(read_forecasts(forecasts_dir), finished)
    tables["forecast_check"] = forecasts.check(tables["forecasts"], params.analysis.level)
    write_tables(cells, tables, table, tables_dir, curves_dir)
    content = metrics(cells, tables, params.analysis.cap)
    write_metrics(content, metrics_dir)
    figures = draw(cells, tables, fits, params.analysis, plots_dir, costs_dir)
    return Aggregated(cells, tables, fits, content, figures)
