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


def test_a_pair_grid_keeps_the_best_pair_and_says_when_it_is_on_an_edge():
    grid = [(a, b) for a in (1e-4, 1e-3) for b in (1e-3, 1e-2, 1e-1)]
    inside = tuning.search_pairs(grid, same, lambda pair: (-abs(pair[1] - 1e-2), pair[0]))
    assert inside.best == (1e-3, 1e-2) and inside.at_edge  # the first axis has two values: 1e-3 is its end
    single = tuning.search_pairs(
        [(1e-3, b) for b in (1e-3, 1e-2, 1e-1)], same, lambda p: (-abs(p[1] - 1e-2),)
    )
    assert single.best == (1e-3, 1e-2) and not single.at_edge


def test_families_are_searched_on_their_own_grids_and_the_best_of_all_kept():
    """Batch norm's rates and group norm's lie a decade apart: each family gets its own grid and edge rule."""
    calls = []
    best = {"batch": 3e-2, "group": 3e-4}  # group norm's best is below its grid: extended down, and it wins

    def score(setting):
        family, value = setting
        return (peaked(best[family])(value)[0] + (0.5 if family == "group" else 0),)

    found = tuning.search_families(
        {"batch": [1e-2, 3e-2, 1e-1], "group": [1e-3, 3e-3]}, recorded(calls), score
    )
    assert calls == [  # a family's grid together (one architecture), then its extension
        [("batch", 1e-2), ("batch", 3e-2), ("batch", 1e-1)],
        [("group", 1e-3), ("group", 3e-3)],
        [("group", pytest.approx(1e-3 / 3))],
    ]
    assert found.best == ("group", pytest.approx(1e-3 / 3)) and found.at_edge
    assert set(found.tried) == {setting for call in calls for setting in call}


def test_a_family_without_values_is_not_tried():
    found = tuning.search_families({"batch": [1e-2], "group": None}, same, lambda s: (0,))
    assert found.best == ("batch", 1e-2) and list(found.tried) == [("batch", 1e-2)] and not found.at_edge
