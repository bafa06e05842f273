"""The architectures: how two images are compared. Each is one class in ARCHITECTURES that knows
its network, its registry-built branches, the roles it exports (branch; left and right;
scorer), how each side of a pair is embedded or the pair scored, and its sharing map. Nothing
outside this module switches on an architecture's name: add a fourth one with one class here.

- siamese: SiameseNet runs both images through one branch (called twice, or on one batch of
  2B split in two: `model.forward_mode`); sharing comes from calling the same block.
- pseudo_siamese: PseudoSiameseNet, a left and a right branch sharing only `model.share`.
- two_channel: TwoChannelNet, both images as channels of one network that scores the pair.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Tuple

import mxnet as mx
from mxnet.gluon import HybridBlock

from ..config import CONVNET_OPTIONS, ModelConfig
from ..errors import UserError
from ..formats.bundle import file_key
from .branches import Members, get_branch
from .nets import (  # noqa: F401  (re-exported: the architectures' networks)
    FORWARD_MODES,
    Probability,
    PseudoSiameseNet,
    SiameseNet,
    TwoChannelNet,
    as_tuple,
)
from .sharing import build_pseudo_siamese


def branch_options(cfg) -> dict:
    """Keyword arguments of the branch from the `model` section: the convnet's options
    (model.widths, model.stem_stride, model.pool) that differ from their defaults."""
    defaults = ModelConfig()
    return {key: tuple(value) if isinstance(value, list) else value
            for key in CONVNET_OPTIONS
            if (value := getattr(cfg, key)) != getattr(defaults, key)}


def _same(x, v):
    return [x]


class Architecture:
    """One way of comparing two images.

    Attributes:
        name: `model.architecture`.
        kind: the export kind written to model.json (`branch`, `two_branches`, `pair_scorer`).
        roles: the exported networks, in order; each becomes `<role>-symbol.json` + params.
        inputs: the input names of every exported network.
        embeds: True when images are embedded and pairs scored from the embeddings; False for
            a pair scorer (each pair runs through the network).
        shares_sides: both sides go through the same network (each image embedded once).
        what: one line for model.json saying how to use the export.
    """

    name = ""
    kind = ""
    optimizable = False  # the serving exports (fused, int8) rewrite a single branch
    averagable = False  # export --tta wraps its one embedding branch (siamese.export.tta)
    roles: Tuple[str, ...] = ()
    inputs: Tuple[str, ...] = ("data",)
    embeds = True
    shares_sides = False
    what = ""

    def build(self, cfg) -> HybridBlock:
        """The network for the `model` config section."""
        raise NotImplementedError

    def branches(self, net) -> list:
        """The registry-built networks inside `net` (pretrained weights and freezing apply)."""
        raise NotImplementedError

    def blocks(self, net) -> dict:
        """{role: callable} scoring the trained `net` as its export would."""
        raise NotImplementedError

    def export_blocks(self, net) -> List[Tuple[str, HybridBlock, Callable]]:
        """(role, block, make inputs from (left images, right-view images)) per exported net."""
        raise NotImplementedError

    def sharing_uses(self, net) -> dict:
        """{use: {structural name: Parameter}} for the sharing map."""
        raise NotImplementedError

    def side_role(self, side: str) -> str:
        """The role that embeds images shown on `side` ("left" or "right")."""
        return self.roles[0]

    def loss_name(self, name: str) -> str:
        """The loss registry entry that trains this architecture with `loss.name`."""
        return name

    def file_keys(self) -> List[str]:
        """The keys model.json's `files` must hold."""
        single = len(self.roles) == 1
        return [file_key(r, w, single) for r in self.roles for w in ("symbol", "params")]


class Siamese(Architecture):
    name, kind, roles, shares_sides = "siamese", "branch", ("branch",), True
    optimizable = True  # one branch embeds every image: fused and int8 serving exports
    averagable = True  # ... and test-time averaging inside that branch (export --tta)
    what = "one branch for both images (siamese): embed each image, then score the two embeddings"

    def build(self, cfg) -> HybridBlock:
        def make(**kwargs) -> HybridBlock:
            return get_branch(cfg.branch, cfg.embedding_size, cfg.normalize,
                              **branch_options(cfg), **kwargs)

        branch = Members(make, cfg.members) if cfg.members > 1 else make()
        return SiameseNet(branch, cfg.forward_mode)

    def branches(self, net) -> list:
        return list(net.branch.parts) if isinstance(net.branch, Members) else [net.branch]

    def blocks(self, net) -> dict:
        return {"branch": net.branch}

    def export_blocks(self, net) -> list:
        return [("branch", net.branch, _same)]

    def sharing_uses(self, net) -> dict:
        p = net.branch._collect_params_with_prefix()
        return {"left": p, "right": p}


class PseudoSiamese(Architecture):
    name, kind, roles = "pseudo_siamese", "two_branches", ("left", "right")
    what = ("two branches (pseudo-siamese): embed the left image with left-*, the right image "
            "with right-*, then score the two embeddings")

    def build(self, cfg) -> HybridBlock:
        def make(prefix: str, params=None) -> HybridBlock:
            return get_branch(cfg.branch, cfg.embedding_size, cfg.normalize, prefix=prefix,
                              params=params, **branch_options(cfg))

        left, right, _ = build_pseudo_siamese(make, cfg.share)
        return PseudoSiameseNet(left, right)

    def branches(self, net) -> list:
        return [net.left, net.right]

    def blocks(self, net) -> dict:
        return {"left": net.left, "right": net.right}

    def export_blocks(self, net) -> list:
        return [("left", net.left, _same), ("right", net.right, lambda x, v: [v])]

    def sharing_uses(self, net) -> dict:
        return {"left": net.left._collect_params_with_prefix(),
                "right": net.right._collect_params_with_prefix()}

    def side_role(self, side: str) -> str:
        return side


class TwoChannel(Architecture):
    name, kind, roles, inputs, embeds = "two_channel", "pair_scorer", ("scorer",), \
        ("left", "right"), False
    what = ("a pair scorer (two-channel): inputs left and right, output the probability that "
            "they show the same thing")

    def build(self, cfg) -> HybridBlock:
        return TwoChannelNet(get_branch(cfg.branch, cfg.embedding_size, normalize=False,
                                        **branch_options(cfg)))

    def branches(self, net) -> list:
        return [net.trunk]

    def blocks(self, net) -> dict:
        return {"scorer": lambda a, b: mx.nd.sigmoid(net(a, b))}

    def export_blocks(self, net) -> list:
        return [("scorer", Probability(net), lambda x, v: [x, v[::-1]])]

    def sharing_uses(self, net) -> dict:
        return {"pair": net._collect_params_with_prefix()}

    def loss_name(self, name: str) -> str:
        # The network outputs its own logit: `logistic` is cross-entropy on it, no head.
        return "pair_score" if name == "logistic" else name


ARCHITECTURES: Dict[str, Architecture] = {a.name: a for a in (Siamese(), PseudoSiamese(),
                                                               TwoChannel())}
BY_KIND: Dict[str, Architecture] = {a.kind: a for a in ARCHITECTURES.values()}


def get_architecture(name: str) -> Architecture:
    """The registered architecture `name`; UserError listing the valid names."""
    if name not in ARCHITECTURES:
        raise UserError(f"model.architecture: unknown {name!r} "
                        f"(valid: {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[name]


def architecture_of(net) -> Architecture:
    """The architecture of a built network."""
    return ARCHITECTURES[net.architecture]


def by_kind(kind: str, where: str = "model.json") -> Architecture:
    """The architecture of an export kind (model.json `kind`); UserError naming `where`."""
    if kind not in BY_KIND:
        raise UserError(f"{where}: unknown model kind {kind!r} (valid: {', '.join(BY_KIND)})")
    return BY_KIND[kind]


def build_model(cfg) -> HybridBlock:
    """The configured network; `cfg` is the `model` config section."""
    return get_architecture(cfg.architecture).build(cfg)
