"""Which parameters are shared: pseudo-siamese branches that share chosen layers, and the
sharing map that shows, by object identity, what is one parameter and what is per side.

Sharing is Gluon's own: the right branch is built with a ParameterDict whose `shared` entries
are the left branch's Parameter objects, so its layers receive those very objects when they ask
for their weights. Nothing is copied; a copy (equal values, another object) is reported as
per-side, because that is what it is: it will drift apart after one step.
"""

from __future__ import annotations

import fnmatch
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from mxnet import gluon

from ..errors import UserError


def matches(name: str, pattern: str) -> bool:
    """fnmatch-style, or a prefix on dot boundaries: `embed` matches `embed.weight`,
    `features.8` matches `features.8.weight` but not `features.80.weight`."""
    return fnmatch.fnmatchcase(name, pattern) or name == pattern or \
        name.startswith(pattern.rstrip(".") + ".")


def select(names: List[str], patterns: List[str], key: str = "model.share") -> List[str]:
    """The names matched by any pattern, in `names` order; a pattern matching nothing is a
    UserError naming `key`, the pattern and some valid names."""
    for pattern in patterns:
        if not any(matches(n, pattern) for n in names):
            raise UserError(f"{key}: {pattern!r} matches no parameter (names look like "
                            f"{', '.join(names[:4])}, ...)")
    return [n for n in names if any(matches(n, p) for p in patterns)]


def build_pseudo_siamese(make_branch: Callable[..., gluon.HybridBlock],
                         share: List[str]) -> Tuple[gluon.HybridBlock, gluon.HybridBlock,
                                                    List[str]]:
    """Two branches from one factory that share exactly the parameters matching `share`.

    Args:
        make_branch: builds one branch; called as make_branch(prefix) and
            make_branch(prefix, params=ParameterDict) (Gluon Block keywords).
        share: structural-name patterns (see `matches`), e.g. ["features.8", "embed"].
    Returns:
        (left, right, shared structural names). `left` has prefix "left_", `right` "right_".
    """
    left = make_branch("left_")
    left_params = left._collect_params_with_prefix()
    names = list(left_params)
    shared = select(names, list(share))
    # A throwaway right branch tells the full names its layers will ask for.
    probe = make_branch("right_")._collect_params_with_prefix()
    common = gluon.ParameterDict("right_")
    for n in shared:
        common._params[probe[n].name] = left_params[n]
    right = make_branch("right_", params=common)
    _key_by_name(right)
    got = right._collect_params_with_prefix()
    for n in shared:  # Gluon handed the right branch the left's objects: check, never assume
        assert got[n] is left_params[n], n
    return left, right, shared


def _key_by_name(block: gluon.Block) -> None:
    """Key every ParameterDict of `block` by its parameters' own names.

    A layer given a shared parameter files it under the name it asked for (`right_..._weight`)
    while the object is named `left_..._weight`; hybridized graphs look parameters up by their
    own name, so the entry is re-keyed. The object is the same.
    """
    stack = [block]
    while stack:
        b = stack.pop()
        entries = b.params._params
        rekeyed = [(p.name, p) for p in entries.values()]
        entries.clear()
        entries.update(rekeyed)
        stack.extend(b._children.values())


def sharing_map(uses: Mapping[str, Mapping[str, gluon.Parameter]],
                notes: Optional[Mapping[str, Mapping[str, str]]] = None) -> dict:
    """Every distinct Parameter object of a model and where it is used.

    Args:
        uses: ordered {use: {structural name: Parameter}}, e.g. {"left": ..., "right": ...}.
            The same object under several uses (or names) is one parameter.
        notes: optional {use: {structural name: note}}, e.g. "transposed" for a tied decoder.
    Returns:
        {"uses": [...], "rows": [{"name", "shape", "size", "used_by": {use: name or
        "name (note)"}, "status": "shared" | "<use> only"}], "totals": {"parameters",
        "elements", "shared_parameters", "elements_without_sharing"}}; JSON-serialisable.
    """
    notes = notes or {}
    rows: Dict[int, dict] = {}
    without = 0
    for use, params in uses.items():
        for name, p in params.items():
            size = _size(p.shape)
            without += size
            row = rows.setdefault(id(p), {"name": p.name, "shape": list(p.shape), "size": size,
                                          "used_by": {}})
            note = notes.get(use, {}).get(name)
            label = f"{name} ({note})" if note else name
            prev = row["used_by"].get(use)
            row["used_by"][use] = f"{prev}, {label}" if prev else label
    out = []
    for row in rows.values():
        row["status"] = "shared" if len(row["used_by"]) > 1 else \
            f"{next(iter(row['used_by']))} only"
        out.append(row)
    shared = [r for r in out if r["status"] == "shared"]
    return {"uses": list(uses), "rows": out, "totals": {
        "parameters": len(out), "elements": sum(r["size"] for r in out),
        "shared_parameters": len(shared), "shared_elements": sum(r["size"] for r in shared),
        "elements_without_sharing": without}}


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def format_sharing_map(report: dict) -> str:
    """The sharing map as an aligned text table with totals."""
    uses = report["uses"]
    head = ["parameter", "shape", "elements", *uses, "status"]
    lines = [head]
    for r in report["rows"]:
        lines.append([r["name"], "x".join(str(d) for d in r["shape"]), str(r["size"]),
                      *[r["used_by"].get(u, "-") for u in uses], r["status"]])
    widths = [max(len(row[k]) for row in lines) for k in range(len(head))]
    text = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines]
    t = report["totals"]
    text.append(f"{t['parameters']} parameters ({t['shared_parameters']} shared), "
                f"{t['elements']} elements; {t['elements_without_sharing']} without sharing")
    return "\n".join(text)


def with_decoder(uses: dict, decoder=None) -> Tuple[dict, dict]:
    """(uses, notes) for sharing_map: a model's uses (Architecture.sharing_uses) and, with a
    decoder, the decoder's parameters noted as it notes them ("transposed" when tied)."""
    uses, notes = dict(uses), {}
    if decoder is not None:
        uses["decoder"] = decoder._collect_params_with_prefix()
        notes["decoder"] = getattr(decoder, "notes", {})
    return uses, notes
