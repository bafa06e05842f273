"""Branch networks (a registry) and SiameseNet, which runs both images through one branch.

No loss and no file I/O here. A branch maps images (B, C, H, W) to embeddings (B, E).
"""

from __future__ import annotations

from typing import Callable, Dict

from mxnet.gluon import HybridBlock, nn

from .errors import UserError


def l2_normalize(F, x):
    """x / ||x|| per row, (B, E) -> (B, E). Plain operators: MXNet's L2Normalization in
    instance mode has no ONNX conversion."""
    return F.broadcast_div(x, F.sqrt(F.sum(F.square(x), axis=1, keepdims=True) + 1e-12))


class ConvNet(HybridBlock):
    """Conv3x3(32)-BN-ReLU-MaxPool2, Conv3x3(64)-BN-ReLU-MaxPool2, Conv3x3(128)-BN-ReLU,
    mean over H and W, Dense(embedding_size), optional L2 normalisation.

    Args:
        embedding_size: output length E.
        normalize: divide each embedding by its L2 norm (embeddings on the unit sphere).
        widths: channels of the three convolutions.
    """

    def __init__(self, embedding_size: int, normalize: bool = True, widths=(32, 64, 128),
                 **kwargs):
        super().__init__(**kwargs)
        self.normalize = normalize
        with self.name_scope():
            self.features = nn.HybridSequential()
            for k, width in enumerate(widths):
                self.features.add(nn.Conv2D(width, 3, padding=1, use_bias=False),
                                  nn.BatchNorm(), nn.Activation("relu"))
                if k < len(widths) - 1:
                    self.features.add(nn.MaxPool2D(2))
            self.embed = nn.Dense(embedding_size)

    def hybrid_forward(self, F, x):
        x = self.features(x)  # (B, 128, H/4, W/4)
        # Mean over H and W, not GlobalAvgPool2D: the pooling backward falls back to slow
        # reference kernels on large maps (MXNET_NOTES). Same maths.
        x = F.mean(x, axis=(2, 3))  # (B, 128)
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


BRANCHES: Dict[str, Callable[..., HybridBlock]] = {"convnet": ConvNet, "mlp": MLP}


def get_branch(name: str, embedding_size: int, normalize: bool = True,
               **kwargs) -> HybridBlock:
    """Build a registered branch, or `gluoncv:<zoo name>` from the GluonCV model zoo.

    Raises:
        UserError: an unknown name; the message lists the valid ones.
    """
    if name.startswith("gluoncv:"):
        from .zoo import ZooBranch

        return ZooBranch(name[len("gluoncv:"):], embedding_size, normalize=normalize, **kwargs)
    if name not in BRANCHES:
        raise UserError(f"model.branch: unknown branch {name!r} "
                        f"(valid: {', '.join(BRANCHES)}, gluoncv:<zoo name>)")
    return BRANCHES[name](embedding_size, normalize=normalize, **kwargs)


def _twice(F, branch, *xs):
    """One call of the branch per input (twice for pairs, three times for triplets)."""
    return tuple(branch(x) for x in xs)


def _concat(F, branch, *xs):
    """One call on all inputs stacked along the batch axis, split back: (nB, ...) -> n x (B, E)."""
    if len(xs) == 1:
        return (branch(xs[0]),)
    both = F.concat(*xs, dim=0)  # (nB, C, H, W): every side of every example
    return tuple(F.split(branch(both), num_outputs=len(xs), axis=0))  # (B, E) each


FORWARD_MODES = {"twice": _twice, "concat": _concat}


class SiameseNet(HybridBlock):
    kind = "branch"

    """Runs both images of each pair through one shared branch and returns both embeddings
    (or the three of a triplet, or one batch's: as many outputs as inputs).

    The two sides share parameters because the same block is called, never by copying. In
    `concat` mode BatchNorm in training normalises over all 2B images; in `twice` mode over
    each side's B images (equal in inference).

    Args:
        branch: the one branch, (B, C, H, W) -> (B, E).
        forward_mode: "twice" (call the branch per side) or "concat" (one batch of 2B, split).
    """

    def __init__(self, branch: HybridBlock, forward_mode: str = "concat", **kwargs):
        super().__init__(**kwargs)
        if forward_mode not in FORWARD_MODES:
            raise UserError(f"model.forward_mode: unknown {forward_mode!r} "
                            f"(valid: {', '.join(FORWARD_MODES)})")
        self._forward = FORWARD_MODES[forward_mode]
        self.forward_mode = forward_mode
        self.branch = branch  # registered as the one child: its parameters are the model's

    def hybrid_forward(self, F, x, *more):
        """x1, x2[, x3]: (B, C, H, W) each -> a tuple of as many (B, E) embeddings."""
        return self._forward(F, self.branch, x, *more)


class PseudoSiameseNet(HybridBlock):
    """Two branches built from one registry entry: `left` embeds the left images, `right` the
    right ones. They share exactly the parameters `siamese.sharing` made common (the same
    Parameter objects), nothing else.

    Args:
        left, right: the two branches, (B, C, H, W) -> (B, E).
    """

    kind = "two_branches"

    def __init__(self, left: HybridBlock, right: HybridBlock, **kwargs):
        super().__init__(**kwargs)
        self.left = left
        self.right = right

    def hybrid_forward(self, F, x1, x2):
        """x1, x2: (B, C, H, W) -> (left(x1), right(x2)), each (B, E)."""
        return self.left(x1), self.right(x2)


class TwoChannelNet(HybridBlock):
    """Zagoruyko and Komodakis (2015), 2-channel: the two images stacked on the channel axis
    go through one network (a registry branch with 2C input channels), then ReLU and
    Dense(1): a logit per pair, higher = more similar (sigmoid = probability of "same").

    Args:
        trunk: a branch network built for 2C input channels, (B, 2C, H, W) -> (B, E).
    """

    kind = "pair_scorer"

    def __init__(self, trunk: HybridBlock, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.trunk = trunk
            self.head = nn.Dense(1)

    def hybrid_forward(self, F, x1, x2):
        """x1, x2: (B, C, H, W) -> logits (B,)."""
        x = F.concat(x1, x2, dim=1)  # (B, 2C, H, W)
        return F.reshape(self.head(F.relu(self.trunk(x))), (-1,))


def build_model(cfg) -> HybridBlock:
    """The configured network; `cfg` is the `model` config section.

    siamese: SiameseNet over one branch; pseudo_siamese: PseudoSiameseNet of two branches that
    share `model.share`; two_channel: TwoChannelNet over one branch (not normalised).
    """
    if cfg.architecture == "pseudo_siamese":
        from .sharing import build_pseudo_siamese

        def make(prefix: str, params=None) -> HybridBlock:
            return get_branch(cfg.branch, cfg.embedding_size, cfg.normalize, prefix=prefix,
                              params=params)

        left, right, _ = build_pseudo_siamese(make, cfg.share)
        return PseudoSiameseNet(left, right)
    if cfg.architecture == "two_channel":
        return TwoChannelNet(get_branch(cfg.branch, cfg.embedding_size, normalize=False))
    branch = get_branch(cfg.branch, cfg.embedding_size, cfg.normalize)
    return SiameseNet(branch, cfg.forward_mode)


def as_tuple(out) -> tuple:
    """A network's outputs as a tuple (a single NDArray or Symbol becomes a 1-tuple)."""
    return tuple(out) if isinstance(out, (list, tuple)) else (out,)


def branches(net: HybridBlock) -> list:
    """The registry-built networks inside a model: [branch], [left, right] or [trunk]."""
    kind = getattr(net, "kind", "branch")
    if kind == "branch":
        return [net.branch]
    if kind == "two_branches":
        return [net.left, net.right]
    return [net.trunk]
