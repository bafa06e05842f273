"""Where decoded images live (memory, the decoded cache, stream) and the cache file's checks:
every storage gives the same images, pairs and figures; a changed folder gets a new cache; a
damaged cache is rebuilt, never used."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import make_folder, write_config

import train
from siamese.config import from_dict
from siamese.data import cache
from siamese.data.images import decode_all
from siamese.data.prepare import prepare
from siamese.data.sources import scan_source
from siamese.data.storage import StreamImages, store
from siamese.errors import UserError


def data_cfg(root: Path, **kw):
    d = {"root": str(root), "image_size": 16, "val_pairs": 20, "test_pairs": 20,
         "val_fraction": 0.25, "test_fraction": 0.25}
    d.update(kw)
    return from_dict({"data": d}).data


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "images", classes=3, per_class=6, size=20, mode="RGB")


def reference(root: Path, size=16, channels=1) -> np.ndarray:
    f = scan_source(str(root))
    images, bad = decode_all([f.root / p for p in f.paths], [size, size], channels)
    assert not bad
    return images


def test_cache_maps_the_same_pixels_and_is_reused(folder, tmp_path, caplog):
    cfg = data_cfg(folder, storage="cache", cache_dir=str(tmp_path / "c"))
    first = store(scan_source(cfg.root), cfg)
    assert isinstance(first.images.base, np.memmap) and first.info["cache"]["built"]
    assert not first.images.flags.writeable and not first.images.flags.owndata
    np.testing.assert_array_equal(first.images, reference(folder))
    from siamese.formats.pairsets import image_digests
    assert first.digests == image_digests(reference(folder))
    second = store(scan_source(cfg.root), cfg)
    assert not second.info["cache"]["built"]
    assert second.info["cache"]["file"] == first.info["cache"]["file"]
    np.testing.assert_array_equal(second.images, first.images)
    assert len(list((tmp_path / "c").glob("*.u8"))) == 1


def test_a_changed_folder_gets_a_new_cache(folder, tmp_path):
    cfg = data_cfg(folder, storage="cache", cache_dir=str(tmp_path / "c"))
    a = store(scan_source(cfg.root), cfg)
    target = folder / "class1" / "002.png"
    pixels = np.full((20, 20, 3), 7, np.uint8)
    from PIL import Image
    Image.fromarray(pixels).save(target)
    b = store(scan_source(cfg.root), cfg)
    assert b.info["cache"]["built"] and b.info["cache"]["file"] != a.info["cache"]["file"]
    i = scan_source(cfg.root).paths.index("class1/002.png")
    assert (b.images[i] == 7).all() and not (a.images[i] == 7).all()
    # another image size or colour is another cache too
    c = store(scan_source(cfg.root), data_cfg(folder, storage="cache", channels=3,
                                               cache_dir=str(tmp_path / "c")))
    assert c.info["cache"]["built"] and c.images.shape[-1] == 3


@pytest.mark.parametrize("damage, why", [
    (lambda p: os.truncate(p, p.stat().st_size - 5), "no trailer"),
    (lambda p: os.truncate(p, 100), "no trailer"),
    (lambda p: _flip(p, 300), "does not match its digest"),  # a pixel of image 1
    (lambda p: _flip(p, p.stat().st_size - 60), "checksum"),  # inside the JSON header
    (lambda p: p.write_bytes(b""), "shorter than its trailer"),
])
def test_a_damaged_cache_is_rebuilt_never_used(folder, tmp_path, caplog, damage, why):
    cfg = data_cfg(folder, storage="cache", cache_dir=str(tmp_path / "c"))
    path = Path(store(scan_source(cfg.root), cfg).info["cache"]["file"])
    damage(path)
    with caplog.at_level(logging.WARNING):
        again = store(scan_source(cfg.root), cfg)
    assert again.info["cache"]["built"]
    assert any("damaged" in r.message and why in r.message for r in caplog.records), \
        [r.message for r in caplog.records]
    np.testing.assert_array_equal(again.images, reference(folder))
    assert cache.read_meta(path)[0] is not None


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_unreadable_images_are_remembered_by_the_cache(folder, tmp_path, caplog):
    (folder / "class0" / "001.png").write_bytes(b"not an image")
    cfg = data_cfg(folder, storage="cache", cache_dir=str(tmp_path / "c"))
    for built in (True, False):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            data = prepare(cfg, seed=0)
        assert data.storage["cache"]["built"] is built
        assert "class0/001.png" not in data.folder.paths and len(data.images) == 17
        assert any("class0/001.png" in r.message for r in caplog.records)
    with pytest.raises(UserError, match="class0/001.png"):
        prepare(data_cfg(folder, storage="cache", cache_dir=str(tmp_path / "c"),
                         bad_images="error"), seed=0)


def test_stream_decodes_on_access(folder):
    cfg = data_cfg(folder, storage="stream")
    s = store(scan_source(cfg.root), cfg)
    assert isinstance(s.images, StreamImages) and len(s.images) == 18
    ref = reference(folder)
    np.testing.assert_array_equal(s.images[np.array([5, 0, 17])], ref[[5, 0, 17]])
    np.testing.assert_array_equal(s.images[3], ref[3])


def test_auto_caches_only_large_sets(folder, tmp_path, monkeypatch):
    from siamese.data import storage
    cfg = data_cfg(folder, cache_dir=str(tmp_path / "c"))
    assert store(scan_source(cfg.root), cfg).info["storage"] == "memory"
    monkeypatch.setattr(storage, "AUTO_CACHE_IMAGES", 10)
    assert store(scan_source(cfg.root), cfg).info["storage"] == "cache"


def test_storage_rules_name_the_key(tmp_path):
    from siamese.config.rules import check
    bad = [({"storage": "memory", "cache_dir": "/tmp/x"}, "data.cache_dir"),
           ({"root": "x.idx"}, "data.root"), ({"workers": 10000}, "data.workers")]
    for data, key in bad:
        with pytest.raises(UserError, match=key):
            check(from_dict({"data": data}))


def _metrics(run: Path) -> dict:
    m = json.loads((run / "metrics.json").read_text())
    m.pop("train_seconds")
    return m


@pytest.mark.slow
def test_every_storage_trains_to_the_same_figures(tmp_path, monkeypatch, capsys):
    """Same seed, same metrics.json and pair files: memory, cache (built, then mapped), stream
    with 2 worker processes, and a pack of the folder; eval.py maps the cache too."""
    import eval as eval_cli

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    root = make_folder(tmp_path / "images", classes=4, per_class=10)
    from siamese.data.packing import write_pack
    write_pack(root, tmp_path / "pack" / "tiny")
    variants = {
        "memory": {"storage": "memory"},
        "cache1": {"storage": "cache"},
        "cache2": {"storage": "cache"},
        "stream": {"storage": "stream", "workers": 2},
        "pack": {"root": str(tmp_path / "pack" / "tiny.rec"), "storage": "cache",
                 "cache_dir": str(tmp_path / "c")},
    }
    out = {}
    for name, data in variants.items():
        cfg = write_config(tmp_path / f"{name}.yaml", root, data=data)
        assert train.main([str(cfg), "--run-dir", str(tmp_path / name)]) == 0
        out[name] = _metrics(tmp_path / name)
        storage = json.loads((tmp_path / name / "storage.json").read_text())
        assert storage["storage"] == data["storage"]
    assert json.loads((tmp_path / "cache2" / "storage.json").read_text())["cache"]["built"] \
        is False
    for name in variants:
        assert out[name] == out["memory"], name
        for f in ("val.csv", "test.csv", "split.csv", "digests.csv"):
            assert (tmp_path / name / "pairs" / f).read_bytes() == \
                (tmp_path / "memory" / "pairs" / f).read_bytes(), (name, f)
    capsys.readouterr()
    assert eval_cli.main([str(tmp_path / "cache2")]) == 0
    assert "decoded cache: mapped" in capsys.readouterr().err
    rep = json.loads((tmp_path / "cache2" / "eval.json").read_text())
    assert all(rep[k] == out["memory"]["test"][k] for k in ("auc", "eer", "accuracy"))
