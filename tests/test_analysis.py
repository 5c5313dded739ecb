"""The study's answer end to end on hand-made cell files with known curves: tables, metrics, figures, report."""

import json
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import tiny_params
from pretraining_gap import config, results
from pretraining_gap.analysis import aggregate, answer, benefits, effort, per_class, report
from pretraining_gap.analysis.scales import clip_epsilon, logit, sigmoid
from pretraining_gap.data.prepared import POOL, TEST, VAL, Prepared

SIZES, SEEDS = [1, 2, 5, 10, 25], [1, 2, 3]
# error = scale·n^−0.5 (see `error`), loss = 2·error
SCALE = {"scratch": 0.7, "linear": 0.5, "finetune": 0.3}
FAILED, MISSING = ("finetune", 1, 2), ("linear", 25, 2)
EPSILON = clip_epsilon(500)  # the prepared split of `study`: 50 test images in each of 10 classes


def test_steps_to_90pct_of_best_odds_not_of_best_accuracy():
    # odds 1, 7.3, 9, 5.7: 90% of the best odds is 8.1, first reached at step 30 (90% of best accuracy: step 20)
    assert benefits.steps_to_odds_fraction([10, 20, 30, 40], [0.5, 0.88, 0.9, 0.85], EPSILON) == 30


def test_area_is_normalised_by_the_steps_spanned():
    assert benefits.area([0, 10, 20], [0.0, 1.0, 1.0]) == pytest.approx(0.75)
    assert benefits.area([5], [0.4]) == pytest.approx(0.4)


def cell(regime, size, seed, accuracy, **extra):
    return {
        "dataset": "digits",
        "backbone": "tiny",
        "regime": regime,
        "examples_per_class": size,
        "seed": seed,
        "test_accuracy": accuracy,
        **extra,
    }


def test_benefits_compare_each_arm_with_scratch_per_size():
    history = {"step": [10, 20], "val_accuracy": [0.2, 0.6]}
    cells = pd.DataFrame(
        [
            cell("scratch", 1, 1, 0.5, history=history),
            cell("finetune", 1, 1, 0.8, history={"step": [5, 10], "val_accuracy": [0.7, 0.8]}),
            cell("linear", 1, 1, 0.7),
        ]
    )
    cells["depth"], cells["arm"] = np.nan, cells.regime
    table = benefits.summarise(cells, EPSILON).set_index("arm")
    assert "linear" not in table.index  # no validation curve, no benefits
    assert table.loc["finetune", "start_vs_scratch"] == pytest.approx(0.5)
    assert table.loc["finetune", "final_vs_scratch"] == pytest.approx(0.3)
    assert (
        table.loc["finetune", "steps_to_90pct_odds"] == 10
        and table.loc["scratch", "steps_to_90pct_odds"] == 20
    )


def error(regime, n, seed):
    """The known curve, each seed's subset a little easier or harder for every arm alike (±0.05 in log-odds, so
    the log-odds mean over seeds 1 and 3, or 1 to 3, is the curve itself)."""
    return float(sigmoid(logit(SCALE[regime] * n**-0.5, EPSILON) + 0.05 * (seed - 2)))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """3 regimes × 5 sizes × 3 seeds of hand-written result files on known power laws (one failed, one missing),
    a cost record for the one backbone and a prepared split of 10 classes (20 validation, 50 test images each)."""
    raw = tiny_params(Path("unused.safetensors"))
    raw["study"].update(sizes=SIZES, seeds=SEEDS)
    raw["analysis"]["bootstrap"] = 200
    params = config.Params.model_validate(raw)
    tmp_path = tmp_path_factory.mktemp("study")
    root = tmp_path / "cells"
    for c in params.cells():
        key = (c.regime, c.examples_per_class, c.seed)
        if key == MISSING:
            continue
        e = error(c.regime, c.examples_per_class, c.seed)
        result = cell(c.regime, c.examples_per_class, c.seed, 1 - e, test_loss=2 * e, steps=100, best_step=80)
        if c.regime != "linear":
            result["history"] = {"step": [40, 80, 100], "val_accuracy": [0.3, 1 - e, 1 - e]}
        if c.regime == "finetune":
            result["transferability"] = {
                "stem": 30.0 / c.examples_per_class**0.1,
                "blocks": 20.0,
                "head": 5.0,
            }
            result["steps"] = 50 * (1 + (c.examples_per_class >= 10))  # 50 steps up to 5 per class, then 100
            result["lr"] = 0.001 if c.examples_per_class <= 2 else 0.0003
        if key == FAILED:
            result = {**cell(c.regime, 1, 2, None), "status": "failed", "reason": "loss became NaN at step 3"}
            del result["test_accuracy"]
        result = {
            "fingerprint": "hand-made",
            "started_ms": 0,
            "finished_ms": 1,
            "status": "finished",
            **result,
        }
        results.write(results.path(results.group_dir(root, c), c), results.CellResult(**result))
    # forecasts: LogME follows fine-tuned accuracy, LEEP its reverse, NCE and H-score the seed alone
    forecasts = tmp_path / "forecasts" / "digits"
    forecasts.mkdir(parents=True)
    pd.DataFrame(
        [
            {"dataset": "digits", "backbone": "tiny", "examples_per_class": n, "seed": s, "images": 10 * n}
            | {"logme": -error("finetune", n, s), "leep": error("finetune", n, s), "nce": s, "h_score": s}
            for n in SIZES
            for s in SEEDS
        ]
    ).to_csv(forecasts / "tiny.csv", index=False)
    costs = tmp_path / "costs" / "digits"
    costs.mkdir(parents=True)
    (costs / "tiny.json").write_text(json.dumps({"parameters": 1e5, "gflops_per_image": 0.01}))
    split = np.repeat([POOL, VAL, TEST], [600, 200, 500]).astype(np.int8)
    labels = np.tile(np.arange(10), 130)
    Prepared(np.zeros((1300, 1, 1, 3), np.uint8), labels, split, [str(i) for i in range(10)]).save(
        tmp_path / "prepared" / "digits.npz"
    )
    return params, tmp_path


@pytest.fixture(scope="module")
def aggregated(study):
    """The aggregate of `study`, run once for the tests that read its outputs."""
    params, tmp_path = study
    return aggregate.run(
        params,
        tmp_path / "cells",
        tmp_path / "cells.csv",
        tmp_path / "tables",
        tmp_path / "curves",
        tmp_path / "metrics",
        tmp_path / "plots",
        tmp_path / "costs",
        tmp_path / "prepared",
        tmp_path / "forecasts",
    )


def test_forecasts_are_checked_against_the_measured_cells(aggregated):
    check = aggregated.tables["forecast_check"].set_index(["scope", "forecast", "target"])
    logme = check.loc[("every cell", "logme", "finetune_accuracy")]
    assert (
        logme.rho == pytest.approx(1.0) and logme.cells == 14 and logme.low > 0.9
    )  # 15 less the failed cell
    assert check.loc[("every cell", "leep", "finetune_accuracy")].rho == pytest.approx(-1.0)
    beside = aggregated.tables["forecasts"]
    assert len(beside) == 14 and (beside.gap > 0).all()  # fine-tune beats scratch on the planted curves


def test_failed_and_missing_cells_are_reported_and_left_out(study, aggregated):
    out = aggregated
    table = pd.read_csv(study[1] / "cells.csv")
    assert len(table) == 45 and table.status.value_counts().to_dict() == {
        "finished": 43,
        "failed": 1,
        "missing": 1,
    }
    incomplete = pd.read_csv(study[1] / "tables" / "incomplete.csv")
    assert incomplete[["arm", "examples_per_class", "seed", "status"]].values.tolist() == [
        ["finetune", 1, 2, "failed"],
        ["linear", 25, 2, "missing"],
    ]
    assert "loss became NaN at step 3" in incomplete.reason.iloc[0]
    accuracy = out.tables["accuracy"].set_index(["arm", "examples_per_class"])
    assert accuracy.loc[("finetune", 1), "seeds"] == 2
    assert accuracy.loc[("finetune", 1), "mean"] == pytest.approx(
        1 - (error("finetune", 1, 1) + error("finetune", 1, 3)) / 2
    )


def test_every_table_of_the_answer_is_written_with_its_columns(study, aggregated):
    tables = report.read_tables(study[1] / "tables")
    assert set(tables) == {
        "accuracy",
        "gap",
        "equivalence",
        "learning_curves",
        "crossover",
        "effective_data",
        "transfer_exponent",
        "benefits",
        "transferability",
        "incomplete",
        "labels",
        "answer",
        "per_class",
        "label_budget",
        "forecasts",
        "forecast_check",
    }
    wanted = [
        "dataset",
        "backbone",
        "regime",
        "margin",
        "estimate",
        "low",
        "high",
        "extrapolated",
        "decision",
    ]
    assert set(wanted + ["backtest_abs_error", "trusted", "status", "asymptotic_gap_low"]) <= set(
        tables["crossover"]
    )
    assert {"points", "logodds", "error_ratio", "points_low", "error_ratio_high", "noise"} <= set(
        tables["gap"]
    )
    assert {"decision", "seeds_needed", "test_images_needed", "se"} <= set(tables["equivalence"])
    assert list(tables["answer"].columns) == answer.COLUMNS and len(tables["answer"]) == 1
    assert {"T", "steps", "best_step"} <= set(tables["transferability"])
    labels = tables["labels"].set_index("examples_per_class")
    assert labels.loc[1, "training_labels"] == 10 and labels.loc[25, "training_labels"] == 250
    assert (labels.validation_labels == 200).all() and (labels.test_labels == 500).all()


def test_the_crossover_of_known_power_laws_is_found_and_flagged_as_extrapolated(study, aggregated):
    out = aggregated
    crossing = out.tables["crossover"].set_index("arm")
    # gap = (0.7 − scale)·n^−0.5 ≤ 0.01 from n = 1600 (finetune) and 400 (linear), beyond the 25 measured
    assert crossing.loc["finetune", "estimate"] == pytest.approx(1600, rel=0.05)
    assert crossing.loc["linear", "estimate"] == pytest.approx(400, rel=0.05)
    assert crossing.extrapolated.all() and not crossing.trusted.any()  # beyond 10x the largest size
    curves = out.tables["learning_curves"].set_index("arm")
    assert curves.loc["scratch", "b"] == pytest.approx(0.5, abs=0.02)
    decisions = out.tables["equivalence"].set_index(["arm", "examples_per_class"]).decision
    assert decisions[("finetune", 1)] == "pretraining helps"
    effective = out.tables["effective_data"].set_index(["arm", "examples_per_class"])
    # scratch's loss 1.4·n^−0.5 reaches finetune's 0.6·n^−0.5 at n·(7/3)²: D_T = 4.44 n (an estimate at n = 1)
    assert effective.loc[("finetune", 1), "transferred"] == pytest.approx(4.44, rel=0.05)
    assert effective.loc[("finetune", 10), "kind"] == "lower bound"


def test_metrics_are_one_narrow_row_per_arm(study, aggregated):
    out = aggregated
    folder = study[1] / "metrics"
    assert json.loads((folder / "summary.json").read_text()) == {"cells": "43/45"}
    finetune = json.loads((folder / "digits" / "tiny" / "finetune.json").read_text())
    assert finetune["cells"] == "14/15"
    assert finetune["acc"]["25"] == pytest.approx(100 * (1 - 0.3 / 5), abs=0.05)
    assert finetune["gap"]["25"] == pytest.approx(100 * 0.4 / 5, abs=0.05)
    row = out.tables["crossover"].set_index("arm").loc["finetune"]
    assert finetune["crossover"] == aggregate.crossover_text(row, 10000)
    assert not finetune["crossover"][
        0
    ].isdigit()  # an untrusted extrapolation is no answer: a decision instead
    scratch = json.loads((folder / "digits" / "tiny" / "scratch.json").read_text())
    assert set(scratch) == {"cells", "acc", "labels"} and set(scratch["labels"]) == {"0.9", "0.95", "0.99"}
    tree = aggregate.read_metrics(folder)
    assert tree["cells"] == "43/45" and tree["digits"]["tiny"]["linear"]["cells"] == "14/15"
    assert out.metrics["digits/tiny/finetune.json"] == finetune


def test_figures_are_drawn_when_they_can_say_something(study, aggregated):
    out = aggregated
    names = sorted(f.name for f in out.figures)
    assert names == sorted(
        f"digits_tiny_{k}.png"
        for k in ("accuracy", "gap", "effective_data", "label_budget", "learning", "transferability")
    )  # no cost figure: one backbone
    for figure in out.figures:
        with Image.open(figure) as image:
            assert image.width > 600 and image.height > 400


def test_depth_cells_get_their_figure(study, tmp_path):
    params, folder = study
    cells = aggregate.load_cells(params, folder / "cells")
    depth = pd.DataFrame(
        [
            {
                **cell("depth", n, s, 0.2 + k / 10 + n / 100),
                "status": "finished",
                "depth": float(k),
                "arm": f"depth_k{k}",
            }
            for n in (1, 3)
            for s in (1, 2)
            for k in (1, 2, 3)
        ]
    )
    cells = pd.concat([cells, depth], ignore_index=True)
    tables, fits = aggregate.analyse(cells, params.analysis, {"digits": 500})
    figures = aggregate.draw(cells, tables, fits, params.analysis, tmp_path / "plots", tmp_path / "none")
    assert tmp_path / "plots" / "digits_tiny_depth.png" in figures
    assert not any("cost" in f.name for f in figures)


def test_report_page_puts_the_answer_and_figures_first_and_folds_the_tables(study, aggregated):
    out = aggregated
    tables = report.read_tables(study[1] / "tables")
    page = report.build(tables, pd.read_csv(study[1] / "cells.csv"), out.figures, study[0], "abc123")
    # gap = 0.4·n^−0.5, error ratio 0.7 / 0.3
    assert (
        "<strong>finetune</strong>: Pretraining adds 40 points (2.3x fewer errors) at 1 example per class and 8.0 "
        "(2.3x fewer errors) at 25 [accuracy points, paired by seed]" in page
    )
    assert "Whether scratch comes within 1 point of the pretrained arm is undecided (" in page
    assert "seeds would decide it" in page and "per size: pretraining helps at 1" in page.lower()
    assert page.index("digits_tiny_accuracy") < page.index("digits_tiny_gap") < page.index("Glossary")
    assert page.index("Glossary") < page.index("<details>")
    for term in ("crossover", "margin", "equivalence decision", "D_T", "α, β", "backtest", "<dt>T</dt>"):
        assert term in page
    assert "200 validation labels, 20x the 10 training labels" in page
    assert "loss became NaN at step 3" in page and "abc123" in page and "timm" in page
    assert "lower layers are usually <em>not</em> the most transferable" in page
    assert "50 at lr 0.001 at 1, 50 at lr 0.001 at 2, 50 at lr 0.0003 at 5, 100 at lr 0.0003 at 10" in page
    # data alone only where steps and rate agree: 1 and 2 per class, 10 and 25; never 5 against 1
    assert "At the same steps and rate, 2 against 1 per class" in page and "25 against 10" in page
    assert "rate, 5 against 1 per class" not in page
    assert page.count("data:image/png;base64,") == len(out.figures)
    assert "ranks: LogME ρ +1.00 [+1.00, +1.00]" in page and "ranks backwards: LEEP ρ -1.00" in page


def gap_rows(arm, regime, sizes, points, logodds, ratios):
    return pd.DataFrame(
        {
            "dataset": "d",
            "backbone": "b",
            "regime": regime,
            "arm": arm,
            "examples_per_class": sizes,
            "points": points,
            "logodds": logodds,
            "error_ratio": ratios,
        }
    )


def test_the_headline_says_when_points_and_log_odds_disagree():
    sentence = report.gap_sentence(
        gap_rows("finetune", "finetune", [1, 50], [0.30, 0.07], [1.25, 1.94], [1.8, 6.4]), baseline=False
    )
    assert sentence.startswith(
        "Pretraining adds 30 points (1.8x fewer errors) at 1 example per class and 7.0 (6.4x fewer errors) at 50"
    )
    assert "the gap shrinks in points but grows in log-odds" in sentence
    flips = report.gap_sentence(
        gap_rows("linear", "linear", [1, 50], [0.13, -0.06], [0.55, -0.59], [1.2, 0.6]), baseline=False
    )
    assert "and costs 6.0 (1.7x more errors) at 50" in flips and "grows in log-odds" not in flips


def crossing(**fields):
    base = dict(
        arm="finetune",
        margin=0.01,
        estimate=180.0,
        low=120.0,
        high=400.0,
        met_fraction=1.0,
        largest_measured=50.0,
        extrapolated=True,
        backtest_abs_error=0.005,
        trusted=True,
        status="extrapolated",
        asymptotic_gap=0.002,
        asymptotic_gap_low=-0.003,
        asymptotic_gap_high=0.007,
        noise="seeds and test images",
        decision="reached",
        reason="",
        seeds_needed=np.nan,
        test_images_needed=np.nan,
    )
    return SimpleNamespace(**(base | fields))


def test_the_crossover_sentence_is_a_decision_with_its_evidence():
    analysis = config.Analysis()
    reached = report.crossover_sentence(crossing(), analysis, False)
    assert reached == (
        "Scratch is within 1 point of the pretrained arm or ahead from about 180 per class on [95%: 120 to 400], "
        "extrapolated beyond the largest size measured (50; backtest error 0.5 points); the fitted gap at "
        "unlimited data is +0.2 points [95%: −0.3 to +0.7; seeds and test images].".replace("−", "-")
    )
    above = report.crossover_sentence(
        crossing(decision="not within the margin at any size", asymptotic_gap_low=0.012, asymptotic_gap=0.02),
        analysis,
        False,
    )
    assert above.startswith("Scratch does not come within 1 point of the pretrained arm at any size")
    assert "180" not in above  # no crossover size where there is none
    seeds = report.crossover_sentence(
        crossing(decision="undecided", reason="straddles", seeds_needed=8.0), analysis, False
    )
    assert "is undecided (straddles)" in seeds and "About 8 seeds would decide it" in seeds
    images = report.crossover_sentence(
        crossing(decision="undecided", reason="r", seeds_needed=np.inf, test_images_needed=6600.0),
        analysis,
        False,
        classes=10,
    )
    assert "No number of seeds would decide it" in images and "6,600 images (660 per class)" in images
    behind = report.crossover_sentence(
        crossing(arm="linear", decision="behind scratch at every size"), analysis, True
    )
    assert behind == "linear is behind scratch at every size measured: there is no gap for scratch to close."


def test_the_metrics_never_show_a_bare_crossover():
    assert aggregate.crossover_text(crossing(), 10000) == "180 [120, 400]"
    undecided = crossing(decision="undecided", seeds_needed=np.inf, test_images_needed=6600.0)
    assert aggregate.crossover_text(undecided, 10000) == "undecided (needs 6,600 test images)"
    assert aggregate.crossover_text(crossing(decision="behind scratch at every size"), 1e4) == (
        "behind scratch at every size"
    )


def test_a_baseline_says_where_scratch_stands(monkeypatch):
    if "pixels" not in config.REGIMES:  # until the pixels regime lands: a stand-in with its trait

        class Pixels(config.Regime):
            pretrained: ClassVar[bool] = False
            colour, marker, summary = "tab:brown", "x", "scikit-learn on raw pixels"

        monkeypatch.setitem(config.REGIMES, "pixels", Pixels)
    gap = gap_rows("pixels", "pixels", [1, 50], [0.10, -0.05], [0.4, -0.5], [1.3, 0.6])
    decisions = gap.assign(seeds=3, decision=["pixels better", "undecided"], seeds_needed=[np.nan, 7.0])
    crossover = pd.DataFrame([vars(crossing(arm="pixels", estimate=3.0, status="within measured sizes"))])
    crossover = crossover.assign(dataset="d", backbone="b")
    said = report.headlines({"gap": gap, "equivalence": decisions, "crossover": crossover}, config.Analysis())
    sentence = said[("d", "b")][0]
    assert sentence.startswith("pixels vs scratch: pixels (no pretraining) is ahead of scratch by 10 points")
    assert "and behind by 5.0 (1.7x more errors) at 50" in sentence
    assert "Scratch is within 1 point of pixels or ahead from about 3 per class" in sentence
    assert "pixels better at 1; undecided at 50 (what would decide it: at 50, about 7 seeds)" in sentence


def test_unconverged_cells_are_listed_per_arm():
    cells = pd.DataFrame(
        [cell("scratch", n, 1, 0.5, status="finished", arm="scratch", converged=n < 10) for n in (1, 10, 50)]
    )
    text = report.unconverged(cells)
    assert "scratch: 2 of 3 cells" in text
    assert report.unconverged(cells.drop(columns="converged")) == ""


def test_labels_of_the_size_all_are_the_whole_pool(study):
    params, tmp_path = study
    raw = params.model_dump(mode="json", exclude_none=True)
    raw["study"]["sizes"] = ["all", 1]
    table = aggregate.labels(config.Params.model_validate(raw), tmp_path / "prepared").set_index("size")
    assert table.loc["all", "training_labels"] == 600 and table.loc["all", "examples_per_class"] == 60
    assert table.loc["1", "training_labels"] == 10 and list(table.index) == ["1", "all"]


def test_each_dataset_is_clipped_by_half_an_image_of_its_own_test_set(study):
    params, tmp_path = study
    cells = aggregate.load_cells(params, tmp_path / "cells")
    counted = aggregate.labels(params, tmp_path / "prepared")
    assert aggregate.test_images(counted, cells, params) == {
        "digits": 500
    }  # the prepared split's test images
    unknown = aggregate.labels(params, tmp_path / "no-prepared-data")
    recorded = cells.assign(classes=10)  # without the split: test_per_class × the classes the cells recorded
    assert aggregate.test_images(unknown, recorded, params) == {
        "digits": 10 * params.datasets["digits"].test_per_class
    }
    # finetune scores 100 % everywhere: its log-odds gap is set by the clip, which a larger test set moves out
    perfect = cells.assign(test_accuracy=cells.test_accuracy.where(cells.regime != "finetune", 1.0))
    analysis = params.analysis.model_copy(update={"bootstrap": 0})
    small, large = (aggregate.analyse(perfect, analysis, {"digits": n})[0]["gap"] for n in (500, 5000))
    finetune = small.arm == "finetune"
    assert (large.logodds[finetune] > small.logodds[finetune] + 2).all()
    assert large.logodds[~finetune].to_numpy() == pytest.approx(small.logodds[~finetune].to_numpy())


def test_the_whole_pool_is_named_all_with_its_mean_examples_per_class():
    """`all` is measured at the pool's mean examples per class (a fraction when classes differ in size)."""
    sentence = report.gap_sentence(
        gap_rows("finetune", "finetune", [1, 109.7], [0.14, 0.006], [0.62, 0.70], [1.5, 2.0]), baseline=False
    )
    assert "at all (109.7)" in sentence and "at 1 to +0.70 at all (109.7)" in sentence
    assert "109.7 " not in sentence.replace("all (109.7)", "")


def test_tuning_effort_is_a_mean_per_arm_and_the_curse_in_points():
    cells = pd.DataFrame(
        [
            cell(
                "scratch",
                n,
                1,
                0.9,
                status="finished",
                arm="scratch",
                tuning_steps=s,
                winners_curse=w,
                candidates=6,
            )
            for n, s, w in ((1, 1000, 0.02), (10, 3000, 0.0))
        ]
        + [
            cell(
                "finetune",
                1,
                1,
                0.95,
                status="finished",
                arm="finetune",
                tuning_steps=500,
                winners_curse=-0.01,
            ),
            cell("finetune", 10, 1, None, status="failed", arm="finetune", tuning_steps=9999),
        ]
    )
    found = effort.table(cells).set_index("arm")
    assert found.loc["scratch", "cells"] == 2 and found.loc["finetune", "cells"] == 1  # finished cells only
    assert found.loc["scratch", "tuning steps per cell"] == 2000
    assert found.loc["scratch", "winner's curse (points)"] == pytest.approx(1.0)
    assert found.loc["finetune", "tuning steps per cell"] == 500


def test_the_report_names_the_arms_whose_validation_moved_at_twice_the_budget():
    convergence = pd.DataFrame(
        [
            {"arm": "scratch", "examples_per_class": 1, "val_change": 0.03},
            {"arm": "finetune", "examples_per_class": 1, "val_change": -0.005},
        ]
    )
    assert effort.moved(convergence, margin=0.01) == ["scratch at 1 per class: +3.0 points"]
    assert effort.moved(convergence.iloc[:0], margin=0.01) == []


def test_an_exponent_without_a_bootstrap_interval_prints_no_nan():
    effective = pd.DataFrame(
        [
            {
                "arm": "finetune",
                "examples_per_class": 1.0,
                "kind": "estimate",
                "transferred": 1.5,
                "low": np.nan,
                "high": np.nan,
            }
        ]
    )
    exponents = pd.DataFrame(
        [
            {
                "family": "",
                "alpha": 0.92,
                "alpha_low": np.nan,
                "alpha_high": np.nan,
                "points": 4,
                "status": "estimated",
            }
        ]
    )
    sentence = report.effective_sentence(effective, exponents, 0.95)
    assert "α = 0.92 (no bootstrap interval" in sentence and "nan" not in sentence.lower()


def answer_row(**fields):
    base = dict(
        dataset="digits",
        backbone="b",
        arm="finetune",
        examples_per_class=1.0,
        seeds=3,
        noise="seeds and test images",
        points=0.20,
        points_low=0.15,
        points_high=0.25,
        decision="reached",
        crossover=180.0,
        crossover_low=120.0,
        crossover_high=400.0,
        asymptotic_gap=0.002,
        asymptotic_gap_low=-0.003,
        asymptotic_gap_high=0.007,
        seeds_needed=np.nan,
        test_images_needed=np.nan,
        beaten_by=np.nan,
    )
    return SimpleNamespace(**(base | fields))


def test_the_answer_line_gives_every_number_its_interval_or_a_decision():
    said = answer.line(answer_row(), 0.01, 10000, 0.95)
    assert said == (
        "pretraining (finetune) is worth +20.0 points [95%: +15.0 to +25.0] at 1 example per class; it stops "
        "mattering (within ±1 point) from 180 [120, 400] per class."
    )
    pixels = "pixels at 1 (+3.0 points [95%: +0.5 to +5.5])"
    undecided = answer.line(
        answer_row(decision="undecided", seeds_needed=np.inf, test_images_needed=6600.0, beaten_by=pixels),
        0.01,
        10000,
        0.95,
        classes=10,
    )
    assert (
        "whether it stops mattering (within ±1 point) is undecided: the fitted gap at unlimited data is +0.2"
        in (undecided)
    )
    assert "a test set of about 6,600 images, 660 per class would" in undecided
    assert undecided.endswith(f"; ahead of it without pretraining: {pixels}.")
    one_seed = answer.line(
        answer_row(noise="test images", decision="not within the margin at any size"), 0.01, 1e4, 0.95
    )
    assert "(one seed: test-image noise only" in one_seed and "it still matters at any size" in one_seed
    assert "nan" not in undecided + one_seed + said


def test_the_per_class_gap_is_read_off_the_stored_test_outputs():
    # two seeds, 3 classes of 4 test images: the arm gets class 2 right where scratch gets it wrong
    labels = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    right = {"scratch": [1] * 8 + [0] * 4, "finetune": [1] * 12}
    rows = [
        {
            **cell(regime, 1, seed, sum(right[regime]) / 12),
            "arm": regime,
            "test_labels": labels,
            "test_logits": [
                np.eye(3)[y if ok else (y + 1) % 3].tolist() for y, ok in zip(labels, right[regime])
            ],
        }
        for regime in right
        for seed in (1, 2)
    ]
    table = per_class.per_class_gaps(pd.DataFrame(rows), 0.95).set_index("class")
    assert table.gap.to_dict() == {0: 0.0, 1: 0.0, 2: 1.0}
    assert (table.images == 4).all() and (table.noise == "seeds and test images").all()
    said = report.class_sentence(table.reset_index(), 0.95)
    assert said.startswith(
        "Per class at 1 per class (4 test images each), finetune helps most on classes 2 (+100"
    )


def test_no_scratch_partner_gives_no_answer_line():
    # a study of one regime: no gap, so no answer (and no failure)
    gap = pd.DataFrame(columns=["dataset", "backbone", "regime", "arm", "examples_per_class"])
    table = answer.answers(pd.DataFrame(), {"gap": gap, "crossover": pd.DataFrame()}, 0.95, 1e-3)
    assert table.empty and list(table.columns) == answer.COLUMNS
