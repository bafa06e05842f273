"""train.select: the epoch a run keeps, by validation N-way accuracy (within group) or last."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_folder, write_config

import eval as eval_cli
import train

pytestmark = pytest.mark.slow


def grouped_folder(tmp_path):
    root = make_folder(tmp_path / "images", classes=8, per_class=6)
    (root / "groups.csv").write_text("class,group\n" + "".join(
        f"class{c},g{c // 2}\n" for c in range(8)))
    return root


def run(tmp_path, name, **train_keys):
    root = grouped_folder(tmp_path)
    cfg = write_config(tmp_path / f"{name}.yaml", root,
                       data={"split": "group", "groups": "csv", "val_fraction": 0.2,
                             "test_fraction": 0.2, "sampler": "pk", "classes_per_batch": 2,
                             "images_per_class": 3, "group_batches": 0.5,
                             "rotate_classes": [180]},
                       loss={"name": "triplet", "mining": "semi_hard", "margin": 0.5},
                       train=dict({"epochs": 4, "pairs_per_epoch": 24, "lr": 0.02,
                                   "select_episodes": 50}, **train_keys))
    assert train.main([str(cfg), "--run-dir", str(tmp_path / name)]) == 0
    rows = [json.loads(x) for x in (tmp_path / name / "log.jsonl").read_text().splitlines()]
    return rows, json.loads((tmp_path / name / "metrics.json").read_text())


def test_best_epoch_by_within_group_n_way_accuracy(tmp_path):
    rows, metrics = run(tmp_path, "nway", select="nway:2")
    accs = [r["val_nway"] for r in rows]
    assert all(0.0 <= a <= 1.0 for a in accs) and len(accs) == 4
    assert metrics["best_epoch"] == int(np.argmax(accs)) + 1  # the first best, not AUC's


def test_select_last_keeps_the_last_epoch(tmp_path):
    rows, metrics = run(tmp_path, "last", select="last")
    assert metrics["best_epoch"] == 4 and "val_nway" not in rows[0]


def test_eval_reports_mixed_and_within_group_episodes(tmp_path, capsys):
    run(tmp_path, "ev", select="nway:2")
    out = tmp_path / "ev.json"
    assert eval_cli.main([str(tmp_path / "ev"), "--n-way", "2", "--within-group",
                          "--episodes", "40", "--tta", "1", "--out", str(out)]) == 0
    two = json.loads(out.read_text())["n_way"]["2"]
    assert two["within_group"]["groups"] == 4 and two["within_group"]["rule"] == "csv"
    assert 0.0 <= two["within_group"]["accuracy"] <= 1.0 <= two["n_classes"]
    assert "within one group" in capsys.readouterr().out
    assert eval_cli.main([str(tmp_path / "ev"), "--within-group"]) == 2  # needs --n-way


def test_nway_selection_needs_enough_validation_classes_in_one_group(tmp_path):
    root = grouped_folder(tmp_path)
    cfg = write_config(tmp_path / "bad.yaml", root,
                       data={"split": "group", "groups": "csv", "val_fraction": 0.2,
                             "test_fraction": 0.2},
                       train={"select": "nway:3", "epochs": 1})
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "bad")]) == 2  # groups of 2
    assert not (tmp_path / "bad" / "log.jsonl").exists()
