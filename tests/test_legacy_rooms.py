"""Files written by the code before issue 28 moved the rooms (tests/fixtures/rooms: a run
directory with its checkpoints, float / fused / int8 exports, a gallery and a RecordIO pack)
still load, evaluate, predict, resume and query, with the figures that code gave
(expected.json). Compared to 1e-5 relative: equal in every digit on the machine that made them,
within float noise on another CPU."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import ROOT, copied_fixture

import eval as eval_cli
import train
from siamese.commands.gallery import main as gallery_main
from siamese.commands.predict import main as predict_main

FIXTURE = ROOT / "tests" / "fixtures" / "rooms"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())


@pytest.fixture
def rooms(tmp_path):
    """A copy of the fixture, the current folder set so its relative paths resolve."""
    yield from copied_fixture(FIXTURE, tmp_path)


def test_the_fixture_names_no_path_of_a_machine():
    for path in FIXTURE.rglob("*"):
        if path.is_file() and path.suffix != ".png":
            data = path.read_bytes()
            for marker in (b"/work/", b"/tmp/", b"/home/", b"/root/"):
                assert marker not in data, (path, marker)


def test_eval_gives_the_old_figures(rooms):
    assert eval_cli.main(["run", "--out", str(rooms / "eval.json")]) == 0
    report = json.loads((rooms / "eval.json").read_text())
    for key, value in EXPECTED["eval_test_pairs"].items():
        assert report[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key


@pytest.mark.parametrize("export", ["export", "export-fused", "export-int8"])
def test_predict_with_every_old_export_kind(rooms, capsys, export):
    cases = [c for c in EXPECTED["predict"] if c["export"] == export]
    assert len(cases) == 2
    for case in cases:
        capsys.readouterr()
        assert predict_main([f"run/{export}", case["left"], case["right"], "--json"]) == 0
        got = json.loads(capsys.readouterr().out)
        assert got["score"] == pytest.approx(case["score"], rel=1e-5)
        assert got["same"] is case["same"]


def test_query_an_old_gallery(rooms, capsys):
    capsys.readouterr()
    probes = [c["image"] for c in EXPECTED["gallery_query"]]
    assert gallery_main(["query", "people.gallery", *probes, "--top-k", "2", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    for g, want in zip(got, EXPECTED["gallery_query"]):
        assert g["identity"] == want["identity"]
        assert [t["identity"] for t in g["top"]] == [t["identity"] for t in want["top"]]
        assert [t["score"] for t in g["top"]] == pytest.approx(
            [t["score"] for t in want["top"]], rel=1e-5, abs=1e-6)


@pytest.mark.slow
def test_resume_an_old_run(rooms):
    assert train.main(["--resume", "run", "--set", "train.epochs=3"]) == 0
    rows = [json.loads(line) for line in (rooms / "run" / "log.jsonl").read_text().splitlines()]
    want = EXPECTED["resume_to_3_epochs"]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[2]["train_loss"] == pytest.approx(want["epoch_3_train_loss"], rel=1e-5)
    metrics = json.loads((rooms / "run" / "metrics.json").read_text())
    assert metrics["best_epoch"] == want["best_epoch"]
    assert metrics["val"]["threshold"] == pytest.approx(want["threshold"], rel=1e-5)
    assert metrics["test"]["auc"] == pytest.approx(want["test_auc"], rel=1e-6)


@pytest.mark.slow
def test_train_from_an_old_pack(rooms):
    cfg = yaml.safe_load((rooms / "tiny.yaml").read_text())
    cfg["data"]["root"] = "pack.rec"
    (rooms / "pack.yaml").write_text(yaml.safe_dump(cfg))
    assert train.main(["pack.yaml", "--run-dir", "packrun"]) == 0
    metrics = json.loads((rooms / "packrun" / "metrics.json").read_text())
    want = EXPECTED["train_from_pack"]
    assert metrics["best_epoch"] == want["best_epoch"]
    for key in ("auc", "eer", "accuracy", "threshold"):
        assert metrics["test"][key] == pytest.approx(want["test"][key], rel=1e-5, abs=1e-7), key
