import numpy as np

from pretraining_gap.data import subsets

LABELS = np.repeat(np.arange(4), [30, 25, 40, 12])
POOL = np.flatnonzero(np.arange(len(LABELS)) % 5 != 0)  # every fifth image held out, as a split would


def test_subset_takes_k_per_class_from_the_pool():
    orderings = subsets.class_orderings(LABELS, POOL, seed=1)
    chosen = subsets.subset(orderings, 7)
    assert np.bincount(LABELS[chosen]).tolist() == [7, 7, 7, 7]
    assert set(chosen) <= set(POOL)
    assert len(set(chosen)) == len(chosen)


def test_subsets_are_nested_per_seed():
    orderings = subsets.class_orderings(LABELS, POOL, seed=3)
    sets = [set(subsets.subset(orderings, k)) for k in (1, 2, 5, 9)]
    assert all(small < large for small, large in zip(sets, sets[1:]))


def test_same_seed_same_subsets_other_seed_other_subsets():
    first = subsets.subset(subsets.class_orderings(LABELS, POOL, seed=5), 4)
    again = subsets.subset(subsets.class_orderings(LABELS, POOL, seed=5), 4)
    other = subsets.subset(subsets.class_orderings(LABELS, POOL, seed=6), 4)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_orderings_survive_a_save_and_load(tmp_path):
    orderings = {s: subsets.class_orderings(LABELS, POOL, seed=s) for s in (1, 2)}
    subsets.save(tmp_path / "o.json", orderings)
    loaded = subsets.load(tmp_path / "o.json", 2)
    assert np.array_equal(subsets.subset(loaded, 3), subsets.subset(orderings[2], 3))
