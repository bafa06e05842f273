"""eval.py and its parts: pair files (CSV, LFW), k-fold, n-way, reports, errors."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from conftest import make_folder

import eval as eval_cli
from siamese.data.pairfiles import read_pair_file
from siamese.errors import UserError
from siamese.eval.metrics import kfold_accuracy, wilson_interval
from siamese.eval.oneshot import n_way_accuracy, sample_episodes

EUCLID = {"name": "euclidean", "higher_is_similar": False}


def lfw_folder(tmp_path):
    root = make_folder(tmp_path / "lfw", classes=3, per_class=4)
    # Two folds, each 2 matched then 2 mismatched lines.
    text = "2 2\n" \
           "class0 1 2\nclass1 1 3\nclass0 1 class1 1\nclass1 2 class2 4\n" \
           "class2 1 2\nclass0 3 4\nclass0 2 class2 2\nclass1 4 class0 4\n"
    (tmp_path / "pairs.txt").write_text(text)
    return root, tmp_path / "pairs.txt"


def test_lfw_pairs_folds_and_sorted_one_based_images(tmp_path):
    root, path = lfw_folder(tmp_path)
    p = read_pair_file(path, root)
    assert p.kind == "lfw"
    assert p.folds.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert p.labels.tolist() == [1, 1, 0, 0, 1, 1, 0, 0]
    assert (p.left[0], p.right[0]) == ("class0/000.png", "class0/001.png")  # 1st, 2nd file
    assert (p.left[3], p.right[3]) == ("class1/001.png", "class2/003.png")
    assert p.lines[4] == 6


@pytest.mark.parametrize("text, message", [
    ("3 2\nclass0 1 2\n", "header says 3 folds"),
    ("1 1\nclass0 1 9\nclass0 1 class1 1\n", "line 2: class0 has 4 images, no image 9"),
    ("1 1\nclass0 1 1\nclass0 1 class1 1\n", "line 2: pairs an image with itself"),
    ("1 1\nnobody 1 2\nclass0 1 class1 1\n", "line 2: no image folder"),
    ("1 1\nclass0 1 class1 2\nclass0 1 class1 1\n", "line 2: a matched pair line"),
])
def test_bad_lfw_files_name_the_line(tmp_path, text, message):
    root = make_folder(tmp_path / "lfw", classes=2, per_class=4)
    (tmp_path / "pairs.txt").write_text(text)
    with pytest.raises(UserError, match=message):
        read_pair_file(tmp_path / "pairs.txt", root)


@pytest.mark.parametrize("rows, message", [
    ("class0/000.png,class0/001.png,2\n", "line 2: label must be 0 or 1"),
    ("class0/000.png,class0/missing.png,1\n", "line 2: no such image"),
    ("class0/000.png,class1/000.png,0\nclass1/000.png,class0/000.png,0\n",
     "line 3: duplicates the pair on line 2"),
    ("class0/000.png,class0/000.png,1\n", "line 2: pairs an image with itself"),
])
def test_bad_csv_files_name_the_line(tmp_path, rows, message):
    root = make_folder(tmp_path / "img", classes=2, per_class=3)
    (tmp_path / "p.csv").write_text("left,right,label\n" + rows)
    with pytest.raises(UserError, match=message):
        read_pair_file(tmp_path / "p.csv", root)


def test_kfold_threshold_comes_from_the_other_folds():
    # Fold 0 alone would choose a threshold between 0.5 and 0.6 (perfect on fold 0); fold 1's
    # pairs separate at 0.2/0.3. Scoring fold 0 with fold 1's threshold (0.25) accepts its
    # different pair at 0.5: 3 of 4 right. Scoring fold 1 with fold 0's threshold (0.55)
    # rejects fold 1's same pair at 0.3: 3 of 4 right.
    s = np.array([0.9, 0.6, 0.5, 0.1, 0.9, 0.3, 0.2, 0.1])
    y = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    folds = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    k = kfold_accuracy(s, y, folds, higher_is_similar=True)
    assert k["accuracies"] == [0.75, 0.75]
    assert k["thresholds"] == pytest.approx([0.25, 0.55])
    assert k["mean"] == 0.75 and k["std"] == 0.0


def test_n_way_on_hand_made_embeddings():
    # 4 classes of 3 images on the four axes: every query's nearest support is its own class.
    labels = np.repeat(np.arange(4), 3)
    emb = np.eye(4, dtype=np.float32)[labels]
    r = n_way_accuracy(emb, labels, EUCLID, n_way=4, shots=1, episodes=50, seed=0)
    assert r["accuracy"] == 1.0 and r["episodes"] == 50
    # Classes 0 and 1 share one point: a query of either class ties between them and argmax
    # takes the first listed, so exactly the class-0/1 queries whose answer comes second fail.
    emb[labels == 1] = emb[labels == 0][0]
    support, query, answer = sample_episodes(labels, 4, 1, 400, seed=3)
    r = n_way_accuracy(emb, labels, EUCLID, n_way=4, shots=1, episodes=400, seed=3)
    classes = labels[support[:, :, 0]]
    qc = labels[query]
    both = np.isin(classes, [0, 1]).sum(axis=1) == 2
    pos = {c: np.argmax(classes == c, axis=1) for c in (0, 1)}
    first = np.minimum(pos[0], pos[1])
    wrong = both & np.isin(qc, [0, 1]) & (answer != first)
    assert r["accuracy"] == pytest.approx(1 - wrong.mean())
    lo, hi = r["ci95"]
    assert lo < r["accuracy"] < hi


def test_n_way_accuracy_on_a_line_by_hand():
    # Three classes of two images on a line: A at 0.05 (both), B at 1.0 and 2.0, C at 1.3 and
    # 1.35. With N = 3 and one shot every episode holds A, B and C:
    # - a query of A has distance 0 to A's support: right;
    # - a query of C is 0.05 from C's support, >= 0.3 from the others: right;
    # - a query of B at 1.0 is 0.3 or 0.35 from C's support, 1.0 from B's (2.0): wrong;
    #   a query of B at 2.0 is 0.65 from C's nearest support but 1.0 from B's: wrong.
    # So accuracy = the share of episodes whose query is of class B, whatever the draw.
    labels = np.array([0, 0, 1, 1, 2, 2])
    emb = np.array([[0.05], [0.05], [1.0], [2.0], [1.3], [1.35]], np.float32)
    _, query, _ = sample_episodes(labels, 3, 1, 200, seed=5)
    r = n_way_accuracy(emb, labels, EUCLID, n_way=3, shots=1, episodes=200, seed=5)
    b_share = float(np.mean(labels[query] == 1))
    assert 0.2 < b_share < 0.5  # the draw has B queries, and others
    assert r["accuracy"] == pytest.approx(1.0 - b_share)


def test_test_pairs_are_scored_at_the_validation_threshold_not_their_own():
    from siamese.eval.thresholds import threshold_report

    spec = {"name": "euclidean", "higher_is_similar": False}
    # Validation: same pairs at distance <= 0.4, different ones >= 0.6: any threshold in
    # (0.4, 0.6) is perfect; the midpoint rule takes 0.5.
    val = (np.array([0.1, 0.2, 0.4, 0.6, 0.8, 0.9]), np.array([1, 1, 1, 0, 0, 0]))
    # Test: its own best threshold would be 0.75 (all right); at 0.5 two same pairs at 0.7
    # are rejected: accuracy 4/6.
    test = (np.array([0.1, 0.7, 0.7, 0.8, 0.9, 0.95]), np.array([1, 1, 1, 0, 0, 0]))
    v, t, out = threshold_report(spec, "accuracy", val, test)
    assert out["threshold"] == pytest.approx(0.5) and v["threshold"] == t["threshold"]
    assert v["accuracy"] == 1.0
    assert t["accuracy"] == pytest.approx(4 / 6) and t["tar"] == pytest.approx(1 / 3)
    assert t["far"] == 0.0
    swapped = threshold_report(spec, "accuracy", test, val)[2]["threshold"]
    assert swapped == pytest.approx(0.75)  # the test optimum differs: it was not used


def test_episodes_are_seeded_and_queries_never_supports():
    labels = np.repeat(np.arange(6), 5)
    a = sample_episodes(labels, 5, 2, 30, seed=1)
    b = sample_episodes(labels, 5, 2, 30, seed=1)
    assert all((x == y).all() for x, y in zip(a, b))
    support, query, answer = a
    assert not (query[:, None] == support.reshape(30, -1)).any()
    assert (labels[query] == labels[support[np.arange(30), answer, 0]]).all()


def test_small_classes_are_skipped_with_a_warning(caplog):
    labels = np.array([0, 0, 1, 1, 2])  # class 2 has one image: no support + query
    with caplog.at_level(logging.WARNING):
        sample_episodes(labels, 2, 1, 5, seed=0, names=["a", "b", "c"])
    assert "class c has 1 image" in caplog.text
    with pytest.raises(UserError, match="only 2 classes"):
        sample_episodes(labels, 3, 1, 5, seed=0)


def test_wilson_interval_by_hand():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)


@pytest.mark.slow
def test_eval_reproduces_training_metrics_exactly(trained_run, capsys):
    run_dir, root, _ = trained_run
    expected = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert eval_cli.main([str(run_dir)]) == 0
    rep = json.loads((run_dir / "eval.json").read_text())
    for k in ("auc", "eer", "accuracy", "threshold", "n_pairs"):
        assert rep[k] == expected[k], k
    assert rep["threshold_source"] == "validation"
    assert set(rep["tar_at_far"]) == {"0.1", "0.01", "0.001"}
    assert rep["best_accuracy"] >= rep["accuracy"]
    assert (run_dir / "roc.png").stat().st_size > 0 and (run_dir / "distances.png").is_file()
    # The same pairs given explicitly, on the export directory alone, give the same figures.
    out = run_dir.parent / "alone" / "r.json"
    assert eval_cli.main([str(run_dir / "export"), "--pairs", str(run_dir / "pairs/test.csv"),
                          "--root", str(root), "--out", str(out), "--n-way", "2,4"]) == 0
    alone = json.loads(out.read_text())
    assert all(alone[k] == expected[k] for k in ("auc", "eer", "accuracy", "threshold"))
    assert set(alone["n_way"]) == {"2", "4"} and alone["n_way"]["4"]["shots"] == 1
    assert "AUC" in capsys.readouterr().out


@pytest.mark.slow
def test_eval_errors_exit_2_and_write_nothing(trained_run, tmp_path, capsys):
    run_dir, root, _ = trained_run
    bad = tmp_path / "bad.csv"
    bad.write_text("left,right,label\nclass0/000.png,class9/000.png,0\n")
    out = tmp_path / "out" / "r.json"
    args = [str(run_dir), "--out", str(out), "--root", str(root)]
    assert eval_cli.main(args + ["--pairs", str(bad)]) == 2
    assert "bad.csv: line 2: no such image" in capsys.readouterr().err
    assert eval_cli.main(args + ["--n-way", "9"]) == 2
    assert "--n-way 9" in capsys.readouterr().err
    assert eval_cli.main([str(tmp_path)]) == 2
    assert not out.parent.exists()
