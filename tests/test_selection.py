"""The selection procedure's rules on hand-made values: the edge extension, and the winner's curse on halves of
validation (the procedure itself, on tiny cells of every gradient arm: tests/test_regimes.py)."""

from __future__ import annotations

import numpy as np
import pytest

from pretraining_gap.training import selection, validation


def test_a_best_at_an_edge_of_its_family_gains_one_step_past_it():
    tried = [{"norm": n, "lr": lr} for n in ("batch", "group") for lr in (0.01, 0.03, 0.1)]
    assert selection.extensions({"norm": "group", "lr": 0.1}, tried) == [
        {"norm": "group", "lr": pytest.approx(0.1 * 0.1 / 0.03)}
    ]
    assert selection.extensions({"norm": "batch", "lr": 0.01}, tried) == [
        {"norm": "batch", "lr": pytest.approx(0.01 * 0.01 / 0.03)}
    ]
    assert selection.extensions({"norm": "batch", "lr": 0.03}, tried) == []  # inside: no extension


def test_every_axis_a_best_sits_at_the_edge_of_is_extended():
    """Depth-k's pairs: both rates at an edge give one extension along each."""
    tried = [{"lr": a, "lr_new": b} for a in (0.0003, 0.001) for b in (0.003, 0.01, 0.03)]
    found = selection.extensions({"lr": 0.001, "lr_new": 0.03}, tried, ("lr", "lr_new"))
    assert found == [
        {"lr": pytest.approx(0.001 / 0.3), "lr_new": 0.03},
        {"lr": 0.001, "lr_new": pytest.approx(0.09)},
    ]
    assert selection.extensions({"lr": 0.001}, [{"lr": 0.001}]) == []  # one value: a fixed choice


def test_an_option_that_is_no_grid_is_never_extended():
    """The dense head's dropout fractions are a family: 0.5 past 0.2 would be 1.25."""
    tried = [{"dropout": d, "lr": lr} for d in (0.2, 0.5) for lr in (0.0003, 0.001)]
    assert selection.extensions({"dropout": 0.5, "lr": 0.0003}, tried) == [
        {"dropout": 0.5, "lr": pytest.approx(0.0003 * 0.0003 / 0.001)}
    ]


def test_the_halves_alternate_within_each_class():
    labels = np.array([0, 1, 0, 1, 0, 2, 1, 0])
    first = validation.halves(labels)
    assert first.tolist() == [True, True, False, False, True, True, True, False]


def test_the_winners_curse_is_a_choice_on_each_half_scored_on_the_other():
    # the second pair leads on the first half (0.9, then 0.8 on the second: +0.1); the third leads on the second
    # half (0.9, then 0.85 on the first: +0.05); the curse is their mean
    assert validation.winners_curse([(0.7, 0.75), (0.9, 0.8), (0.85, 0.9)]) == pytest.approx(0.075)
    # ties keep the first: (0.8, 0.9) both ways, -0.1 and +0.1
    assert validation.winners_curse([(0.8, 0.9), (0.8, 0.5)]) == pytest.approx(0.0)
    assert validation.winners_curse([]) is None


def test_a_half_that_is_only_easier_is_no_curse():
    """Every candidate 2 points better on the first half, and no noise: a one-way measure reads +2, this reads 0."""
    assert validation.winners_curse([(0.92, 0.90), (0.82, 0.80), (0.62, 0.60)]) == pytest.approx(0.0)
