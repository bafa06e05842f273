"""eval.py --retrieval and --open-set on a real export and real images (the legacy fixture)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import eval as eval_cli
from siamese.data.folder import scan_folder
from siamese.data.images import load_images
from siamese.scoring.bundles import open_comparator


def test_retrieval_equals_ranking_every_distance_by_hand(legacy):
    out = legacy / "r" / "eval.json"
    assert eval_cli.main(["run", "--retrieval", "--root", "images", "--out", str(out)]) == 0
    r = json.loads(out.read_text())["retrieval"]
    folder = scan_folder(legacy / "images")
    comparator, meta = open_comparator(legacy / "run" / "export", 256)
    pre = meta["preprocess"]
    emb = comparator.embed_side(load_images([legacy / "images" / p for p in folder.paths],
                                            pre["resize"], 1), "left")
    d = np.linalg.norm(emb[:, None] - emb[None], axis=2)
    np.fill_diagonal(d, np.inf)
    order = np.argsort(d, axis=1, kind="stable")[:, :-1]  # the query itself (inf) last, dropped
    same = folder.labels[order] == folder.labels[:, None]
    assert r["n_queries"] == 32 and r["n_skipped"] == 0
    assert r["precision_at_1"] == pytest.approx(same[:, 0].mean())
    assert r["recall_at_k"]["4"] == pytest.approx(same[:, :4].any(axis=1).mean())
    assert r["r_precision"] == pytest.approx(same[:, :7].mean())  # R = 7 others per class
    ap = [(np.cumsum(s[:7]) / np.arange(1, 8) * s[:7]).sum() / 7 for s in same]
    assert r["map_at_r"] == pytest.approx(np.mean(ap))
    assert (out.parent / "cmc.png").is_file()


def test_open_set_protocol_counts_and_rates(legacy):
    out = legacy / "o" / "eval.json"
    assert eval_cli.main(["run", "--open-set", "--shots", "3", "--root", "images", "--out",
                          str(out)]) == 0
    o = json.loads(out.read_text())["open_set"]
    # 4 identities of 8 images: 2 enrolled with 3 shots, 2 x 5 genuine and 2 x 8 impostor probes
    assert (o["n_enrolled"], o["n_unknown"], o["n_gallery"]) == (2, 2, 6)
    assert (o["n_genuine"], o["n_impostor"]) == (10, 16)
    assert o["cmc"][-1] == 1.0 and len(o["cmc"]) == 2
    assert o["dir_at_far"]["0.1"]["far"] <= 0.1 and o["dir_at_far"]["0.01"]["far"] == 0.0
    assert o["dir_at_far"]["0.01"]["dir"] <= o["dir_at_far"]["0.1"]["dir"] <= o["rank1"]
    assert (out.parent / "dir_far.png").is_file() and (out.parent / "cmc.png").is_file()
    again = legacy / "o2" / "eval.json"
    assert eval_cli.main(["run", "--open-set", "--shots", "3", "--root", "images", "--out",
                          str(again)]) == 0
    assert json.loads(again.read_text())["open_set"]["enrolled"] == o["enrolled"]  # seeded


def test_open_set_refusals(legacy):
    args = ["run", "--open-set", "--root", "images", "--out", str(legacy / "x.json")]
    assert eval_cli.main(args + ["--shots", "8"]) == 2  # nothing left to probe with
    assert eval_cli.main(args + ["--unknown-fraction", "1.0"]) == 2
    assert eval_cli.main(args + ["--unknown-fraction", "0.1"]) == 2  # rounds to no one held back
