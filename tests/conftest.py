"""Shared fixtures: tiny real image folders and configs written to temporary directories."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import siamese  # noqa: F401  before any test imports mxnet: sets OMP_NUM_THREADS, so this

# process and the runs it starts use the same thread count (results depend on it slightly)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # train.py / eval.py importable from tests

DIGITS = ROOT / "data" / "digits"


def extra(module: str):
    """Import an optional extra, or skip the test when it is missing; but under CI
    (SIAMESE_REQUIRE_EXTRAS=1, set by .ci/run, which installs the extras) a missing extra is a
    failure, never a silent skip."""
    if os.environ.get("SIAMESE_REQUIRE_EXTRAS") == "1":
        return importlib.import_module(module)
    return pytest.importorskip(module)


def make_folder(root: Path, classes: int = 4, per_class: int = 8, size: int = 16,
                mode: str = "L", seed: int = 0) -> Path:
    """Write a real PNG image folder: each class a distinct bright square position + noise."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        d = root / f"class{c}"
        d.mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            img = rng.integers(0, 40, (size, size), dtype=np.uint8)
            q = size // 4
            r, col = (c // 2) * 2 * q, (c % 2) * 2 * q
            img[r:r + 2 * q, col:col + 2 * q] = 200 + rng.integers(0, 50)
            pil = Image.fromarray(img, "L").convert(mode)
            pil.save(d / f"{k:03d}.png")
    return root


LEGACY = ROOT / "tests" / "fixtures" / "legacy"


def copied_fixture(source: Path, tmp_path: Path):
    """A copy of a fixture folder, the current folder set to it while the test runs (so its
    relative paths resolve); the generator of a pytest fixture."""
    import shutil

    shutil.copytree(source, tmp_path / source.name)
    cwd = os.getcwd()
    os.chdir(tmp_path / source.name)
    yield tmp_path / source.name
    os.chdir(cwd)


@pytest.fixture
def legacy(tmp_path):
    """A copy of the run the flat package wrote before issue 17 (tests/fixtures/legacy)."""
    yield from copied_fixture(LEGACY, tmp_path)


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "images")


def write_config(path: Path, root: Path, **sections) -> Path:
    """A small fast config for tests; `sections` override, e.g. train={'epochs': 1}."""
    import yaml

    cfg = {
        "data": {"root": str(root), "image_size": 16, "val_pairs": 40, "test_pairs": 40,
                 "val_fraction": 0.25, "test_fraction": 0.25},
        "model": {"embedding_size": 8},
        "train": {"epochs": 2, "batch_size": 8, "pairs_per_epoch": 32, "eval_batch_size": 16},
        "device": "cpu",
    }
    for k, v in sections.items():
        cfg.setdefault(k, {})
        if isinstance(v, dict):
            cfg[k].update(v)
        else:
            cfg[k] = v
    path.write_text(yaml.safe_dump(cfg))
    return path


def pair_images(run_dir: Path, root: Path, size: int = 16):
    """uint8 images of the run's test pairs (each unique image once, sorted by path)."""
    from siamese.data.images import load_images
    from siamese.data.pairfiles import read_pair_file

    test = read_pair_file(run_dir / "pairs" / "test.csv", root)
    names = sorted(set(test.left) | set(test.right))
    return load_images([root / n for n in names], (size, size), 1)


def random_labelled_pairs(root: Path, path: Path, n: int = 60, seed: int = 3) -> Path:
    """A pair CSV of n random pairs of the class*/ images under root with random labels: an
    AUC far from 1 that any change of the scores moves."""
    import itertools

    import numpy as np

    names = sorted(p.relative_to(root).as_posix() for p in root.glob("class*/*.png"))
    rng = np.random.default_rng(seed)
    every = list(itertools.combinations(names, 2))
    rows = [f"{every[k][0]},{every[k][1]},{rng.integers(0, 2)}"
            for k in rng.choice(len(every), n, replace=False)]
    path.write_text("left,right,label\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A real 2-epoch run on a tiny folder: (run_dir, image root, config path). Shared."""
    import train

    tmp = tmp_path_factory.mktemp("trained")
    root = make_folder(tmp / "images", classes=4, per_class=10)
    cfg = write_config(tmp / "tiny.yaml", root)
    assert train.main([str(cfg), "--run-dir", str(tmp / "run")]) == 0
    return tmp / "run", root, cfg


@pytest.fixture(scope="session")
def served(trained_run, tmp_path_factory):
    """The real service (tests/service): (Server with --gallery, export dir, image root, gallery
    file), started once over a gallery built by `python -m siamese.gallery build`."""
    import shutil
    import subprocess

    extra("fastapi")
    extra("uvicorn")
    extra("multipart")
    sys.path.insert(0, str(ROOT / "tests" / "service"))
    from service_client import Server

    run_dir, root, _ = trained_run
    tmp = tmp_path_factory.mktemp("served")
    gallery = tmp / "people.gallery"
    subprocess.run([sys.executable, "-m", "siamese.gallery", "build", str(run_dir / "export"),
                    str(root), "--out", str(gallery)], check=True, cwd=ROOT,
                   capture_output=True)
    shutil.copy(gallery, tmp / "original.gallery")
    server = Server([run_dir / "export", "--gallery", gallery], tmp / "server.log")
    yield server, run_dir / "export", root, gallery
    server.stop()
