"""Count the floating-point work of a branch from its layers (symbolic shape inference).

Convolutions: 2 x Cin/groups x Cout x kh x kw x Hout x Wout per image; dense layers:
2 x in x out. Other operators (BatchNorm, ReLU, pooling, the mean, normalisation) are
memory-bound and left out, as is customary. A training pair costs 2 images x 3 x forward
(the backward pass is counted as twice the forward).
"""

from __future__ import annotations

import json
from typing import Dict

import mxnet as mx


def forward_flops(branch: mx.gluon.HybridBlock, chw: tuple) -> Dict[str, float]:
    """{"conv": ..., "dense": ..., "total": ...} FLOPs of one image through `branch`."""
    data = mx.sym.var("data")
    out = branch(data)
    internals = out.get_internals()
    _, shapes, _ = internals.infer_shape(data=(1,) + tuple(chw))
    shape_of = dict(zip(internals.list_outputs(), shapes))
    graph = json.loads(out.tojson())
    nodes = graph["nodes"]
    counts = {"conv": 0.0, "dense": 0.0}
    for node in nodes:
        op, attrs = node["op"], node.get("attrs", {})
        if op not in ("Convolution", "FullyConnected"):
            continue
        in_shape = shape_of[_output_name(nodes, node["inputs"][0])]
        out_shape = shape_of[f"{node['name']}_output"]
        if op == "Convolution":
            k = 1
            for v in json.loads(attrs["kernel"].replace("(", "[").replace(")", "]")):
                k *= int(v)
            groups = int(attrs.get("num_group", 1))
            spatial = 1
            for v in out_shape[2:]:
                spatial *= v
            counts["conv"] += 2.0 * in_shape[1] / groups * out_shape[1] * k * spatial
        else:
            fan_in = 1
            for v in in_shape[1:]:
                fan_in *= v
            counts["dense"] += 2.0 * fan_in * out_shape[-1]
    counts["total"] = counts["conv"] + counts["dense"]
    return counts


def _output_name(nodes: list, ref: list) -> str:
    node = nodes[ref[0]]
    if node["op"] == "null":
        return node["name"]
    return f"{node['name']}_output" if ref[1] == 0 else f"{node['name']}_output{ref[1]}"


def training_flops_per_pair(branch: mx.gluon.HybridBlock, chw: tuple) -> float:
    """2 images x (forward + backward = 3 x forward)."""
    return 2 * 3 * forward_flops(branch, chw)["total"]
