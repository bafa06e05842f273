"""Open an export directory to score with: its networks as SymbolBlocks, each run once on zeros
to prove it loads, and a Comparator over them with the export's preprocessing and score."""

from __future__ import annotations

from pathlib import Path

import mxnet as mx

from ..errors import UserError
from ..formats.bundle import load_symbol, read_meta
from ..models.architectures import by_kind
from .comparator import Comparator
from .scores import SCORERS


def open_blocks(export_dir: Path, ctx: mx.Context = mx.cpu()) -> tuple:
    """(Architecture, {role: SymbolBlock}, model.json) of an export directory, each network run
    once on zeros to prove it loads; damaged files are UserErrors naming the directory."""
    export_dir = Path(export_dir)
    meta = read_meta(export_dir)
    arch = by_kind(meta["kind"], str(export_dir / "model.json"))
    if arch.embeds and meta["score"]["name"] not in SCORERS:  # a pair scorer scores itself
        raise UserError(f"{export_dir / 'model.json'}: score.name: unknown "
                        f"{meta['score']['name']!r} (valid: {', '.join(SCORERS)})")
    for key in arch.file_keys():
        if key not in meta["files"]:
            raise UserError(f"{export_dir / 'model.json'}: files.{key} missing (a "
                            f"{meta['kind']} export needs it)")
    c, h, w = meta["input"]["shape"][1:]
    want = meta.get("embedding_size") if arch.embeds else 1
    if want is None:  # found by fuzzing: a KeyError
        raise UserError(f"{export_dir / 'model.json'}: embedding_size missing (a "
                        f"{meta['kind']} export embeds images)")
    blocks = {}
    try:
        for role in arch.roles:
            block = load_symbol(export_dir, role, list(arch.inputs), ctx)
            out = block(*[mx.nd.zeros((1, c, h, w), ctx=ctx) for _ in arch.inputs]).asnumpy()
            blocks[role] = block
            if out.reshape(1, -1).shape[-1] != want:
                raise UserError(f"{export_dir}: the {role} network gives "
                                f"{out.reshape(1, -1).shape[-1]} values, model.json says "
                                f"{'one score' if want == 1 else f'embedding_size {want}'}")
    except (mx.base.MXNetError, ValueError, AssertionError, AttributeError, KeyError,
            TypeError, IndexError) as e:  # Attribute/Key/Type/IndexError: edited symbols
        # (found by fuzzing) fail inside Gluon's import, not only in MXNet
        last = str(e).strip().splitlines()[-1][:160] if str(e).strip() else type(e).__name__
        raise UserError(f"{export_dir}: the exported symbol or parameters do not load ({last})") \
            from None
    return arch, blocks, meta


def open_comparator(export_dir: Path, batch_size: int, ctx: mx.Context = mx.cpu()) -> tuple:
    """(Comparator, model.json) of any export directory: the scoring path of eval.py and
    predict, from the export alone."""
    arch, blocks, meta = open_blocks(export_dir, ctx)
    pre = meta["preprocess"]
    return Comparator(arch, blocks, meta["score"], pre["mean"], pre["std"], batch_size, ctx,
                      pre.get("right_view", "none")), meta


def load_branch(export_dir: Path, ctx: mx.Context = mx.cpu()):
    """The exported siamese branch as a SymbolBlock (one input `data`)."""
    return load_symbol(Path(export_dir), "branch", ["data"], ctx)
