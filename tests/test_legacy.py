"""A run directory written by the flat package before issue 17 (tests/fixtures/legacy: its
checkpoints, export and pairs) still loads: eval.py, predict, the export command and resume
give what that code gave (expected.json). Figures are compared to 1e-5 relative: equal in every
digit on the machine that made them, and within float noise on another CPU."""

from __future__ import annotations

import json

import pytest
from conftest import LEGACY

import eval as eval_cli
import train
from siamese.commands.export import main as export_main
from siamese.commands.predict import main as predict_main
from siamese.scoring.bundles import open_comparator

FIXTURE = LEGACY
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())


def test_the_fixture_names_no_path_of_a_machine():
    for path in FIXTURE.rglob("*"):
        if path.is_file() and path.suffix != ".png":
            data = path.read_bytes()
            for marker in (b"/work/", b"/tmp/", b"/home/", b"/root/"):
                assert marker not in data, (path, marker)


def test_legacy_export_opens(legacy):
    comparator, meta = open_comparator(legacy / "run" / "export", 4)
    assert comparator.kind == "branch" and comparator.same_embedding
    assert meta["score"]["threshold"] == EXPECTED["eval_test_pairs"]["threshold"]


def test_eval_on_a_legacy_run_gives_its_figures(legacy):
    assert eval_cli.main(["run", "--out", str(legacy / "eval.json")]) == 0
    report = json.loads((legacy / "eval.json").read_text())
    for key, value in EXPECTED["eval_test_pairs"].items():
        assert report[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key


def test_predict_on_a_legacy_export_gives_its_scores(legacy, capsys):
    for case in EXPECTED["predict"]:
        capsys.readouterr()
        assert predict_main(["run/export", case["left"], case["right"], "--json"]) == 0
        got = json.loads(capsys.readouterr().out)
        assert got["score"] == pytest.approx(case["score"], rel=1e-5)
        assert got["same"] is case["same"]


@pytest.mark.slow
def test_export_command_rebuilds_a_legacy_run(legacy, capsys):
    assert export_main(["run", "--out", "again"]) == 0
    old = json.loads((legacy / "run" / "export" / "model.json").read_text())
    new = json.loads((legacy / "again" / "model.json").read_text())
    assert new["score"]["threshold"] == pytest.approx(old["score"]["threshold"], rel=1e-6)
    assert {k: new[k] for k in ("kind", "input", "preprocess", "distance")} == \
        {k: old[k] for k in ("kind", "input", "preprocess", "distance")}


@pytest.mark.slow
def test_resume_a_legacy_run(legacy):
    assert train.main(["--resume", "run", "--set", "train.epochs=3"]) == 0
    rows = [json.loads(line) for line in (legacy / "run" / "log.jsonl").read_text().splitlines()]
    want = EXPECTED["resume_to_3_epochs"]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[2]["train_loss"] == pytest.approx(want["epoch_3_train_loss"], rel=1e-5)
    metrics = json.loads((legacy / "run" / "metrics.json").read_text())
    assert metrics["best_epoch"] == want["best_epoch"] and metrics["epochs_trained"] == 3
    assert metrics["val"]["threshold"] == pytest.approx(want["threshold"], rel=1e-5)
