"""Turn the `device` config value into MXNet contexts, failing clearly when a GPU is missing or
is one MXNet 1.9.1 cannot drive.

MXNet 1.9.1's GPU wheels (`mxnet-cu1xx`) carry machine code for compute capabilities 5.0 to 8.6
and no PTX (seen in mxnet-cu117's libmxnet.so with cuobjdump), and link CUDA 11 and cuDNN 8 from
the system: they cannot run kernels on Hopper (H100/H200, 9.0) or newer GPUs.
"""

from __future__ import annotations

import ctypes
import logging
import shutil
import subprocess
from typing import Dict, List, Tuple

import mxnet as mx

from ..errors import UserError

log = logging.getLogger(__name__)
SUPPORTED = ((5, 0), (8, 6))  # compute capabilities MXNet 1.9.1's GPU wheels hold code for

CUDA_HINT = ("install a CUDA build of MXNet in place of `mxnet` (e.g. `pip uninstall mxnet "
             "&& pip install mxnet-cu112==1.9.1`, matching your CUDA version, on a GPU of compute "
             "capability 5.0-8.6; docs/scale.md: Training on GPUs)")


def num_gpus() -> int:
    """GPUs MXNet can use: 0 on a CPU-only build or a machine without a GPU."""
    try:
        return mx.context.num_gpus()
    except mx.base.MXNetError:
        return 0


def compute_capabilities() -> Dict[int, Tuple[int, int]]:
    """{GPU index: (major, minor)} from the CUDA runtime, else nvidia-smi; {} if neither
    answers (then nothing is refused on this ground)."""
    for name in ("libcudart.so", "libcudart.so.11.0", "libcudart.so.12"):
        try:
            cudart = ctypes.CDLL(name)
        except OSError:
            continue
        count, out = ctypes.c_int(0), {}
        if cudart.cudaGetDeviceCount(ctypes.byref(count)) != 0:
            break
        for i in range(count.value):
            major, minor = ctypes.c_int(0), ctypes.c_int(0)
            cudart.cudaDeviceGetAttribute(ctypes.byref(major), 75, i)  # ComputeCapabilityMajor
            cudart.cudaDeviceGetAttribute(ctypes.byref(minor), 76, i)  # ComputeCapabilityMinor
            out[i] = (major.value, minor.value)
        return out
    if shutil.which("nvidia-smi"):
        try:
            text = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,"
                                   "noheader"], capture_output=True, text=True, timeout=10).stdout
            return {i: tuple(int(v) for v in line.strip().split(".")[:2])
                    for i, line in enumerate(text.splitlines()) if line.strip()}
        except (OSError, ValueError, subprocess.SubprocessError):
            pass
    return {}


def unsupported(ids: List[int], caps: Dict[int, Tuple[int, int]]) -> Dict[int, Tuple[int, int]]:
    """The GPUs among `ids` whose compute capability MXNet 1.9.1 has no code for."""
    return {i: caps[i] for i in ids if i in caps and not SUPPORTED[0] <= caps[i] <= SUPPORTED[1]}


def refuse_unsupported(spec: str, ids: List[int], caps: Dict[int, Tuple[int, int]]) -> None:
    """UserError explaining why MXNet cannot drive one of these GPUs, and what to do."""
    bad = unsupported(ids, caps)
    if bad:
        i, (major, minor) = next(iter(bad.items()))
        raise UserError(f"device: {spec!r}: gpu:{i} has compute capability {major}.{minor}; "
                        f"MXNet 1.9.1's GPU builds hold code for 5.0-8.6 only (no PTX), so "
                        f"they cannot run on it (Hopper H100/H200 is 9.0). Use device: cpu "
                        f"with the CPU build, or build MXNet from source for your GPU "
                        f"(docs/scale.md: Which GPUs)")


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
        caps = compute_capabilities() if n else {}
        usable = [i for i in range(n) if i not in unsupported(list(range(n)), caps)]
        if n and len(usable) < n:
            log.warning("device auto: MXNet 1.9.1 cannot run on %d of %d GPU(s) (compute "
                        "capability above 8.6); using %s", n - len(usable), n,
                        usable or "the CPU")
        return [mx.gpu(i) for i in usable] if usable else [mx.cpu(0)]
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
        refuse_unsupported(spec, ids, compute_capabilities())
        return [mx.gpu(i) for i in ids]
    raise UserError(f"device: expected auto, cpu, gpu, gpu:0,1 or cpu:0,1, got {spec!r}")
