"""The service's model side on every export kind the project writes: float, fused, int8 (MXNet,
padded to static bucket sizes) and the ONNX file (onnxruntime); each embeds as the export's own
Comparator does, whatever the batch size."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import extra

from siamese.commands import export as export_cli
from siamese.data.images import load_images
from siamese.scoring.bundles import open_comparator
from siamese.service.engine import Engine, buckets

pytestmark = pytest.mark.slow


def test_buckets():
    assert buckets(1) == [1]
    assert buckets(32) == [1, 2, 4, 8, 16, 32]
    assert buckets(24) == [1, 2, 4, 8, 16, 24]


@pytest.fixture(scope="module")
def exports(trained_run, tmp_path_factory):
    run_dir, root, _ = trained_run
    tmp = tmp_path_factory.mktemp("kinds")
    out = {"float": run_dir / "export"}
    for kind, flags in (("fused", ["--optimize", "fused"]), ("int8", ["--quantize", "int8"]),
                        ("onnx", ["--onnx"])):
        if kind == "onnx":
            extra("onnxruntime")
        assert export_cli.main([str(run_dir), "--out", str(tmp / kind), *flags,
                                "--force"]) == 0
        out[kind] = tmp / kind
    return out, root


@pytest.mark.parametrize("kind", ["float", "fused", "int8", "onnx"])
def test_every_export_kind_embeds_as_its_comparator(exports, kind):
    dirs, root = exports
    runtime = "onnxruntime" if kind == "onnx" else "mxnet"
    engine = Engine(dirs[kind], runtime, max_batch=8)
    engine.warm_up()
    comparator, meta = open_comparator(dirs[kind], 16)
    files = sorted(root.rglob("*.png"))[:11]
    images = load_images(files, meta["preprocess"]["resize"], 1)
    want = comparator.embed_side(images, "left")
    x = engine.tensor(images, "left")
    for n in (1, 3, 8, 11):  # buckets 1, 4, 8 and two chunks
        got = engine.run(engine.role("left"), [x[:n]])
        assert got.shape == (n, meta["embedding_size"])
        assert np.allclose(got, want[:n], atol=1e-4), (kind, n, np.abs(got - want[:n]).max())
    assert engine.export_id == engine.fingerprint[:16]


def test_a_killed_enrolment_leaves_nothing_to_add_later(exports, tmp_path):
    """Uploads written by an enrolment that never wrote the gallery are removed at start."""
    from siamese.commands import gallery as gallery_cli
    from siamese.service.gallery import GalleryStore

    dirs, root = exports
    path = tmp_path / "g.gallery"
    assert gallery_cli.main(["build", str(dirs["float"]), str(root), "--out", str(path)]) == 0
    stray = tmp_path / "g.gallery.enrolled" / "eve" / "0123.png"
    stray.parent.mkdir(parents=True)
    stray.write_bytes((root / "class0/000.png").read_bytes()[::-1])
    store = GalleryStore(path, Engine(dirs["float"], max_batch=2))
    assert not stray.exists() and "eve" not in store.gallery.identities
