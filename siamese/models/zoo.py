"""GluonCV model-zoo branches (`model.branch: gluoncv:<zoo name>`), and freezing parameters.

The zoo network is built with `classes=embedding_size`, so its classifier becomes the embedding
layer. Grayscale input is repeated to three channels inside the branch (a broadcast against a
(1, 3, 1, 1) zero tensor), so the zoo's first convolution and any RGB weights are used as they
are; colour input passes unchanged.
"""

from __future__ import annotations

from typing import Sequence

from mxnet.gluon import HybridBlock, nn

from ..errors import UserError
from .norm import l2_normalize

PREFIX = "gluoncv:"


class ZooBranch(HybridBlock):
    """A GluonCV classification network whose last layer outputs the embedding.

    Args:
        name: model-zoo name, e.g. resnet18_v1b, mobilenetv2_1.0.
        embedding_size: output length E.
        normalize: L2-normalise the output.
    """

    def __init__(self, name: str, embedding_size: int, normalize: bool = True, **kwargs):
        super().__init__(**kwargs)
        try:
            from gluoncv.model_zoo import get_model, get_model_list
        except ImportError:
            raise UserError("model.branch: gluoncv: branches need GluonCV: "
                            "pip install -e '.[gluoncv]'") from None
        if name not in get_model_list():
            raise UserError(f"model.branch: {PREFIX}{name} is not in the GluonCV model zoo "
                            f"(e.g. resnet18_v1b, resnet50_v1b, mobilenetv2_1.0, mobilenet1.0)")
        self.normalize = normalize
        with self.name_scope():
            self.net = get_model(name, pretrained=False, classes=embedding_size)

    def hybrid_forward(self, F, x):
        # (B, 1 or 3, H, W) -> (B, 3, H, W): grayscale is repeated, colour is unchanged.
        x = F.broadcast_add(x, F.zeros((1, 3, 1, 1)))
        x = self.net(x)  # (B, E)
        return l2_normalize(F, x) if self.normalize else x


def freeze(branch: HybridBlock, prefixes: Sequence[str]) -> int:
    """Stop training parameters whose structural name starts with a prefix; BatchNorm layers
    whose parameters are all frozen use their running statistics in training too.

    Returns:
        The number of parameters frozen.
    Raises:
        UserError: a prefix that matches nothing (the message shows some valid names).
    """
    params = branch._collect_params_with_prefix()
    frozen = 0
    for prefix in prefixes:
        hits = [p for n, p in params.items() if n.startswith(prefix)]
        if not hits:
            raise UserError(f"model.freeze: {prefix!r} matches no parameter (names look like "
                            f"{', '.join(list(params)[:3])})")
        for p in hits:
            p.grad_req = "null"
        frozen += len(hits)
    for block in _blocks(branch):
        if isinstance(block, nn.BatchNorm) and all(
                p.grad_req == "null" for n, p in block.collect_params().items()
                if n.endswith(("gamma", "beta"))):
            block._kwargs["use_global_stats"] = True
    return frozen


def _blocks(block):
    yield block
    for child in block._children.values():
        yield from _blocks(child)
