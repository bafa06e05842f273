"""Galleries made with an export: enroll class folders (one folder per identity), add, remove,
and open the very export a gallery was made with (its fingerprint must match)."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import List, Optional, Sequence

import mxnet as mx
import numpy as np

from ..config import EVAL_BATCH_SIZE
from ..data.folder import scan_folder
from ..data.images import decode_all
from ..errors import UserError
from ..formats.bundle import fingerprint
from ..formats.gallery import Gallery
from ..formats.preprocess import CHANNELS
from ..scoring.bundles import open_comparator
from ..scoring.comparator import Comparator
from .search import build_index, choose_kind, restore, serialize

log = logging.getLogger(__name__)

CHUNK = 2048  # images decoded and embedded at a time: memory stays flat for large folders


def file_digest(path: Path) -> str:
    """SHA-1 of a file's bytes: the same file enrolled or probed twice is recognised."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def open_for_gallery(export_dir: Path, ctx: mx.Context = mx.cpu()) -> tuple:
    """(Comparator, model.json, fingerprint) of an export that embeds images."""
    comparator, meta = open_comparator(Path(export_dir), EVAL_BATCH_SIZE, ctx)
    if not comparator.embeds:
        raise UserError(f"{export_dir}: a {meta['kind']} export scores pairs and has no "
                        f"embeddings to enroll; galleries need a siamese or pseudo-siamese export")
    return comparator, meta, fingerprint(export_dir, meta)


def open_gallery_export(gallery: Gallery, where: Path, export_dir: Optional[Path] = None):
    """The export a gallery was made with (or `export_dir`, when it is the same network):
    (Comparator, model.json, export dir). Another export is refused, naming both."""
    made_by = gallery.header["export"]
    export_dir = Path(export_dir or made_by["dir"])
    if not (export_dir / "model.json").is_file():
        raise UserError(f"{where}: its export {export_dir} is gone; give --export DIR (the "
                        f"same network, moved)")
    comparator, meta, fp = open_for_gallery(export_dir)
    if fp != made_by["fingerprint"]:
        raise UserError(f"{where}: made with export {made_by['dir']} (fingerprint "
                        f"{made_by['fingerprint'][:12]}), refused by {export_dir} (fingerprint "
                        f"{fp[:12]}): other weights or preprocessing; build the gallery again")
    return comparator, meta, export_dir


def embed_files(comparator: Comparator, meta: dict, files: Sequence[Path], side: str,
                progress: bool = False) -> tuple:
    """Embeddings (n, E) of the readable files and the indices of those read; unreadable files
    are logged and left out. Decodes and embeds CHUNK files at a time."""
    pre = meta["preprocess"]
    out, kept = [], []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(files), desc="embed", unit="img", disable=None)
    for s in range(0, len(files), CHUNK):
        part = list(files[s:s + CHUNK])
        images, bad = decode_all(part, pre["resize"], CHANNELS[pre["color"]])
        for _, message in bad:
            log.warning("skipped: %s", message)
        bad_ids = {i for i, _ in bad}
        kept += [s + i for i in range(len(part)) if i not in bad_ids]
        if len(images):
            out.append(comparator.embed_side(images, side))
        if bar is not None:
            bar.update(len(part))
    if bar is not None:
        bar.close()
    dim = out[0].shape[1] if out else int(meta["embedding_size"])
    return (np.concatenate(out) if out else np.zeros((0, dim), np.float32)), kept


def _canonical(g: Gallery) -> Gallery:
    """Rows sorted by (identity name, path), identities sorted and only those with images: a
    gallery's content decides its bytes, whatever order it was built in."""
    names = [g.identities[i] for i in g.labels]
    order = sorted(range(len(g.paths)), key=lambda i: (names[i], g.paths[i]))
    identities = sorted(set(names))
    index = {n: i for i, n in enumerate(identities)}
    return Gallery(np.asarray(g.embeddings, np.float32)[order].reshape(len(order), -1),
                   np.asarray([index[names[i]] for i in order], np.int64), identities,
                   [g.paths[i] for i in order], [g.digests[i] for i in order], g.header)


def enroll_folder(comparator: Comparator, meta: dict, root: Path, side: str, skip: Sequence[str]
                  = (), progress: bool = False) -> tuple:
    """(embeddings, identity names, paths, digests) of the class folders under `root`, leaving
    out files whose digest is in `skip` (already enrolled)."""
    folder = scan_folder(root)
    files = [Path(root) / p for p in folder.paths]
    digests = [file_digest(f) for f in files]
    known = set(skip)
    fresh = [i for i, d in enumerate(digests) if d not in known]
    if len(fresh) < len(files):
        log.info("%d image(s) already enrolled, skipped", len(files) - len(fresh))
    emb, kept = embed_files(comparator, meta, [files[i] for i in fresh], side, progress)
    rows = [fresh[k] for k in kept]
    return (emb, [folder.classes[folder.labels[i]] for i in rows], [str(files[i]) for i in rows],
            [digests[i] for i in rows])


def build_gallery(comparator: Comparator, meta: dict, export_dir: Path, root: Path,
                  side: str = "left", progress: bool = False) -> Gallery:
    """A new gallery of the class folders under `root`."""
    emb, names, paths, digests = enroll_folder(comparator, meta, root, side, (), progress)
    if not len(paths):
        raise UserError(f"{root}: no readable images to enroll")
    header = {"export": {"dir": str(Path(export_dir).resolve()),
                         "fingerprint": fingerprint(export_dir, meta)},
              "side": side, "embedding_size": int(emb.shape[1]), "calibration": {},
              "updated": time.strftime("%Y-%m-%dT%H:%M:%S")}
    identities = sorted(set(names))
    index = {n: i for i, n in enumerate(identities)}
    return _canonical(Gallery(emb, np.asarray([index[n] for n in names], np.int64), identities,
                              paths, digests, header))


def add_to(gallery: Gallery, comparator: Comparator, meta: dict, root: Path,
           progress: bool = False) -> tuple:
    """(the gallery with the images of `root` enrolled, images added). Identities already
    enrolled get the new images; calibrations are dropped (the gallery changed)."""
    emb, names, paths, digests = enroll_folder(comparator, meta, root, gallery.header["side"],
                                               gallery.digests, progress)
    old = [gallery.identities[i] for i in gallery.labels]
    merged = Gallery(np.concatenate([gallery.embeddings, emb]), np.arange(len(old) + len(names)),
                     old + names, gallery.paths + paths, gallery.digests + digests,
                     _changed(gallery.header))
    return _canonical(merged), len(paths)


def remove_from(gallery: Gallery, identities: List[str], where: Path) -> Gallery:
    """The gallery without these identities; UserError naming any that is not enrolled."""
    missing = [n for n in identities if n not in gallery.identities]
    if missing:
        raise UserError(f"{where}: not enrolled: {', '.join(missing)} (enrolled: "
                        f"{len(gallery.identities)} identities)")
    drop = {gallery.identities.index(n) for n in identities}
    keep = [i for i, lab in enumerate(gallery.labels) if int(lab) not in drop]
    if not keep:
        raise UserError(f"{where}: removing {', '.join(identities)} would leave it empty")
    names = [gallery.identities[gallery.labels[i]] for i in keep]
    return _canonical(Gallery(np.asarray(gallery.embeddings)[keep], np.arange(len(keep)), names,
                              [gallery.paths[i] for i in keep],
                              [gallery.digests[i] for i in keep], _changed(gallery.header)))


def attach_index(gallery: Gallery, spec: dict) -> Gallery:
    """Store the index `--index auto` would build (an IVF index above 50,000 images) in the
    gallery, so queries do not build it again; small galleries are searched exactly."""
    kind = choose_kind(len(gallery.paths), spec)
    if kind == "exact":
        gallery.index, gallery.header["index"] = None, None
        return gallery
    log.info("building the %s index of %d images (stored in the gallery)", kind,
             len(gallery.paths))
    gallery.index = serialize(build_index(gallery.embeddings, spec, kind))
    gallery.header["index"] = {"kind": kind, "score": spec["name"]}
    return gallery


def gallery_index(gallery: Gallery, spec: dict, kind: str = "auto"):
    """The gallery's stored index when `kind` is auto or its kind, else a new one."""
    stored = gallery.header.get("index") or {}
    if gallery.index is not None and kind in ("auto", stored.get("kind")) and \
            stored.get("score") == spec["name"]:
        index = restore(gallery.index, spec, stored["kind"], gallery.source)
        if len(index) != len(gallery.paths) or index.index.d != gallery.embeddings.shape[1]:
            raise UserError(f"{gallery.source}: its stored {stored['kind']} index holds "
                            f"{len(index)} vectors of size {index.index.d}, the gallery "
                            f"{gallery.embeddings.shape}; build it again")
        return index
    return build_index(gallery.embeddings, spec, kind)


def _changed(header: dict) -> dict:
    if header.get("calibration"):
        log.warning("the gallery changed: its open-set calibration is dropped (calibrate again)")
    return dict(header, calibration={}, updated=time.strftime("%Y-%m-%dT%H:%M:%S"))
