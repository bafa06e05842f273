"""scripts/make_synthetic.py: any count over the classes, deterministic, readable by a run."""

from __future__ import annotations

import importlib.util

import numpy as np
from conftest import ROOT

from siamese.data.sources import scan_source


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_synthetic_set_counts_classes_and_repeats(tmp_path, capsys):
    gen = load_script("make_synthetic")
    for out, fmt in (("a", "png"), ("b", "png"), ("c", "jpg")):
        assert gen.main([str(tmp_path / out), "--count", "14", "--classes", "4", "--size", "16",
                         "--format", fmt, "--jobs", "1"]) == 0
    f = scan_source(str(tmp_path / "a"))
    assert len(f.paths) == 14 and np.bincount(f.labels).tolist() == [4, 4, 3, 3]
    for p in f.paths:  # the same seed draws the same pixels
        assert (tmp_path / "a" / p).read_bytes() == (tmp_path / "b" / p).read_bytes()
    assert len(scan_source(str(tmp_path / "c")).paths) == 14
    # classes differ: smoothed (4x4 block means), two images of a class are closer than
    # images of two classes
    def look(c: int, k: int) -> np.ndarray:
        return gen.draw(c, k, 32, 3, "shapes", 0).reshape(8, 4, 8, 4, 3).mean((1, 3))

    same = np.mean([np.abs(look(c, 0) - look(c, 1)).mean() for c in range(6)])
    other = np.mean([np.abs(look(c, 0) - look(c + 1, 0)).mean() for c in range(6)])
    assert same < other
    assert "wrote 14 images" in capsys.readouterr().out


def test_measure_table_compares_with_memory():
    m = load_script("measure_data")
    row = {"images": 10, "size": 32, "startup_s": 1.0, "rss_mb": 5, "anon_mb": 4,
           "file_mb": 1, "workers_anon_mb": 0}
    rows = [dict(row, variant="memory", run=1, pairs_per_s=100.0),
            dict(row, variant="memory", run=2, pairs_per_s=300.0),
            dict(row, variant="cache", run=1, pairs_per_s=150.0, startup_s=3.0),
            dict(row, variant="cache", run=2, pairs_per_s=150.0, startup_s=0.5)]
    lines = m.table(rows).splitlines()
    assert "| 10 | 32 | cache | 3.0 / 0.5 | 150 (150, 150) | 75% |" in lines[3]
