"""The export bundle: a folder a deployed model is read from, with no training code.

    <role>-symbol.json   a hybridized network graph (roles: branch; left and right; scorer)
    <role>-0000.params   its parameters (global names: read with SymbolBlock.imports only)
    model.json           what the export is (architecture, kind), how to preprocess an image
                         (siamese.formats.preprocess), how to score a pair and the threshold,
                         and which files hold which role (`files`)

Which roles an architecture exports is siamese.models.architectures; writing and verifying is
siamese.export; here is the format itself: names, reading model.json, loading one network.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import List

import mxnet as mx
from mxnet import gluon

from ..errors import UserError
from .ndfile import check_params_file
from .preprocess import COLOR_MODES, SYMMETRIES

SYMBOL, PARAMS, META = "branch-symbol.json", "branch-0000.params", "model.json"
FORMAT = "siamese-export/1"


def file_key(role: str, what: str, single: bool) -> str:
    """The `files` key of a role's file in model.json: `symbol` / `params` for the one network
    of a single-network export, `<role>_symbol` / `<role>_params` otherwise."""
    return what if single else f"{role}_{what}"


# model.json `files` of a single-branch export (float, fused or int8): every kind names them
BRANCH_FILES = {file_key("branch", "symbol", True): SYMBOL,
                file_key("branch", "params", True): PARAMS}


MAX_SIDE = 8192  # pixels: an input side beyond this is a damaged model.json, not a model


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < float("inf")


def _side(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_SIDE


def _shift(v) -> bool:
    """model.json `tta`: 0 (a plain branch; absent in older exports) or a shift in pixels."""
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SIDE


def _meta_ok(meta: dict) -> bool:
    """Every field a reader of model.json indexes into, with its type (found by fuzzing: a
    bool, null or text in place of a list or number failed deep inside the readers, a NaN
    threshold silently judged every pair different, a huge input shape allocated gigabytes)."""
    shape, pre, score = meta["input"]["shape"], meta["preprocess"], meta["score"]
    c = shape[1]
    ok = (isinstance(shape, list) and len(shape) == 4 and shape[0] in (-1, 1)
          and c in COLOR_MODES and _side(shape[2]) and _side(shape[3])
          and pre["color"] == COLOR_MODES[c] and pre["resize"] == shape[2:]
          and isinstance(pre["mean"], list) and isinstance(pre["std"], list)
          and len(pre["mean"]) == len(pre["std"]) == c
          and all(_num(v) for v in pre["mean"]) and all(_num(v) and v != 0 for v in pre["std"])
          and _num(pre.get("scale", 1 / 255)) and _num(score["threshold"])
          and isinstance(score["higher_is_similar"], bool) and isinstance(score["name"], str)
          and (meta.get("embedding_size") is None or _side(meta["embedding_size"]))
          and isinstance(pre.get("right_view", "none"), str) and _shift(meta.get("tta", 0))
          and isinstance(meta.get("kind", "branch"), str)
          and isinstance(meta.get("symmetries", "none"), str)
          and meta.get("symmetries", "none") in SYMMETRIES)
    if ok and score["name"] == "logistic":
        ok = isinstance(score["weights"], list) and len(score["weights"]) == \
            meta["embedding_size"] and all(_num(v) for v in score["weights"]) and \
            _num(score["bias"])
    files, need = meta.get("files") or {}, meta.get("requires") or []
    return ok and isinstance(files, dict) and all(
        isinstance(k, str) and isinstance(v, str) and v and Path(v).name == v and v != ".."
        for k, v in files.items()) and isinstance(need, list) and \
        all(isinstance(f, str) for f in need)


def _check_meta(meta: dict, path: Path) -> None:
    """model.json must say how to preprocess and how to score, consistently; the files it
    names are plain names inside the export folder."""
    try:
        ok = _meta_ok(meta)
    except (KeyError, TypeError, IndexError, ValueError):
        ok = False
    if not ok:
        raise UserError(f"{path}: incomplete or inconsistent export metadata (input, "
                        f"preprocess and score must agree)")


def read_meta(export_dir: Path) -> dict:
    """model.json of an export directory, checked, with the files it names present.

    An export written before pseudo-siamese and two-channel models has no `kind` and no
    `files`: it is the one-branch layout (`branch`, branch-symbol.json, branch-0000.params).
    """
    export_dir = Path(export_dir)
    path = export_dir / META
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as e:
        raise UserError(f"{path}: cannot read export metadata ({e})") from None
    if not isinstance(meta, dict):
        raise UserError(f"{path}: export metadata is not a JSON object")
    _check_meta(meta, path)
    meta.setdefault("kind", "branch")
    if meta["kind"] == "branch":
        meta["files"] = dict(meta.get("files") or {}, symbol=SYMBOL, params=PARAMS)
    _check_requires(meta, path)
    files = meta.get("files") or {}
    for name in files.values():
        if not (export_dir / name).is_file():
            raise UserError(f"{export_dir / name}: missing from the export")
    return meta


def fingerprint(export_dir: Path, meta: dict) -> str:
    """A hex digest of what makes an export's embeddings: its network files (bytes) and how it
    preprocesses an image. Re-exporting with another threshold keeps it; other weights change it."""
    h = hashlib.sha256()
    for key in sorted(meta["files"]):
        h.update(key.encode())
        h.update(hashlib.sha256((Path(export_dir) / meta["files"][key]).read_bytes()).digest())
    h.update(json.dumps([meta["input"], meta["preprocess"]], sort_keys=True).encode())
    return h.hexdigest()


def _check_requires(meta: dict, path: Path) -> None:
    """An optimized export (fused, int8) names the MXNet features its operators need."""
    need = meta.get("requires") or []
    features = mx.runtime.Features()
    missing = [f for f in need if not (f in features and features.is_enabled(f))]
    if missing:
        raise UserError(f"{path}: this {meta.get('optimized', {}).get('kind', '')} export "
                        f"needs an MXNet build with {', '.join(missing)} (mx.runtime.Features)")


def load_symbol(export_dir: Path, role: str, inputs: List[str],
                ctx: mx.Context = mx.cpu()) -> gluon.SymbolBlock:
    """The exported network `role` (branch, left, right or scorer) as a SymbolBlock; its
    parameter file is checked first (siamese.formats.ndfile), so a damaged one is refused
    instead of hanging MXNet."""
    check_params_file(export_dir / f"{role}-0000.params")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gluon.SymbolBlock.imports(str(export_dir / f"{role}-symbol.json"), inputs,
                                         str(export_dir / f"{role}-0000.params"), ctx=ctx)


def save_symbol(block: gluon.HybridBlock, inputs: List[str], prefix: Path) -> None:
    """Write `prefix-symbol.json` and `prefix-0000.params` of `block` called on symbols with
    these input names (HybridBlock.export names a single input `data`, several `data0`...)."""
    out = block(*[mx.sym.var(n) for n in inputs])
    out.save(f"{prefix}-symbol.json")
    by_name = {p.name: p for p in block.collect_params().values()}
    arrays = {f"arg:{n}": by_name[n]._reduce() for n in out.list_arguments() if n in by_name}
    arrays.update({f"aux:{n}": by_name[n]._reduce() for n in out.list_auxiliary_states()})
    mx.nd.save(f"{prefix}-0000.params", arrays)
