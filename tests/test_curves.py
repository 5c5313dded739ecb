"""Aggregation arithmetic on hand-made cell rows with known answers."""

import math

import pandas as pd
import pytest

from pretraining_gap import curves


def rows(regime, size, accuracies):
    return [{"dataset": "d", "backbone": "b", "regime": regime, "examples_per_class": size, "seed": s,
             "test_accuracy": a} for s, a in enumerate(accuracies, start=1)]


CELLS = pd.DataFrame(rows("scratch", 1, [0.2, 0.3, 0.4]) + rows("finetune", 1, [0.6, 0.8, 0.7])
                     + rows("scratch", 10, [0.8, 0.9, 0.85]) + rows("finetune", 10, [0.9, 0.9, 0.9]))


def test_mean_and_standard_error_over_seeds():
    summary = curves.summarise(CELLS).set_index(["regime", "examples_per_class"])
    assert summary.loc[("scratch", 1), "mean"] == pytest.approx(0.3)
    assert summary.loc[("scratch", 1), "stderr"] == pytest.approx(0.1 / math.sqrt(3))
    assert summary.loc[("finetune", 10), "stderr"] == pytest.approx(0.0)
    assert summary.loc[("finetune", 1), "seeds"] == 3


def test_gap_is_paired_by_seed():
    gap = curves.gaps(CELLS).set_index("examples_per_class")
    assert gap.loc[1, "gap"] == pytest.approx(0.4)  # differences 0.4, 0.5, 0.3
    assert gap.loc[1, "stderr"] == pytest.approx(0.1 / math.sqrt(3))
    assert gap.loc[10, "gap"] == pytest.approx(0.05)  # differences 0.1, 0.0, 0.05
    assert gap.loc[10, "stderr"] == pytest.approx(0.05 / math.sqrt(3))


def test_gap_skips_seeds_without_a_scratch_partner():
    cells = pd.concat([CELLS, pd.DataFrame(rows("finetune", 1, [0, 0, 0, 0.99])[3:])])
    assert curves.gaps(cells).set_index("examples_per_class").loc[1, "seeds"] == 3


def test_summary_metrics_nest_by_dataset_backbone_size():
    metrics = curves.summary_metrics(curves.summarise(CELLS), curves.gaps(CELLS))
    node = metrics["d"]["b"]["1_per_class"]
    assert node["finetune"]["test_accuracy"] == pytest.approx(0.7)
    assert node["gap_finetune_vs_scratch"]["mean"] == pytest.approx(0.4)
