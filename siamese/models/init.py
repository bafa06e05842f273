"""Initializers of the network's weights (`model.init`), checked by siamese.config.rules."""

from __future__ import annotations

import mxnet as mx

from ..config import parse_init


def make_init(text: str) -> mx.init.Initializer:
    """The `model.init` initializer. `gluon` is MXNet's own default, Uniform(0.07); `pytorch`
    is PyTorch's default for conv and linear weights, kaiming_uniform(a=sqrt(5)), which is
    uniform in +-1/sqrt(fan_in): Xavier(uniform, factor in, magnitude 1)."""
    name, args = parse_init(text)  # names, arguments and values checked there (no RNG use)
    if name == "gluon":
        return mx.init.Uniform(0.07)
    if name == "pytorch":
        return mx.init.Xavier(rnd_type="uniform", factor_type="in", magnitude=1.0)
    return {"xavier": mx.init.Xavier, "msra": mx.init.MSRAPrelu, "uniform": mx.init.Uniform,
            "normal": mx.init.Normal, "orthogonal": mx.init.Orthogonal}[name](**args)
