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

import mxnet as mx
import numpy as np

from ..errors import UserError

log = logging.getLogger(__name__)

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


def export_onnx(symbol: Path, params: Path, shapes: Sequence, out: Path) -> None:
    """Convert an exported symbol + params to ONNX with a dynamic batch axis.

    Weights are removed from the graph inputs (mx.onnx lists them there, which makes
    onnxruntime warn and skip constant folding); the inputs are the symbol's (`data`, or
    `left` and `right`), each (N, C, H, W) with the (C, H, W) of `shapes`.
    """
    onnx, _ = require_onnx()

    one = len(shapes) and not isinstance(shapes[0], (list, tuple))
    chws = [tuple(int(v) for v in chw) for chw in ([shapes] if one else shapes)]
    with _opset(onnx, OPSET), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mx.onnx.export_model(str(symbol), str(params), in_shapes=[(1,) + c for c in chws],
                             in_types=[np.float32] * len(chws), onnx_file_path=str(out),
                             dynamic=True, dynamic_input_shapes=[(None,) + c for c in chws])
    model = onnx.load(str(out))
    weights = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    used = {name for node in model.graph.node for name in node.input}
    for unused in [i for i in model.graph.initializer if i.name not in used]:
        model.graph.initializer.remove(unused)  # mx2onnx leaves Split's axis (export --tta)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))


def onnx_run(path: Path, inputs: dict) -> np.ndarray:
    """Run an ONNX network on named float32 inputs ({"data": x} or {"left", "right"})."""
    _, ort = require_onnx()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    if set(names) != set(inputs):
        raise UserError(f"{path}: ONNX inputs {names}, expected {sorted(inputs)}")
    return session.run(None, {n: np.asarray(inputs[n], np.float32) for n in names})[0]
