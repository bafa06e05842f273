"""The benchmark command runs and writes a complete JSON report (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys

import mxnet as mx
import pytest
from conftest import ROOT

from siamese.models.branches import get_branch
from siamese.models.flops import forward_flops


def test_flops_of_convnet_by_hand():
    b = get_branch("convnet", 128)
    b.initialize()
    b(mx.nd.zeros((1, 1, 32, 32)))
    f = forward_flops(b, (1, 32, 32))
    # 2 x Cin x Cout x 9 x H x W per conv (3x3, padding 1; pools halve 32 -> 16 -> 8).
    conv = 2 * 9 * (1 * 32 * 32 * 32 + 32 * 64 * 16 * 16 + 64 * 128 * 8 * 8)
    assert f["conv"] == conv and f["dense"] == 2 * 128 * 128


@pytest.mark.slow
def test_quick_benchmark_writes_valid_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "siamese.bench", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["ceiling_gflops"] > 0 and r["quick"] is True
    modes = {(s["size"], s["forward_mode"], s["hybridized"]) for s in r["training_step"]}
    assert {(32, "concat", True), (32, "twice", True), (105, "concat", True),
            (105, "twice", True), (32, "concat", False)} <= modes
    for s in r["training_step"]:
        p = s["pairs_per_s"]
        assert 0 < p["min"] <= p["median"] <= p["max"]
        before = s["before_pairs_per_s"]
        assert 0 < before["min"] <= before["median"] <= before["max"] and s["fused"] is True
        assert s["ratio"] == pytest.approx(p["median"] / before["median"])
        assert s["gflop_per_pair"] == pytest.approx(0.1170 if s["size"] == 32 else 1.2345,
                                                    abs=1e-3)
        assert s["peak_rss_mb"] > 0
    assert r["fit"]["pairs_per_s"]["median"] > 0 and r["fit"]["ratio_to_step"] > 0
    assert [i["size"] for i in r["inference"]] == [32, 105]
    assert [s["size"] for s in r["serving"]] == [32, 105]
    for s in r["serving"]:
        assert {"float", "fused", "int8", "float, 3 members", "float, tta 1",
                "float, dihedral"} <= set(s["kinds"])
        for k in s["kinds"].values():
            assert 0 < k["batch1"]["p50_ms"] <= k["batch1"]["p99_ms"]
            assert k["batch256_images_per_s"]["median"] > 0
    t = r["triplet_step"]
    assert set(t["images_per_s"]) == {"pairs (N, N)", "cube (N, N, N)"} and t["ratio"] > 0
    assert "ceiling" in proc.stdout and "pairs/s" in proc.stdout
