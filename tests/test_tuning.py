"""Choosing on validation per cell: a grid, and one step past the edge the best value sits on."""

import pytest

from pretraining_gap.training import tuning


def peaked(at: float):
    """A validation score that peaks at `at` on a log scale."""
    import math

    return lambda value: (-abs(math.log10(value) - math.log10(at)),)


def recorded(calls: list):
    """A `run` whose trial is the value itself; each call's values (trained together) appended to `calls`."""

    def run(values):
        calls.append(list(values))
        return list(values)

    return run


def same(values):  # the trial of each value is the value
    return list(values)


def search(grid, at):
    calls = []
    return tuning.search(grid, recorded(calls), peaked(at)), calls


def test_the_validation_best_inside_the_grid_is_kept_without_extension():
    found, calls = search([1e-3, 1e-2, 1e-1], at=1e-2)
    assert found.best == 1e-2 and not found.at_edge and calls == [[1e-3, 1e-2, 1e-1]]  # the grid together


@pytest.mark.parametrize("at, extension", [(1.0, 1.0), (1e-5, 1e-4)])
def test_a_best_at_an_edge_extends_the_grid_one_step_that_way(at, extension):
    found, calls = search([1e-3, 1e-2, 1e-1], at=at)
    assert len(calls) == 2 and calls[-1] == [pytest.approx(extension)]
    assert found.best == pytest.approx(extension) and found.at_edge  # still at the edge: flagged


def test_an_extension_that_loses_leaves_the_choice_inside():
    found, calls = search([1e-3, 1e-2], at=2e-2)  # best at the upper edge, the next step (0.1) is worse
    assert calls == [[1e-3, 1e-2], [pytest.approx(0.1)]]
    assert found.best == 1e-2 and not found.at_edge


def test_a_single_value_is_a_fixed_choice():
    found, calls = search([3e-3], at=1.0)
    assert calls == [[3e-3]] and found.best == 3e-3 and not found.at_edge


def test_ties_keep_the_first_value_tried():
    found = tuning.search([1.0, 2.0, 3.0], same, lambda v: (0,))
    assert found.best == 1.0
