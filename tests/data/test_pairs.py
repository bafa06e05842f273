"""Splits and pair sampling: balance, no self-pairs, disjointness, seeded, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DIGITS, make_folder

from siamese.data.folder import scan_folder
from siamese.data.pairfiles import read_pair_file
from siamese.data.sampling import PairSampler
from siamese.data.splits import split_indices
from siamese.errors import UserError
from siamese.formats.pairsets import write_pairs_csv


def labels_of(counts):
    return np.repeat(np.arange(len(counts)), counts)


def test_sampled_pairs_are_balanced_and_never_self():
    labels = labels_of([5, 2, 9, 3])
    rows = PairSampler(labels, "train").sample(1001, np.random.default_rng(0))
    assert rows.shape == (1001, 3)
    assert (rows[:, 2] == 1).sum() == 500 and (rows[:, 2] == 0).sum() == 501
    assert (rows[:, 0] != rows[:, 1]).all()
    same = labels[rows[:, 0]] == labels[rows[:, 1]]
    assert (same == (rows[:, 2] == 1)).all()  # every label tells the truth


def test_unique_pairs_do_not_repeat_and_cap_at_what_exists():
    labels = labels_of([3, 3])  # 6 same pairs exist, 9 different
    rows = PairSampler(labels, "val").sample(100, np.random.default_rng(1), unique=True)
    keys = {tuple(sorted(r[:2])) for r in rows}
    assert len(keys) == len(rows) == 6 + 9


def test_sampling_is_seeded():
    labels = labels_of([4, 4, 4])
    s = PairSampler(labels, "train")
    a = s.sample(50, np.random.default_rng(7))
    b = s.sample(50, np.random.default_rng(7))
    assert (a == b).all()


def test_class_split_is_class_disjoint():
    labels = labels_of([6] * 10)
    parts = split_indices(labels, "class", 0.2, 0.2, seed=3)
    cls = {k: set(labels[v].tolist()) for k, v in parts.items()}
    assert not (cls["train"] & cls["val"]) and not (cls["train"] & cls["test"])
    assert not (cls["val"] & cls["test"])
    assert sum(len(v) for v in parts.values()) == len(labels)


def test_image_split_is_image_disjoint_and_shares_classes():
    labels = labels_of([20] * 5)
    parts = split_indices(labels, "image", 0.15, 0.15, seed=0)
    all_idx = np.concatenate(list(parts.values()))
    assert len(np.unique(all_idx)) == len(all_idx) == len(labels)
    for k in parts:
        assert set(labels[parts[k]].tolist()) == set(range(5))


def test_too_few_images_or_classes_is_a_clear_error():
    with pytest.raises(UserError, match="no class with 2 or more images"):
        PairSampler(labels_of([1, 1, 1]), "test")
    with pytest.raises(UserError, match="only one class"):
        PairSampler(labels_of([5]), "val")
    with pytest.raises(UserError, match="at least 6 classes"):
        split_indices(labels_of([5] * 4), "class", 0.2, 0.2, seed=0)


def test_scan_folder_reads_digits():
    f = scan_folder(DIGITS)
    assert len(f.paths) == 1797 and f.classes == [str(c) for c in range(10)]
    assert np.bincount(f.labels).min() >= 170


def test_pair_csv_round_trip(tmp_path):
    folder = scan_folder(make_folder(tmp_path / "img", classes=2, per_class=3))
    rows = np.array([[0, 1, 1], [0, 4, 0]])
    write_pairs_csv(tmp_path / "p.csv", folder.paths, rows)
    pairs = read_pair_file(tmp_path / "p.csv", folder.root)
    assert pairs.left == [folder.paths[0]] * 2
    assert pairs.right == [folder.paths[1], folder.paths[4]]
    assert pairs.labels.tolist() == [1, 0] and pairs.lines == [2, 3] and pairs.kind == "csv"
