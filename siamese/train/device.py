"""Turn the `device` config value into MXNet contexts, failing clearly when a GPU is missing."""

from __future__ import annotations

from typing import List

import mxnet as mx

from ..errors import UserError

CUDA_HINT = ("install a CUDA build of MXNet in place of `mxnet` (e.g. `pip uninstall mxnet "
             "&& pip install mxnet-cu112==1.9.1`, matching your CUDA version; README: Training "
             "on GPUs)")


def num_gpus() -> int:
    """GPUs MXNet can use: 0 on a CPU-only build or a machine without a GPU."""
    try:
        return mx.context.num_gpus()
    except mx.base.MXNetError:
        return 0


def _indices(spec: str, text: str) -> List[int]:
    try:
        ids = [int(t) for t in text.split(",")]
    except ValueError:
        raise UserError(f"device: expected indices like gpu:0,1 or cpu:0,1, got {spec!r}") from None
    if len(set(ids)) != len(ids) or min(ids) < 0:
        raise UserError(f"device: indices must be distinct and >= 0, got {spec!r}")
    return ids


def parse_device(spec: str) -> List[mx.Context]:
    """Contexts for `auto` (every GPU, else the CPU), `cpu`, `gpu`, `gpu:0,1` or `cpu:0,1`.

    Raises:
        UserError: a GPU is asked for and MXNet sees none, or an index beyond those it sees.
    """
    kind, _, rest = spec.strip().lower().partition(":")
    if kind == "auto" and not rest:
        n = num_gpus()
        return [mx.gpu(i) for i in range(n)] if n else [mx.cpu(0)]
    if kind == "cpu":
        return [mx.cpu(i) for i in (_indices(spec, rest) if rest else [0])]
    if kind == "gpu":
        n = num_gpus()
        ids = _indices(spec, rest) if rest else list(range(n))
        if n == 0:
            raise UserError(f"device: {spec!r} asks for a GPU but MXNet sees none; {CUDA_HINT}")
        missing = [i for i in ids if i >= n]
        if missing:
            raise UserError(f"device: {spec!r}: MXNet sees {n} GPU(s) (0..{n - 1}), "
                            f"no gpu:{missing[0]}")
        return [mx.gpu(i) for i in ids]
    raise UserError(f"device: expected auto, cpu, gpu, gpu:0,1 or cpu:0,1, got {spec!r}")
