"""A decoder that mirrors the branch, with tied (the branch's own weights, transposed) or
untied weights, and the autoencoder that reconstructs images through both.

Tied means the same `Parameter` object: the decoder registers the branch's weight Parameters
as its own (Gluon's way of sharing), so one optimizer update moves both uses and the gradient is
the sum of both uses'. A transposed copy (`set_data(w.T)`) would be a second parameter that
starts equal and drifts apart; the sharing map reports it as such.

The mirror of ConvNet: Dense(E <- 128) is undone by a fully connected layer with the
transposed embedding weight; the spatial mean by broadcasting back to the last feature map;
each Conv3x3 by its transposed convolution, which takes the convolution's weight (out, in, 3,
3) as it is, mapping `out` channels back to `in` (see transposed_conv3x3); each max-pooling by
nearest upsampling to the size before it. ReLU between layers, none at the end (the target is
the normalised input tensor), no BatchNorm. The MLP mirror: the two Dense layers transposed.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from mxnet.gluon import HybridBlock

from ..errors import UserError
from .branches import MLP, ConvNet

DECODERS = ("none", "tied", "untied")


def encode(F, branch, x):
    """The branch's embedding before L2 normalisation, (B, C, H, W) -> (B, E)."""
    if isinstance(branch, ConvNet):
        return branch.embed(F.mean(branch.features(x), axis=(2, 3)))
    if isinstance(branch, MLP):
        return branch.embed(branch.hidden(x))
    raise UserError(f"model.decoder: cannot mirror a {type(branch).__name__} branch (only "
                    f"convnet and mlp); set model.decoder: none")


def _convs(branch: ConvNet) -> list:
    from mxnet.gluon import nn

    return [b for b in branch.features if isinstance(b, nn.Conv2D)]


def _sizes(h: int, w: int, pools: int) -> List[Tuple[int, int]]:
    """Feature-map sizes after each max-pooling by 2 (floor), starting with the input's."""
    out = [(h, w)]
    for _ in range(pools):
        h, w = h // 2, w // 2
        out.append((h, w))
    return out


def transposed_conv3x3(F, x, weight, bias, channels: int):
    """The transposed convolution of a 3x3, stride 1, pad 1 convolution with `weight`
    (out, in, 3, 3): maps `out` channels back to `in`.

    Computed as a convolution with the weight's channel axes swapped and its kernel flipped
    (pad 3 - 1 - 1 = 1), which is the same operator as Deconvolution with `weight` as it is.
    MXNet's oneDNN Deconvolution crashed here on a weight also used by a Convolution, so the
    plain Convolution path is used; tests compare it with Deconvolution.
    """
    w = F.flip(F.flip(F.transpose(weight, axes=(1, 0, 2, 3)), axis=2), axis=3)
    if channels >= 8:
        return F.Convolution(x, w, bias, kernel=(3, 3), pad=(1, 1), num_filter=channels)
    # oneDNN is 2.5x slower with fewer than 8 output channels (an image's 1 or 3): add filters
    # of zeros, then keep the real channels. Same values and gradients.
    extra = -(-8 // channels) - 1
    w = F.concat(w, F.repeat(F.zeros_like(w), repeats=extra, axis=0), dim=0)
    b = F.concat(bias, F.repeat(F.zeros_like(bias), repeats=extra, axis=0), dim=0)
    out = F.Convolution(x, w, b, kernel=(3, 3), pad=(1, 1), num_filter=channels * (extra + 1))
    return F.slice_axis(out, axis=1, begin=0, end=channels)


class Decoder(HybridBlock):
    """Maps a pre-normalisation embedding (B, E) back to an image (B, C, H, W).

    Args:
        branch: a built and initialised ConvNet or MLP (shapes known).
        tied: use the branch's weight Parameters (transposed); else own weights of the same
            shapes.
        image_shape: (C, H, W) of the input images.

    Attributes:
        notes: {structural name: "transposed"} for each tied weight (for the sharing map).
    """

    def __init__(self, branch: HybridBlock, tied: bool, image_shape: Tuple[int, int, int],
                 **kwargs):
        super().__init__(**kwargs)
        c, h, w = image_shape
        if isinstance(branch, ConvNet):
            weights = [branch.embed.weight] + [conv.weight for conv in _convs(branch)][::-1]
            self._mlp = False
            self._pools = len(weights) - 2  # a pooling after every convolution but the last
            self._sizes = _sizes(h, w, self._pools)[::-1]  # smallest first
        elif isinstance(branch, MLP):
            weights = [branch.embed.weight, branch.hidden.weight]
            self._mlp = True
            self._shape = (c, h, w)
        else:
            encode(None, branch, None)  # raises the UserError naming model.decoder
        self.notes: Dict[str, str] = {}
        self._names = []
        for k, wp in enumerate(weights):
            name = f"w{k}"
            if tied:
                if wp.shape is None or 0 in wp.shape:
                    raise UserError("model.decoder: the branch's shapes are unknown; run it "
                                    "once before building the decoder")
                self.params._params[wp.name] = wp  # the branch's own Parameter
                setattr(self, name, wp)
                self.notes[name] = "transposed"
            else:
                setattr(self, name, self.params.get(name, shape=wp.shape))
            # Each layer's own bias, sized by what it outputs (the branch layer's input).
            out = wp.shape[1]
            if self._mlp and k == len(weights) - 1:
                out = c * h * w
            setattr(self, f"b{k}", self.params.get(f"b{k}", shape=(out,), init="zeros"))
            self._names.append(name)

    def hybrid_forward(self, F, z, **p):
        """z: (B, E) -> reconstruction (B, C, H, W)."""
        n = len(self._names)
        if self._mlp:
            x = z
            for k in range(n):
                x = F.FullyConnected(x, F.transpose(p[f"w{k}"]), p[f"b{k}"],
                                     num_hidden=self._out(k), flatten=False)
                if k < n - 1:
                    x = F.relu(x)
            return F.reshape(x, (-1,) + self._shape)
        x = F.relu(F.FullyConnected(z, F.transpose(p["w0"]), p["b0"],
                                    num_hidden=self._out(0), flatten=False))  # (B, 128)
        h, w = self._sizes[0]
        x = F.broadcast_to(F.reshape(x, (0, 0, 1, 1)), (0, 0, h, w))  # undo the mean
        for k in range(1, n):
            x = transposed_conv3x3(F, x, p[f"w{k}"], p[f"b{k}"], self._out(k))
            if k < n - 1:
                x = F.relu(x)
                x = self._unpool(F, x, self._sizes[k - 1], self._sizes[k])
        return x

    @staticmethod
    def _unpool(F, x, before, after):
        """Undo a max-pooling by 2: nearest upsampling, then (odd sizes) repeat the last row or
        column so the map has the size it had before pooling. Nearest, not bilinear: MXNet's
        BilinearResize2D backward made training several times slower here."""
        x = F.UpSampling(x, scale=2, sample_type="nearest", num_args=1)
        dh, dw = after[0] - 2 * before[0], after[1] - 2 * before[1]
        if dh or dw:
            x = F.pad(x, mode="edge", pad_width=(0, 0, 0, 0, 0, dh, 0, dw))
        return x

    def _out(self, k: int) -> int:
        return int(getattr(self, f"b{k}").shape[0])


class AutoEncoder(HybridBlock):
    """Reconstructs images through the branch's encoder and a decoder: (B, C, H, W) in and
    out. The branch is the siamese branch itself (not a copy)."""

    def __init__(self, branch: HybridBlock, decoder: Decoder, **kwargs):
        super().__init__(**kwargs)
        self.branch = branch
        self.decoder = decoder

    def hybrid_forward(self, F, x):
        return self.decoder(encode(F, self.branch, x))


def reconstruction_loss(F, recon, target):
    """Mean squared error per image, (B, C, H, W) x 2 -> (B,)."""
    return F.mean(F.square(recon - target), axis=(1, 2, 3))


def build_decoder(branch: HybridBlock, kind: str, image_shape: Tuple[int, int, int]) -> Decoder:
    """A `tied` or `untied` Decoder mirroring a built branch.

    Raises:
        UserError: an unknown kind, or a branch that cannot be mirrored, naming model.decoder.
    """
    if kind not in ("tied", "untied"):
        raise UserError(f"model.decoder: unknown {kind!r} (valid: {', '.join(DECODERS)})")
    return Decoder(branch, kind == "tied", image_shape)


def decoder_uses(branch: HybridBlock, decoder: HybridBlock) -> Dict[str, Tuple[str, str]]:
    """{decoder parameter name: (branch parameter name, "transposed")} for every weight that is
    the branch's own object (identity, never value equality): the tied ones."""
    mine = {id(p): n for n, p in branch._collect_params_with_prefix().items()}
    return {n: (mine[id(p)], "transposed")
            for n, p in decoder._collect_params_with_prefix().items() if id(p) in mine}
