"""Every Python snippet of README's "Use the model elsewhere" runs against a real export."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow
PLACEHOLDER = "runs/pairs-20261124-140000/export"


def snippets(heading: str) -> list:
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_use_elsewhere_snippets_run_and_agree(trained_run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from siamese.export_cli import main as export_main

    run_dir, _, _ = trained_run
    out = tmp_path / "export"
    assert export_main([str(run_dir), "--onnx", "--out", str(out)]) == 0
    blocks = snippets("Use the model elsewhere")
    assert len(blocks) == 3
    # The snippets read digits; the tiny run was trained on 16x16 grayscale: resize handles it.
    namespace: dict = {}
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        capsys.readouterr()
        for code in blocks:
            assert PLACEHOLDER in code or "export_dir" in code
            exec(compile(code.replace(PLACEHOLDER, str(out)), "README.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
    assert re.match(r"(same|different) \d", capsys.readouterr().out)
    e = namespace["e"]
    assert e.shape == (2, 8)
    np.testing.assert_allclose(namespace["e_module"], e, atol=1e-5)
    np.testing.assert_allclose(namespace["e_onnx"], e, atol=1e-5)
    # The snippet's hand-written preprocessing equals the package's.
    from siamese.images import load_images, to_tensor

    pre = namespace["pre"]
    files = [ROOT / "data/digits/3/0000.png", ROOT / "data/digits/3/0001.png"]
    ours = to_tensor(load_images(files, pre["resize"], 1), pre["mean"], pre["std"])
    np.testing.assert_array_equal(namespace["x"], ours)
