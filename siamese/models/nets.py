"""The networks of the architectures (siamese.models.architectures): SiameseNet (one branch for
both sides), PseudoSiameseNet (a left and a right branch), TwoChannelNet (both images as
channels of one network that scores the pair), and the two-channel export's Probability."""

from __future__ import annotations

from mxnet.gluon import HybridBlock, nn

from ..errors import UserError


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
    """Runs both images of each pair through one shared branch and returns both embeddings
    (or the three of a triplet, or one batch's: as many outputs as inputs).

    The two sides share parameters because the same block is called, never by copying. In
    `concat` mode BatchNorm in training normalises over all 2B images; in `twice` mode over
    each side's B images (equal in inference).

    Args:
        branch: the one branch, (B, C, H, W) -> (B, E).
        forward_mode: "twice" (call the branch per side) or "concat" (one batch of 2B, split).
    """

    architecture = "siamese"

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

    architecture = "pseudo_siamese"

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

    architecture = "two_channel"

    def __init__(self, trunk: HybridBlock, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.trunk = trunk
            self.head = nn.Dense(1)

    def hybrid_forward(self, F, x1, x2):
        """x1, x2: (B, C, H, W) -> logits (B,)."""
        x = F.concat(x1, x2, dim=1)  # (B, 2C, H, W)
        return F.reshape(self.head(F.relu(self.trunk(x))), (-1,))


class Probability(HybridBlock):
    """A two-channel network's logit as a probability: what its export and scorer compute."""

    def __init__(self, net, **kwargs):
        super().__init__(**kwargs)
        self.net = net

    def hybrid_forward(self, F, left, right):
        return F.sigmoid(self.net(left, right))


def as_tuple(out) -> tuple:
    """A network's outputs as a tuple (a single NDArray or Symbol becomes a 1-tuple)."""
    return tuple(out) if isinstance(out, (list, tuple)) else (out,)
