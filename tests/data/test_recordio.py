"""RecordIO packs: python -m siamese.pack round-trips every image exactly; packs written by
MXNet's own recordio writer (and insightface-style ones) read correctly; a damaged pack is
refused with one line (exit 2)."""

from __future__ import annotations

import struct
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from conftest import make_folder, write_config
from PIL import Image

import train
from siamese.commands import pack as pack_cli
from siamese.data.images import decode_all
from siamese.data.recordio import MAGIC, RecordFile, encode_record, open_pack, read_idx
from siamese.data.sources import item_loader, scan_source
from siamese.errors import UserError


def mixed_folder(root: Path) -> Path:
    """PNG grey and RGB, JPEG, palette GIF and BMP images of odd sizes, 3 classes."""
    rng = np.random.default_rng(1)
    kinds = [("L", "png"), ("RGB", "png"), ("RGB", "jpg"), ("P", "gif"), ("RGB", "bmp")]
    for c in range(3):
        (root / f"c{c}").mkdir(parents=True)
        for k, (mode, ext) in enumerate(kinds):
            arr = rng.integers(0, 256, (13 + k, 9 + c, 3), dtype=np.uint8)
            Image.fromarray(arr).convert(mode).save(root / f"c{c}" / f"{k}.{ext}")
    return root


def decoded(root, size=(12, 10), channels=3) -> np.ndarray:
    f = scan_source(str(root))
    load = item_loader(f, size, channels)
    return np.stack([load(i) for i in range(len(f.paths))])


@pytest.mark.parametrize("encoding", ["copy", "png"])
def test_pack_round_trips_every_image_exactly(tmp_path, capsys, encoding):
    root = mixed_folder(tmp_path / "img")
    out = tmp_path / "out" / "set"
    assert pack_cli.main([str(root), "--out", str(out), "--encoding", encoding,
                          "--quiet"]) == 0
    assert "15 images, 3 classes" in capsys.readouterr().out
    f = scan_source(str(root))
    _, paths, labels, classes = open_pack(out.with_suffix(".rec"))
    assert paths == f.paths and classes == f.classes and (labels == f.labels).all()
    for channels in (1, 3):
        want, _ = decode_all([root / p for p in f.paths], (12, 10), channels)
        np.testing.assert_array_equal(decoded(out.with_suffix(".rec"), channels=channels), want)
    lst = out.with_suffix(".lst").read_text().splitlines()
    assert lst[0] == f"0\t0.000000\t{f.paths[0]}" and len(lst) == 15


def test_mxnet_reads_our_pack_and_we_read_mxnets(tmp_path):
    root = make_folder(tmp_path / "img", classes=2, per_class=3)
    ours = tmp_path / "ours"
    pack_cli.main([str(root), "--out", str(ours), "--quiet"])
    r = mx.recordio.MXIndexedRecordIO(str(ours) + ".idx", str(ours) + ".rec", "r")
    header, body = mx.recordio.unpack(r.read_idx(4))
    assert header.label == 1.0 and body == (root / "class1" / "001.png").read_bytes()
    # MXNet's writer, pack_img (OpenCV, PNG), no .lst: paths are keys, classes labels
    extra = pytest.importorskip("cv2")
    assert extra
    rng = np.random.default_rng(0)
    w = mx.recordio.MXIndexedRecordIO(str(tmp_path / "mx.idx"), str(tmp_path / "mx.rec"), "w")
    arrays = []
    for i in range(6):
        arr = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)  # OpenCV: BGR
        arrays.append(arr)
        w.write_idx(i, mx.recordio.pack_img(mx.recordio.IRHeader(0, float(i % 2 * 7), i, 0),
                                            arr, img_fmt=".png"))
    w.close()
    f = scan_source(str(tmp_path / "mx.rec"))
    assert f.classes == ["0", "7"] and f.paths == ["0", "2", "4", "1", "3", "5"]
    got = decoded(tmp_path / "mx.rec", size=(8, 8))
    want = np.stack([arrays[int(p)][..., ::-1] for p in f.paths])  # BGR -> RGB
    np.testing.assert_array_equal(got, want)


def test_insightface_header_record(tmp_path):
    """Record 0: label vector (images end, identities end); images 1..N; identity records."""
    rng = np.random.default_rng(0)
    w = mx.recordio.MXIndexedRecordIO(str(tmp_path / "f.idx"), str(tmp_path / "f.rec"), "w")
    n, ids = 6, 3
    w.write_idx(0, mx.recordio.pack(mx.recordio.IRHeader(2, [n + 1, n + 1 + ids], 0, 0), b""))
    arrays = {}
    for i in range(1, n + 1):
        arrays[i] = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
        label = [float((i - 1) // 2), 0.0]  # a label vector, as insightface writes
        w.write_idx(i, mx.recordio.pack_img(mx.recordio.IRHeader(2, label, i, 0), arrays[i],
                                            img_fmt=".png"))
    for k in range(ids):  # identity k: its images' key range
        w.write_idx(n + 1 + k, mx.recordio.pack(
            mx.recordio.IRHeader(2, [1 + 2 * k, 3 + 2 * k], 0, 0), b""))
    w.close()
    f = scan_source(str(tmp_path / "f.rec"))
    assert len(f.paths) == n and f.classes == ["0", "1", "2"]
    assert list(f.labels) == [0, 0, 1, 1, 2, 2]
    np.testing.assert_array_equal(decoded(tmp_path / "f.rec", size=(5, 5))[3],
                                  arrays[4][..., ::-1])


def test_records_holding_the_magic_are_split_as_dmlc_does(tmp_path):
    magic = struct.pack("<I", MAGIC)
    payloads = [b"ab" + magic + b"cdef" + magic, magic + b"x" * 7, b"1234" + magic + b"5",
                b"", b"xyz"]
    # MXNet writes, we read
    w = mx.recordio.MXIndexedRecordIO(str(tmp_path / "a.idx"), str(tmp_path / "a.rec"), "w")
    for i, p in enumerate(payloads):
        w.write_idx(i, p)
    w.close()
    r = RecordFile(tmp_path / "a.rec", read_idx(tmp_path / "a.idx", 10 ** 6))
    assert [r.read(i) for i in range(len(payloads))] == payloads
    # we write, MXNet reads
    blob, idx = b"", []
    for i, p in enumerate(payloads):
        idx.append(f"{i}\t{len(blob)}")
        blob += encode_record(p)
    assert blob == (tmp_path / "a.rec").read_bytes()
    (tmp_path / "b.rec").write_bytes(blob)
    (tmp_path / "b.idx").write_text("\n".join(idx) + "\n")
    m = mx.recordio.MXIndexedRecordIO(str(tmp_path / "b.idx"), str(tmp_path / "b.rec"), "r")
    assert [m.read_idx(i) for i in range(len(payloads))] == payloads


@pytest.mark.parametrize("damage, message", [
    (lambda rec: rec.write_bytes(rec.read_bytes()[:-50]), "damaged"),
    (lambda rec: rec.with_suffix(".idx").write_text("0\tzero\n"), "expected key<TAB>offset"),
    (lambda rec: rec.with_suffix(".idx").unlink(), "side by side"),
    (lambda rec: rec.write_bytes(b"\0" * 8 + rec.read_bytes()[8:]), "bad magic"),
])
def test_a_damaged_pack_is_refused_with_one_line(tmp_path, capsys, damage, message):
    root = make_folder(tmp_path / "img", classes=2, per_class=3)
    pack_cli.main([str(root), "--out", str(tmp_path / "p"), "--quiet"])
    rec = tmp_path / "p.rec"
    damage(rec)
    cfg = write_config(tmp_path / "c.yaml", rec)
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "p." in err[0], err


def test_an_unreadable_image_in_a_pack_is_a_bad_image(tmp_path):
    root = make_folder(tmp_path / "img", classes=2, per_class=3)
    (root / "class0" / "001.png").write_bytes(b"garbage")
    pack_cli.main([str(root), "--out", str(tmp_path / "p"), "--quiet"])
    f = scan_source(str(tmp_path / "p.rec"))
    with pytest.raises(UserError, match=r"p.rec:class0/001.png: cannot read image"):
        item_loader(f, (8, 8), 1)(1)


def test_decoding_threads_share_one_pack(tmp_path):
    """decode_each reads a pack from 4 threads at once: positional reads, no shared seek."""
    from siamese.data.images import decode_each

    root = make_folder(tmp_path / "img", classes=4, per_class=50, size=8)
    pack_cli.main([str(root), "--out", str(tmp_path / "p"), "--quiet"])
    f = scan_source(str(tmp_path / "p.rec"))
    out = np.zeros((len(f.paths), 8, 8, 1), np.uint8)
    assert decode_each(len(f.paths), item_loader(f, (8, 8), 1), out.__setitem__) == []
    want, _ = decode_all([root / p for p in f.paths], (8, 8), 1)
    np.testing.assert_array_equal(out, want)
