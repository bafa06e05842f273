"""Fixed episodes: Lake's run folders and the CSV format, read from hand-made files; an
episode score computed by hand; malformed files name the line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

import eval as eval_cli
from siamese.errors import UserError
from siamese.eval.episodes import read_episodes, score_episodes


def png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(path)


def lake_run(folder: Path, name: str = "run01") -> Path:
    run = folder / name
    for k in (1, 2, 3):
        png(run / "training" / f"class{k:02d}.png", 40 * k)
        png(run / "test" / f"item{k:02d}.png", 40 * k + 1)
    (run / "class_labels.txt").write_text(
        f"{name}/test/item01.png {name}/training/class02.png\n"
        f"{name}/test/item02.png {name}/training/class02.png\n"
        f"{name}/test/item03.png {name}/training/class03.png\n")
    return run


def test_lake_run_folders_read_as_they_are(tmp_path):
    lake_run(tmp_path / "runs", "run01")
    lake_run(tmp_path / "runs", "run02")
    episodes, root = read_episodes(tmp_path / "runs")
    assert root == tmp_path / "runs" and [e.name for e in episodes] == ["run01", "run02"]
    e = episodes[0]
    assert e.support == [f"run01/training/class0{k}.png" for k in (1, 2, 3)]
    assert e.query == [f"run01/test/item0{k}.png" for k in (1, 2, 3)]
    assert e.query_labels == ["run01/training/class02.png"] * 2 + ["run01/training/class03.png"]
    one, root = read_episodes(tmp_path / "runs" / "run02")  # a single run folder
    assert len(one) == 1 and root == tmp_path / "runs"


def test_the_shipped_omniglot_runs_are_20_runs_of_20():
    episodes, _ = read_episodes(ROOT / "data" / "omniglot" / "runs")
    assert len(episodes) == 20
    assert all(len(e.support) == 20 and len(e.query) == 20 for e in episodes)


@pytest.mark.parametrize("line, message", [
    ("run01/test/item01.png", "line 2: expected 'run01/test/ITEM.png run01/training/CLASS.png'"),
    ("run01/test/item01.png run01/training/class09.png", "line 2: run01/training/class09.png "
                                                        "is not one of the run's training"),
])
def test_malformed_class_labels_name_the_line(tmp_path, line, message):
    run = lake_run(tmp_path)
    text = (run / "class_labels.txt").read_text().splitlines()
    text[1] = line
    (run / "class_labels.txt").write_text("\n".join(text) + "\n")
    with pytest.raises(UserError, match=f"class_labels.txt: {message}"):
        read_episodes(run)


def test_csv_episodes_and_their_errors(tmp_path):
    for name, v in (("a1", 10), ("a2", 12), ("b1", 200), ("b2", 210)):
        png(tmp_path / f"{name}.png", v)
    f = tmp_path / "ep.csv"
    f.write_text("episode,role,path,label\ne1,support,a1.png,A\ne1,support,b1.png,B\n"
                 "e1,query,a2.png,A\ne1,query,b2.png,B\n")
    (e,), root = read_episodes(f)
    assert root == tmp_path and e.support_labels == ["A", "B"] and e.query == ["a2.png", "b2.png"]
    for body, message in (("e1,guess,a1.png,A", "line 2: role must be support or query"),
                          ("e1,support,a1.png", "line 2: expected 4 non-empty fields"),
                          ("e1,support,zz.png,A\ne1,support,b1.png,B\ne1,query,a2.png,A",
                           "no such image"),
                          ("e1,support,a1.png,A\ne1,support,b1.png,B\ne1,query,a2.png,C",
                           "query class 'C' has no support image"),
                          ("e1,support,../x.png,A\ne1,support,b1.png,B\ne1,query,a2.png,A",
                           "outside the root")):
        f.write_text("episode,role,path,label\n" + body + "\n")
        with pytest.raises(UserError, match=message):
            read_episodes(f)


def test_episode_scores_by_hand():
    # Two episodes on a line. e1: supports A at 0, B at 10; queries at 1 (A), 6 (B), 4 (B):
    # nearest supports A, B, A -> 2 of 3 right. e2: supports C at 0, D at 2, E at 5; query at
    # 1.2 (D) -> nearest D (0.8 < 1.2) -> right. Pooled 3 of 4.
    from siamese.eval.episodes import Episode

    pos = {"a": 0.0, "b": 10.0, "q1": 1.0, "q2": 6.0, "q3": 4.0,
           "c": 0.0, "d": 2.0, "e": 5.0, "q4": 1.2}
    eps = [Episode("e1", ["a", "b"], ["A", "B"], ["q1", "q2", "q3"], ["A", "B", "B"]),
           Episode("e2", ["c", "d", "e"], ["C", "D", "E"], ["q4"], ["D"])]
    names = sorted(pos)
    x = np.array([pos[n] for n in names])
    r = score_episodes(eps, {n: k for k, n in enumerate(names)},
                       lambda q, s: np.abs(x[q] - x[s]), higher_is_similar=False)
    assert [p["accuracy"] for p in r["per_episode"]] == pytest.approx([2 / 3, 1.0])
    assert r["mean_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
    assert r["pooled_accuracy"] == pytest.approx(0.75) and r["error_rate"] == pytest.approx(0.25)
    assert r["queries"] == 4 and r["ci95"][0] < 0.75 < r["ci95"][1]
    # A similarity (higher = same) picks the largest score instead.
    r = score_episodes(eps, {n: k for k, n in enumerate(names)},
                       lambda q, s: -np.abs(x[q] - x[s]), higher_is_similar=True)
    assert r["pooled_accuracy"] == pytest.approx(0.75)


def test_eval_scores_episode_files_from_an_export(tmp_path, capsys):
    export = ROOT / "tests" / "fixtures" / "legacy" / "run" / "export"
    lake_run(tmp_path / "runs")
    out = tmp_path / "ep.json"
    assert eval_cli.main([str(export), "--episode-file", str(tmp_path / "runs"),
                          "--out", str(out)]) == 0
    report = json.loads(out.read_text())["episode_file"]
    assert report["episodes"] == 1 and report["queries"] == 3
    assert 0.0 <= report["mean_accuracy"] <= 1.0
    assert "fixed episodes (1, 3 queries)" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("episode,role,path\n")
    assert eval_cli.main([str(export), "--episode-file", str(bad)]) == 2
    assert "bad.csv: line 1: expected the header" in capsys.readouterr().err
