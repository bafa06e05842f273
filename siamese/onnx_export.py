"""ONNX export of the exported branch (mx.onnx, opset 13) and an onnxruntime runner.

Needs the optional extra: `pip install -e '.[onnx]'` (onnx<1.15, which mx.onnx needs for
`onnx.mapping`, and onnxruntime).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import UserError

log = logging.getLogger(__name__)

ONNX_FILE = "branch.onnx"
OPSET = 13  # mx2onnx writes ReduceMean with an `axes` attribute, valid up to opset 17
EXTRA_HINT = "pip install -e '.[onnx]'  (onnx==1.14.1 and onnxruntime)"


def require_onnx():
    """Import onnx and onnxruntime, or fail with a message naming the extra."""
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise UserError(f"--onnx needs the onnx extra ({e.name} is missing): {EXTRA_HINT}") \
            from None
    if tuple(int(p) for p in onnx.__version__.split(".")[:2]) >= (1, 15):
        raise UserError(f"--onnx: mx.onnx needs onnx below 1.15, found {onnx.__version__}: "
                        f"{EXTRA_HINT}")
    return onnx, onnxruntime


@contextlib.contextmanager
def _opset(onnx, version: int):
    """mx.onnx asks onnx for its newest opset and checks against it; pin both to `version`."""
    import onnx.checker
    import onnx.defs

    saved = onnx.defs.onnx_opset_version, dict(onnx.checker.DEFAULT_CONTEXT.opset_imports)
    onnx.defs.onnx_opset_version = lambda: version
    onnx.checker.DEFAULT_CONTEXT.opset_imports = {"": version}
    try:
        yield
    finally:
        onnx.defs.onnx_opset_version = saved[0]
        onnx.checker.DEFAULT_CONTEXT.opset_imports = saved[1]


def export_onnx(symbol: Path, params: Path, chw: Sequence[int], out: Path) -> None:
    """Convert an exported symbol + params to ONNX with a dynamic batch axis.

    Weights are removed from the graph inputs (mx.onnx lists them there, which makes
    onnxruntime warn and skip constant folding); the only input is `data` (N, C, H, W).
    """
    onnx, _ = require_onnx()
    import mxnet as mx

    c, h, w = (int(v) for v in chw)
    with _opset(onnx, OPSET), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mx.onnx.export_model(str(symbol), str(params), in_shapes=[(1, c, h, w)],
                             in_types=[np.float32], onnx_file_path=str(out), dynamic=True,
                             dynamic_input_shapes=[(None, c, h, w)])
    model = onnx.load(str(out))
    weights = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))


def onnx_embed(path: Path, x: np.ndarray) -> np.ndarray:
    """Run an ONNX branch with onnxruntime on float32 (N, C, H, W); returns (N, E)."""
    _, ort = require_onnx()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]
