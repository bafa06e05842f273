"""python -m siamese.gallery on a real export (the legacy fixture's) and real image files:
build, query, add, remove, calibrate; refusals of another export and of damaged files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from conftest import ROOT, extra

from siamese.commands.gallery import main
from siamese.formats.gallery import read_gallery

FIXTURE = ROOT / "tests" / "fixtures" / "legacy"


@pytest.fixture
def setup(tmp_path):
    """(export dir, image folder, gallery path) in a temporary folder."""
    shutil.copytree(FIXTURE / "run" / "export", tmp_path / "export")
    shutil.copytree(FIXTURE / "images", tmp_path / "images")
    return tmp_path / "export", tmp_path / "images", tmp_path / "g.npz"


def split(images: Path, tmp: Path, names: list, to: str) -> Path:
    """A folder holding only these identities (copies)."""
    for n in names:
        shutil.copytree(images / n, tmp / to / n)
    return tmp / to


def query(capsys, *args) -> list:
    capsys.readouterr()
    assert main(["query", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_build_then_query_names_the_identity(setup, capsys):
    export, images, g = setup
    assert main(["build", str(export), str(images), "--out", str(g)]) == 0
    gallery = read_gallery(g)
    assert gallery.identities == ["class0", "class1", "class2", "class3"]
    assert len(gallery.paths) == 32 and gallery.embeddings.shape == (32, 8)
    out = query(capsys, g, images / "class2" / "003.png", "--top-k", "2")
    assert out[0]["identity"] == "class2" and len(out[0]["top"]) == 2
    assert out[0]["top"][0]["score"] == pytest.approx(0.0, abs=1e-6)  # an enrolled image itself
    assert out[0]["threshold"] == json.loads((export / "model.json").read_text())[
        "score"]["threshold"]


def test_a_stranger_is_unknown(setup, tmp_path, capsys):
    export, images, g = setup
    known = split(images, tmp_path, ["class0", "class1"], "known")
    assert main(["build", str(export), str(known), "--out", str(g)]) == 0
    strangers = sorted((images / "class3").glob("*.png"))
    out = query(capsys, g, *strangers)
    threshold = out[0]["threshold"]
    for d in out:  # unknown exactly when the best identity's distance is beyond the threshold
        assert (d["identity"] == "unknown") == (d["best"]["score"] > threshold)
        assert d["best"]["identity"] in ("class0", "class1")
    assert any(d["identity"] == "unknown" for d in out)


def test_add_then_remove_equals_a_fresh_build(setup, tmp_path):
    export, images, g = setup
    first = split(images, tmp_path, ["class0", "class2"], "first")
    more = split(images, tmp_path, ["class1", "class3"], "more")
    assert main(["build", str(export), str(first), "--out", str(g)]) == 0
    fresh = read_gallery(g)
    assert main(["add", str(g), str(more)]) == 0
    grown = read_gallery(g)
    assert grown.identities == ["class0", "class1", "class2", "class3"]
    assert main(["add", str(g), str(more)]) == 0  # the same files again: nothing enrolled twice
    assert len(read_gallery(g).paths) == 32
    assert main(["remove", str(g), "class1", "class3"]) == 0
    back = read_gallery(g)
    assert back.identities == fresh.identities and back.paths == fresh.paths
    assert back.digests == fresh.digests and back.labels.tolist() == fresh.labels.tolist()
    np.testing.assert_array_equal(back.embeddings, fresh.embeddings)
    assert main(["remove", str(g), "nobody"]) == 2


def test_calibrate_stores_a_threshold_that_query_uses(setup, tmp_path, capsys):
    export, images, g = setup
    gallery_dir = tmp_path / "gallery"
    probes = tmp_path / "probes"
    for c in ["class0", "class1", "class2"]:  # 3 images enrolled, 5 probes, of each
        for k, f in enumerate(sorted((images / c).glob("*.png"))):
            (gallery_dir if k < 3 else probes).joinpath(c).mkdir(parents=True, exist_ok=True)
            shutil.copy(f, (gallery_dir if k < 3 else probes) / c / f.name)
    shutil.copytree(images / "class3", probes / "class3")  # not enrolled: impostors
    assert main(["build", str(export), str(gallery_dir), "--out", str(g)]) == 0
    assert main(["calibrate", str(g), "--probes", str(probes), "--far", "0.25"]) == 0
    c = read_gallery(g).header["calibration"]["0.25"]
    assert c["n_genuine"] == 15 and c["n_impostor"] == 8 and c["far"] <= 0.25
    out = query(capsys, g, *sorted((probes / "class3").glob("*.png")), "--far", "0.25")
    assert all(d["threshold"] == c["threshold"] for d in out)
    assert sum(d["identity"] != "unknown" for d in out) == round(c["far"] * 8)
    assert main(["query", str(g), str(probes / "class3" / "000.png"), "--far", "0.5"]) == 2


def perturbed(export: Path, to: Path) -> Path:
    """A copy of the export with one weight changed: another network, same layout."""
    shutil.copytree(export, to)
    params = to / "branch-0000.params"
    arrays = mx.nd.load(str(params))
    key = sorted(arrays)[0]
    arrays[key] = arrays[key] + 0.01
    mx.nd.save(str(params), arrays)
    return to


def test_a_gallery_is_refused_by_another_export(setup, tmp_path, capsys):
    export, images, g = setup
    assert main(["build", str(export), str(images), "--out", str(g)]) == 0
    other = perturbed(export, tmp_path / "other")
    capsys.readouterr()
    assert main(["query", str(g), str(images / "class0" / "000.png"), "--export",
                 str(other)]) == 2
    err = capsys.readouterr().err
    assert str(export.resolve()) in err and str(other) in err and err.count("\n") == 1
    assert main(["add", str(g), str(images), "--export", str(other)]) == 2
    shutil.copy(other / "branch-0000.params", export / "branch-0000.params")  # retrained in place
    assert main(["query", str(g), str(images / "class0" / "000.png")]) == 2


def test_a_damaged_gallery_is_refused(setup, capsys):
    export, images, g = setup
    assert main(["build", str(export), str(images), "--out", str(g)]) == 0
    good = g.read_bytes()
    with np.load(g, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["embeddings"][3, 2] += 0.5  # a valid file whose numbers changed: the checksum sees it
    np.savez(g, **arrays)
    capsys.readouterr()
    assert main(["query", str(g), str(images / "class0" / "000.png")]) == 2
    assert "damaged gallery (its arrays do not match their checksum)" in capsys.readouterr().err
    data = bytearray(good)
    data[data.find(np.float32(arrays["embeddings"][5, 1]).tobytes())] ^= 0xFF  # a flipped byte
    g.write_bytes(bytes(data))
    assert main(["query", str(g), str(images / "class0" / "000.png")]) == 2
    assert "damaged" in capsys.readouterr().err
    g.write_bytes(good[: len(good) // 2])  # cut short
    assert main(["info", str(g)]) == 2
    assert main(["info", str(g.with_name("missing.npz"))]) == 2


def test_the_search_benchmark_reports_every_index(tmp_path, capsys):
    extra("faiss")
    out = tmp_path / "bench.json"
    assert main(["bench", "--size", "3000", "--dim", "16", "--queries", "100", "--out",
                 str(out)]) == 0
    rows = {r["index"]: r for r in json.loads(out.read_text())["rows"]}
    assert sorted(rows) == ["exact", "flat", "hnsw", "ivf"]
    assert rows["flat"]["recall_at_1"] == 1.0 and "recall_at_1" not in rows["exact"]
    assert all(r["latency_ms_p50"] > 0 and r["queries_per_second_batch256"] > 0
               for r in rows.values())
    assert main(["bench", "--size", "100", "--indexes", "exact,annoy"]) == 2


def test_a_large_gallery_stores_its_index_and_queries_with_it(setup, capsys, monkeypatch):
    extra("faiss")
    export, images, g = setup
    monkeypatch.setattr("siamese.identification.search.EXACT_LIMIT", 10)  # 32 images count as large
    assert main(["build", str(export), str(images), "--out", str(g)]) == 0
    gallery = read_gallery(g)
    assert gallery.header["index"]["kind"] == "ivf" and gallery.index.size > 0
    probes = [images / "class1" / "004.png", images / "class3" / "006.png"]
    stored = query(capsys, g, *probes, "--top-k", "4")
    assert stored == query(capsys, g, *probes, "--top-k", "4", "--index", "exact")
    assert main(["remove", str(g), "class0"]) == 0
    assert read_gallery(g).header["index"]["kind"] == "ivf"  # rebuilt for the new rows
    monkeypatch.setattr("siamese.identification.search.EXACT_LIMIT", 50_000)
    assert main(["remove", str(g), "class1"]) == 0
    assert read_gallery(g).index is None and read_gallery(g).header["index"] is None
