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
    found = selection.extensions({"lr": 0.001, "lr_new": 0.03}, tried)
    assert found == [
        {"lr": pytest.approx(0.001 / 0.3), "lr_new": 0.03},
        {"lr": 0.001, "lr_new": pytest.approx(0.09)},
    ]
    assert selection.extensions({"lr": 0.001}, [{"lr": 0.001}]) == []  # one value: a fixed choice


def test_the_halves_alternate_within_each_class():
    labels = np.array([0, 1, 0, 1, 0, 2, 1, 0])
    first = validation.halves(labels)
    assert first.tolist() == [True, True, False, False, True, True, True, False]


def test_the_winners_curse_is_the_first_half_choice_scored_on_the_second():
    # the second pair leads on the first half (0.9) and scores 0.8 on the second: it overstates itself by 0.1
    assert validation.winners_curse([(0.7, 0.75), (0.9, 0.8), (0.85, 0.9)]) == pytest.approx(0.1)
    assert validation.winners_curse([(0.8, 0.9), (0.8, 0.5)]) == pytest.approx(-0.1)  # ties: the first
    assert validation.winners_curse([]) is None
