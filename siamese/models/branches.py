"""Branch networks and their registry. A branch maps images (B, C, H, W) to embeddings (B, E).

Add a branch: a HybridBlock class taking (embedding_size, normalize, **kwargs), registered in
BRANCHES. `gluoncv:<zoo name>` builds one from the GluonCV model zoo (siamese.models.zoo).
"""

from __future__ import annotations

import math
from typing import Callable, Dict

from mxnet.gluon import HybridBlock, nn

from ..errors import UserError
from .fused import BatchNormReLU, GlobalMean, Identity
from .norm import l2_normalize
from .zoo import PREFIX, ZooBranch


class ConvNet(HybridBlock):
    """Conv3x3(32)-BN-ReLU-MaxPool2, Conv3x3(64)-BN-ReLU-MaxPool2, Conv3x3(128)-BN-ReLU,
    mean over H and W (or, `pool="flatten"`, the whole map), Dense(embedding_size), optional L2
    normalisation.

    BN-ReLU is one layer (BatchNormReLU) followed by an Identity in the place the ReLU layer
    held, so parameter names are those of earlier runs; models.fused switches it, and the mean,
    to the faster fused operators for training on CPUs.

    Args:
        embedding_size: output length E.
        normalize: divide each embedding by its L2 norm (embeddings on the unit sphere).
        widths: channels of the three convolutions.
        stem_stride: stride of the first convolution (2: a 64x64 input costs about what a
            32x32 one does after it).
        pool: "mean" (the mean over H and W: where a stroke or part is on the last map is lost,
            and any input size works) or "flatten" (the Dense layer sees the whole map, C x H x W
            values, so the layout is kept; the input size is then fixed by the first call).
    """

    POOLS = ("mean", "flatten")

    def __init__(self, embedding_size: int, normalize: bool = True, widths=(32, 64, 128),
                 stem_stride: int = 1, pool: str = "mean", **kwargs):
        super().__init__(**kwargs)
        if pool not in self.POOLS:
            raise ValueError(f"pool: {pool!r} is not one of {self.POOLS}")
        self.normalize = normalize
        with self.name_scope():
            self.features = nn.HybridSequential()
            for k, width in enumerate(widths):
                self.features.add(nn.Conv2D(width, 3, strides=stem_stride if k == 0 else 1,
                                            padding=1, use_bias=False),
                                  BatchNormReLU(prefix=f"batchnorm{k}_"), Identity())
                if k < len(widths) - 1:
                    self.features.add(nn.MaxPool2D(2))
            self.pool = GlobalMean() if pool == "mean" else nn.Flatten()
            self.embed = nn.Dense(embedding_size)

    def hybrid_forward(self, F, x):
        x = self.features(x)  # (B, 128, H/4, W/4)
        x = self.pool(x)  # (B, 128), or (B, 128, 1, 1) fused; flatten: (B, 128 x H/4 x W/4)
        x = self.embed(x)  # (B, E)
        return l2_normalize(F, x) if self.normalize else x


class MLP(HybridBlock):
    """Flatten, Dense(256)-ReLU, Dense(embedding_size); no BatchNorm. Small and exact to test.

    Args:
        embedding_size: output length E.
        normalize: L2-normalise the output.
    """

    def __init__(self, embedding_size: int, normalize: bool = True, hidden: int = 256, **kwargs):
        super().__init__(**kwargs)
        self.normalize = normalize
        with self.name_scope():
            self.hidden = nn.Dense(hidden, activation="relu", flatten=True)
            self.embed = nn.Dense(embedding_size)

    def hybrid_forward(self, F, x):
        x = self.embed(self.hidden(x))  # (B, E)
        return l2_normalize(F, x) if self.normalize else x


class Members(HybridBlock):
    """N branches built alike, side by side in one block (`model.members`), each with its own
    parameters and initial values: an ensemble that exports as one branch.

    The embedding of an image is the members' unit embeddings, concatenated and divided by
    sqrt(N): a unit vector of N x E values. Between two of them, the squared euclidean distance
    is the mean of the members' squared distances, and 1 - cosine the mean of theirs, so the
    export's distance scores with the whole ensemble. Each member trains on its own loss
    (siamese.losses.members): N independent models that see the same batches.

    Args:
        make: builds one member; called with prefix="member<k>_".
        members: N, 2 or more.
    """

    def __init__(self, make: Callable[..., HybridBlock], members: int, **kwargs):
        super().__init__(**kwargs)
        self.count = members
        self.parts = []
        with self.name_scope():
            for k in range(members):
                part = make(prefix=f"member{k}_")
                self.register_child(part, f"member{k}")
                self.parts.append(part)

    def hybrid_forward(self, F, x):
        out = F.concat(*[part(x) for part in self.parts], dim=1)  # (B, N x E)
        return out / math.sqrt(self.count)


BRANCHES: Dict[str, Callable[..., HybridBlock]] = {"convnet": ConvNet, "mlp": MLP}


def get_branch(name: str, embedding_size: int, normalize: bool = True,
               **kwargs) -> HybridBlock:
    """Build a registered branch, or `gluoncv:<zoo name>` from the GluonCV model zoo.

    Raises:
        UserError: an unknown name; the message lists the valid ones.
    """
    if name.startswith(PREFIX):
        return ZooBranch(name[len(PREFIX):], embedding_size, normalize=normalize, **kwargs)
    if name not in BRANCHES:
        raise UserError(f"model.branch: unknown branch {name!r} "
                        f"(valid: {', '.join(BRANCHES)}, gluoncv:<zoo name>)")
    return BRANCHES[name](embedding_size, normalize=normalize, **kwargs)
