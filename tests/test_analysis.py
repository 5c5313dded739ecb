"""The benefits, the incomplete-cell report, every figure and the report page, on hand-made cell files."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_params
from PIL import Image

from pretraining_gap import config, results
from pretraining_gap.analysis import aggregate, benefits, report


def test_steps_to_90pct_of_best_odds_not_of_best_accuracy():
    # odds 1, 7.3, 9, 5.7: 90% of the best odds is 8.1, first reached at step 30 (90% of best accuracy: step 20)
    assert benefits.steps_to_odds_fraction([10, 20, 30, 40], [0.5, 0.88, 0.9, 0.85]) == 30


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
    table = benefits.summarise(cells).set_index("arm")
    assert "linear" not in table.index  # no validation curve, no benefits
    assert table.loc["finetune", "start_vs_scratch"] == pytest.approx(0.5)
    assert table.loc["finetune", "final_vs_scratch"] == pytest.approx(0.3)
    assert (
        table.loc["finetune", "steps_to_90pct_odds"] == 10
        and table.loc["scratch", "steps_to_90pct_odds"] == 20
    )


@pytest.fixture
def study(tmp_path):
    """A 3 regimes × 2 sizes × 2 seeds grid of hand-written result files: one failed, one missing."""
    params = config.Params.model_validate(tiny_params(Path("unused.safetensors")))
    root = tmp_path / "cells"
    accuracy = {"scratch": 0.3, "linear": 0.6, "finetune": 0.7}
    for c in params.cells():
        if (c.regime, c.examples_per_class, c.seed) == ("linear", 3, 2):
            continue  # missing: never written
        history = {"step": [4, 8], "val_accuracy": [0.1 + c.seed / 10, accuracy[c.regime]]}
        result = cell(
            c.regime,
            c.examples_per_class,
            c.seed,
            accuracy[c.regime] + c.examples_per_class / 100 + c.seed / 1000,
            history=history,
        )
        if c.regime == "finetune":
            result["transferability"] = {"stem": 3.0 + c.seed, "blocks": 2.0, "head": 1.0}
        if (c.regime, c.examples_per_class, c.seed) == ("finetune", 1, 2):
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
    costs = tmp_path / "costs" / "digits"
    costs.mkdir(parents=True)
    (costs / "tiny.json").write_text(
        json.dumps(
            {
                "parameters": 1e5,
                "gflops_per_image": 0.01,
                "resolution": 16,
                "train_images_per_second": 100.0,
                "inference_images_per_second": 900.0,
            }
        )
    )
    return params, tmp_path


def run_aggregate(params, tmp_path):
    return aggregate.run(
        params,
        tmp_path / "cells",
        tmp_path / "cells.csv",
        tmp_path / "tables",
        tmp_path / "curves",
        tmp_path / "summary.json",
        tmp_path / "plots",
        tmp_path / "costs",
    )


def test_failed_and_missing_cells_are_reported_and_left_out(study):
    out = run_aggregate(*study)
    table = pd.read_csv(study[1] / "cells.csv")
    assert len(table) == 12 and {"status", "depth", "reason"} <= set(table.columns)
    assert table.status.value_counts().to_dict() == {"finished": 10, "failed": 1, "missing": 1}
    summary = json.loads((study[1] / "summary.json").read_text())
    assert summary["cells"] == {"grid": 12, "finished": 10, "failed": 1, "missing": 1}
    assert summary["incomplete"] == {
        "digits/tiny/finetune/1/seed2": "failed: loss became NaN at step 3",
        "digits/tiny/linear/3/seed2": "missing: no result file (run `dvc repro`)",
    }
    accuracy = out.tables["accuracy"].set_index(["arm", "examples_per_class"])
    assert accuracy.loc[("finetune", 1), "seeds"] == 1 and accuracy.loc[
        ("finetune", 1), "mean"
    ] == pytest.approx(0.711)
    assert summary["digits"]["tiny"]["finetune"]["accuracy_at_1"] == pytest.approx(0.711)
    assert summary["digits"]["tiny"]["finetune"]["gap_at_3"] == pytest.approx(0.4)


def test_every_figure_is_drawn_when_its_data_exist(study):
    out = run_aggregate(*study)
    names = sorted(f.name for f in out.figures)
    assert names == sorted(
        [f"digits_tiny_{k}.png" for k in ("accuracy", "gap", "effective_data", "learning", "transferability")]
        + ["digits_cost.png"]
    )
    for figure in out.figures:
        with Image.open(figure) as image:
            assert image.width > 400 and image.height > 300


def test_depth_cells_get_their_figure(study):
    params, tmp_path = study
    cells = aggregate.load_cells(params, tmp_path / "cells")
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
    figures = aggregate.draw(cells, aggregate.analyse(cells), tmp_path / "plots", tmp_path / "none")
    assert tmp_path / "plots" / "digits_tiny_depth.png" in figures
    assert not any("cost" in f.name for f in figures)


def test_report_page_holds_headline_tables_figures_and_settings(study):
    out = run_aggregate(*study)
    tables = report.read_tables(study[1] / "tables")
    page = report.build(tables, out.metrics["incomplete"], out.figures, study[0], "abc123")
    assert (
        "digits · tiny: finetune pretraining adds +40.0 points at 1 example per class and +40.0 points at 3"
        in page
    )
    assert (
        "loss became NaN at step 3" in page
        and "<td>blocks</td>" in page
        and "abc123" in page
        and "timm" in page
    )
    assert page.count("data:image/png;base64,") == len(out.figures)


def test_headline_says_when_scratch_catches_up_or_not():
    gap = pd.DataFrame(
        {
            "dataset": "d",
            "backbone": "b",
            "arm": "finetune",
            "examples_per_class": [1, 10, 100],
            "gap": [0.3, 0.1, 0.0],
        }
    )
    crossing = pd.DataFrame(
        {
            "dataset": ["d"],
            "backbone": ["b"],
            "arm": ["finetune"],
            "crossover": [100.0],
            "status": ["reached"],
        }
    )
    assert report.headlines(gap, crossing) == [
        "d · b: finetune pretraining adds +30.0 points at 1 example per class and +0.0 points at 100; "
        "scratch catches up at 100 per class."
    ]
    assert (
        "does not catch up within the studied sizes (up to 100)"
        in report.headlines(gap, crossing.assign(crossover=np.nan, status="not reached"))[0]
    )
    assert (
        "includes 0 (or lies below it) already at the smallest size"
        in report.headlines(gap, crossing.assign(crossover=1.0))[0]
    )
