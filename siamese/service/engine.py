"""The model side of the service: one export opened once, its networks callable on batches of
any size.

MXNet: each network is loaded once per bucket size (1, 2, 4, ... up to the largest batch) and
hybridized with static memory, so a batch of n images runs padded to the smallest bucket that
holds it and no call ever re-plans the graph (a single static graph of the largest size would
make every batch-1 request pay for the largest batch). onnxruntime: the export's `<role>.onnx`
files (`python -m siamese.export RUN_DIR --onnx`), whose batch axis is dynamic: no padding.

Every method here runs on the inference thread (siamese.service.batcher): MXNet's Python side
is not thread-safe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Sequence

import mxnet as mx
import numpy as np

from ..config import EVAL_BATCH_SIZE as ENROLL_BATCH
from ..data.views import get_view
from ..errors import UserError
from ..formats.bundle import file_key, fingerprint, load_symbol
from ..formats.preprocess import CHANNELS, to_tensor
from ..scoring.bundles import open_blocks
from ..scoring.comparator import Comparator
from ..scoring.scores import decide, score_pairs

RUNTIMES = ("mxnet", "onnxruntime")


def buckets(max_batch: int) -> List[int]:
    """Static batch sizes: powers of two below `max_batch`, and `max_batch` itself."""
    out, b = [], 1
    while b < max_batch:
        out.append(b)
        b *= 2
    return out + [max_batch]


def _mxnet_runner(export_dir: Path, role: str, inputs: Sequence[str], sizes: List[int]):
    """run(arrays) for one MXNet network: padded to the smallest bucket, one graph per bucket."""
    nets = {}
    for b in sizes:
        block = load_symbol(export_dir, role, list(inputs))
        block.hybridize(static_alloc=True, static_shape=True)
        nets[b] = block

    def run(arrays: List[np.ndarray]) -> np.ndarray:
        n = len(arrays[0])
        b = next(s for s in sizes if s >= n)
        padded = [np.concatenate([a, np.repeat(a[-1:], b - n, 0)]) if b > n else a
                  for a in arrays]
        return nets[b](*[mx.nd.array(a) for a in padded]).asnumpy()[:n]

    return run


def _onnx_runner(export_dir: Path, meta: dict, role: str, single: bool):
    """run(arrays) for one network through onnxruntime, and a callable on NDArrays (for the
    Comparator that enrols gallery images)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("--runtime onnxruntime needs the onnx extra: pip install -e "
                        "'.[onnx]'") from None
    name = (meta.get("files") or {}).get(file_key(role, "onnx", single))
    if not name:
        raise UserError(f"{export_dir}: no {role}.onnx in this export (export it with python -m "
                        f"siamese.export RUN_DIR --onnx)")
    session = ort.InferenceSession(str(export_dir / name), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(arrays: List[np.ndarray]) -> np.ndarray:
        return session.run(None, dict(zip(names, arrays)))[0]

    return run, lambda *xs: mx.nd.array(run([x.asnumpy() for x in xs]))


class Engine:
    """An export ready to serve: preprocessing, networks by role, the score spec, the
    fingerprint galleries are checked against.

    Args:
        export_dir: any export the project writes (float, fused, int8; ONNX files with
            runtime "onnxruntime").
        runtime: "mxnet" or "onnxruntime".
        max_batch: the largest batch a network runs (images).
    """

    def __init__(self, export_dir: Path, runtime: str = "mxnet", max_batch: int = 32):
        if runtime not in RUNTIMES:
            raise UserError(f"--runtime: unknown {runtime!r} (valid: {', '.join(RUNTIMES)})")
        export_dir = Path(export_dir)
        arch, loaded, meta = open_blocks(export_dir)  # proves every network loads and runs
        self.export_dir, self.arch, self.meta, self.runtime = export_dir, arch, meta, runtime
        self.spec = meta["score"]
        pre = meta["preprocess"]
        self.size, self.channels = pre["resize"], CHANNELS[pre["color"]]
        self.mean, self.std = pre["mean"], pre["std"]
        self.right_view = pre.get("right_view", "none")
        self.view = get_view(self.right_view)
        self.max_batch = max_batch
        self.fingerprint = fingerprint(export_dir, meta)
        self.runs: Dict[str, Callable] = {}
        blocks = {}
        for role in arch.roles:
            if runtime == "mxnet":
                self.runs[role] = _mxnet_runner(export_dir, role, arch.inputs,
                                                buckets(max_batch))
                blocks[role] = loaded[role]
            else:
                self.runs[role], blocks[role] = _onnx_runner(export_dir, meta, role,
                                                             len(arch.roles) == 1)
        # enrolment embeds as `siamese.gallery add` does (the blocks open_blocks loaded, in
        # batches of config.EVAL_BATCH_SIZE), so both write the same gallery
        self.comparator = Comparator(arch, blocks, self.spec, self.mean, self.std, ENROLL_BATCH,
                                     mx.cpu(), self.right_view)

    @property
    def embeds(self) -> bool:
        return self.arch.embeds

    @property
    def export_id(self) -> str:
        """What names this export in responses: its fingerprint's first 16 hex digits."""
        return self.fingerprint[:16]

    def tensor(self, images: np.ndarray, side: str) -> np.ndarray:
        """uint8 images (n, H, W, C) -> float32 network inputs (n, C, H, W) for `side`."""
        if side == "right":
            images = self.view(images)
        return to_tensor(images, self.mean, self.std)

    def role(self, side: str) -> str:
        """The network that embeds images shown on `side` (the scorer for pair scorers)."""
        return self.arch.side_role(side)

    def run(self, role: str, arrays: List[np.ndarray]) -> np.ndarray:
        """Outputs of network `role` on float32 inputs, in chunks of at most max_batch."""
        out = [self.runs[role]([a[s:s + self.max_batch] for a in arrays])
               for s in range(0, len(arrays[0]), self.max_batch)]
        return np.concatenate(out)

    def score_pairs(self, e1: np.ndarray, e2: np.ndarray) -> np.ndarray:
        """Scores (n,) of embedding rows e1[k], e2[k] under the export's score."""
        return score_pairs(self.spec, e1, e2)

    def same(self, score: float) -> bool:
        """The export's decision at its threshold."""
        return bool(decide(self.spec, np.array([score]), self.spec["threshold"])[0])

    def warm_up(self) -> None:
        """Run every network at every bucket size once (the first calls plan the graphs)."""
        c, (h, w) = self.channels, self.size
        for role in self.arch.roles:
            for b in buckets(self.max_batch):
                self.run(role, [np.zeros((b, c, h, w), np.float32)] * len(self.arch.inputs))
