"""Groups of classes (data.groups), group splits, within-group episodes, rotation classes and
same-group P x K batches, on hand-made fixtures."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_folder

from siamese.config import DataConfig, from_dict
from siamese.data.groups import class_groups, group_of_name
from siamese.data.prepare import prepare
from siamese.data.sampling import PairSampler
from siamese.data.splits import split_indices
from siamese.data.trainset import train_set
from siamese.errors import UserError
from siamese.eval.oneshot import n_way_accuracy, sample_episodes


def test_group_of_a_name_is_up_to_its_last_underscore():
    assert group_of_name("Greek_character07") == "Greek"
    assert group_of_name("Japanese_(katakana)_character01") == "Japanese_(katakana)"
    assert group_of_name("seven") == "seven"
    assert group_of_name("_x") == "_x"


def test_groups_csv_is_read_and_checked(tmp_path):
    (tmp_path / "groups.csv").write_text("class,group\na,g1\nb,g2\nc,g1\n")
    groups, names = class_groups("csv", tmp_path, ["a", "b", "c"])
    assert names == ["g1", "g2"] and groups.tolist() == [0, 1, 0]
    with pytest.raises(UserError, match="class 'd' has no group"):
        class_groups("csv", tmp_path, ["a", "d"])
    (tmp_path / "groups.csv").write_text("klass,group\n")
    with pytest.raises(UserError, match="groups.csv: line 1"):
        class_groups("csv", tmp_path, ["a"])
    (tmp_path / "groups.csv").write_text("class,group\na,g1,extra\n")
    with pytest.raises(UserError, match="line 2"):
        class_groups("csv", tmp_path, ["a"])


def test_group_split_puts_no_group_on_two_sides():
    groups = np.repeat(np.arange(6), 5)  # 30 classes, 6 groups of 5
    labels = np.repeat(np.arange(30), 4)
    for seed in range(5):
        s = split_indices(labels, "group", 0.2, 0.1, seed, groups)
        sides = {k: set(groups[labels[v]]) for k, v in s.items()}
        assert not sides["train"] & sides["val"] and not sides["train"] & sides["test"]
        assert not sides["val"] & sides["test"]
        assert len(sides["val"]) >= 1 and len(sides["test"]) >= 1 and len(sides["train"]) >= 1
        assert sorted(np.concatenate(list(s.values()))) == list(range(len(labels)))
        assert len(set(labels[s["val"]])) >= 6  # at least 20% of the 30 classes
    with pytest.raises(UserError, match="data.groups"):
        split_indices(labels, "group", 0.2, 0.1, 0, None)
    with pytest.raises(UserError, match="2 group"):
        split_indices(labels, "group", 0.2, 0.1, 0, np.repeat(np.arange(2), 15))


def test_within_group_episodes_draw_every_class_from_one_group():
    # 3 groups: a, b with 4 classes each, c with 2 (too small for 3-way, skipped)
    labels = np.repeat(np.arange(10), 3)
    group_of_class = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    groups = group_of_class[labels]
    support, query, answer = sample_episodes(labels, 3, 1, 200, 0, groups=groups)
    seen = set()
    for e in range(200):
        g = set(groups[support[e].reshape(-1)]) | {groups[query[e]]}
        assert len(g) == 1 and g != {2}
        seen |= g
        assert labels[query[e]] == labels[support[e, answer[e], 0]]
        assert query[e] not in support[e]
    assert seen == {0, 1}
    mixed, _, _ = sample_episodes(labels, 3, 1, 200, 0)
    assert any(len(set(groups[m.reshape(-1)])) > 1 for m in mixed)
    with pytest.raises(UserError, match="within group"):
        sample_episodes(labels, 5, 1, 10, 0, groups=groups)


def test_within_group_accuracy_sees_what_mixed_episodes_hide():
    # Embeddings tell groups apart perfectly but classes of one group not at all: mixed
    # episodes of classes 0 and 2 are easy, within-group episodes are chance.
    labels = np.repeat(np.arange(4), 5)
    groups = np.array([0, 0, 1, 1])[labels]
    emb = np.eye(2)[groups].astype(np.float32)
    spec = {"name": "euclidean", "higher_is_similar": False}
    within = n_way_accuracy(emb, labels, spec, 2, 1, 400, 0, groups=groups)["accuracy"]
    assert 0.35 < within < 0.65  # ties broken by argmax: about half right
    n = n_way_accuracy(emb + np.arange(20)[:, None] * 1e-6, labels, spec, 2, 1, 400, 0)
    assert n["accuracy"] > within


def test_rotation_classes_are_new_labels_on_their_sources_side(tmp_path):
    root = make_folder(tmp_path / "img", classes=8, per_class=6)
    d = from_dict({"data": {"root": str(root), "image_size": 16, "split": "class",
                            "val_fraction": 0.25, "test_fraction": 0.25,
                            "rotate_classes": [90, 180, 270], "mirror_classes": True}}).data
    data = prepare(d, 0)
    t = data.training()
    c = len(data.folder.classes)
    assert t.classes == 8 * c  # identity, 3 turns, mirror, mirror + 3 turns
    train_images = set(data.splits["train"].tolist())
    assert set(t.index.tolist()) == train_images  # only training images, turned
    for label in np.unique(t.labels):
        source = label % c
        rows = np.flatnonzero(t.labels == label)
        assert (data.folder.labels[t.index[rows]] == source).all()
        assert set(t.turns[rows]) == {[0, 1, 2, 3, 4, 5, 6, 7][label // c]}
    held_out = set(data.folder.labels[np.concatenate([data.splits["val"],
                                                      data.splits["test"]])].tolist())
    assert not held_out & {lab % c for lab in t.labels.tolist()}
    rows = np.flatnonzero(t.turns == 1)[:3]
    src = data.images[t.index[rows]]
    assert np.array_equal(t.take(data.images, rows), np.rot90(src, 1, axes=(1, 2)))
    rows = np.flatnonzero(t.turns == 5)[:3]  # mirrored (columns reversed), then turned
    mirrored = data.images[t.index[rows]][:, :, ::-1]
    assert np.array_equal(t.take(data.images, rows), np.rot90(mirrored, 1, axes=(1, 2)))


def test_rotation_angles_are_checked():
    with pytest.raises(UserError, match="data.rotate_classes"):
        train_set(np.zeros(4, int), np.arange(4), 1, DataConfig(rotate_classes=[45]))
    with pytest.raises(UserError, match="square"):
        train_set(np.zeros(4, int), np.arange(4), 1, DataConfig(rotate_classes=[90]),
                  image_size=[16, 32])


def test_same_group_batches_hold_classes_of_one_group():
    labels = np.repeat(np.arange(12), 4)
    group_of_class = np.repeat(np.arange(3), 4)  # 3 groups of 4 classes
    s = PairSampler(labels, "train", group_of_class[labels], group_share=1.0)
    rng = np.random.default_rng(0)
    for _ in range(50):
        b = s.pk_batch(4, 2, rng)
        assert len(set(group_of_class[labels[b]])) == 1 and len(set(labels[b])) == 4
    big = s.pk_batch(6, 2, rng)  # more classes than a group holds: the rest from others
    assert len(set(labels[big])) == 6
    assert max(np.bincount(group_of_class[np.unique(labels[big])])) == 4
    mixed = PairSampler(labels, "train", group_of_class[labels], group_share=0.0)
    assert any(len(set(group_of_class[labels[mixed.pk_batch(4, 2, rng)]])) > 1
               for _ in range(20))


def test_group_keys_are_checked_together():
    with pytest.raises(UserError, match="data.groups"):
        from_dict({"data": {"split": "group"}})
    with pytest.raises(UserError, match="data.group_batches"):
        from_dict({"data": {"group_batches": 0.5, "groups": "name"}})
    with pytest.raises(UserError, match="train.select: last"):
        from_dict({"data": {"train_on": "all"}})
    with pytest.raises(UserError, match="train.select"):
        from_dict({"train": {"select": "nway:1"}})
