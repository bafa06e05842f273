"""The gallery file: enrolled identities embedded by one export, for identification.

One `.npz` file (written atomically, read with allow_pickle=False):
    embeddings  float32 (N, E)  one row per enrolled image
    labels      int64 (N,)      index into identities
    identities  str (M,)        identity names (the class folder names)
    paths       str (N,)        the enrolled image files
    digests     str (N,)        SHA-1 of each file's bytes (the same file is never enrolled twice)
    index       uint8 (bytes,)  optional: a serialized FAISS index of the embeddings (large
                                galleries), so a query does not build it again
    header      str ()          JSON: format, the export (directory and fingerprint), the side
                                embedded, embedding size, open-set calibrations, and a checksum of
                                the arrays above, so a damaged file is refused, never searched.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..errors import UserError
from .atomic import write_bytes

FORMAT = "siamese-gallery/1"
ARRAYS = ("embeddings", "labels", "identities", "paths", "digests")


@dataclass
class Gallery:
    """Enrolled images of an export. `header` holds format, export {dir, fingerprint}, side,
    embedding_size and calibration {far: {...}}; `identities[labels[i]]` names row i."""

    embeddings: np.ndarray
    labels: np.ndarray
    identities: List[str]
    paths: List[str]
    digests: List[str]
    header: Dict[str, object] = field(default_factory=dict)
    index: Optional[np.ndarray] = None  # uint8 bytes of a FAISS index; header["index"] says which
    source: str = ""  # the file it was read from, for messages

    def arrays(self) -> Dict[str, np.ndarray]:
        extra = {} if self.index is None else {"index": np.asarray(self.index, np.uint8)}
        return {**extra,"embeddings": np.asarray(self.embeddings, np.float32).reshape(
                    len(self.paths), -1),
                "labels": np.asarray(self.labels, np.int64),
                "identities": np.asarray(self.identities, dtype=str),
                "paths": np.asarray(self.paths, dtype=str),
                "digests": np.asarray(self.digests, dtype=str)}

    def counts(self) -> Dict[str, int]:
        """Enrolled images per identity."""
        n = np.bincount(np.asarray(self.labels, np.int64), minlength=len(self.identities))
        return {name: int(c) for name, c in zip(self.identities, n)}


def checksum(arrays: Dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in ARRAYS + (("index",) if "index" in arrays else ()):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def write_gallery(path: Path, gallery: Gallery) -> None:
    """Write the gallery atomically (a crash leaves the old file or the new one)."""
    arrays = gallery.arrays()
    header = dict(gallery.header, format=FORMAT, checksum=checksum(arrays),
                  images=len(gallery.paths), n_identities=len(gallery.identities))
    buf = io.BytesIO()
    np.savez(buf, header=np.asarray(json.dumps(header, sort_keys=True)), **arrays)
    write_bytes(Path(path), buf.getvalue(), sync=True, what="write the gallery",
                keeps="the gallery is unchanged")


def read_gallery(path: Path) -> Gallery:
    """The gallery at `path`; UserError naming it when it is missing, not a gallery, or
    damaged (its arrays no longer match the checksum written with them)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such gallery file (make one with python -m siamese.gallery "
                        f"build EXPORT_DIR IMAGE_DIR --out {path})")
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
            arrays = {k: z[k] for k in ARRAYS + (("index",) if "index" in z.files else ())}
    except Exception as e:  # noqa: BLE001  any failure of numpy's reader on these bytes (found
        # by fuzzing: tokenize.TokenError, TypeError from a damaged array header) is the file's
        raise UserError(f"{path}: damaged or not a gallery file ({type(e).__name__}: "
                        f"{str(e)[:80]})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise UserError(f"{path}: not a {FORMAT} file (format {header.get('format')!r})"
                        if isinstance(header, dict) else f"{path}: not a gallery file")
    if checksum(arrays) != header.get("checksum"):
        raise UserError(f"{path}: damaged gallery (its arrays do not match their checksum); "
                        f"build it again")
    why = _inconsistent(header, arrays)
    if why:
        raise UserError(f"{path}: damaged gallery ({why}); build it again")
    return Gallery(arrays["embeddings"], arrays["labels"], [str(s) for s in arrays["identities"]],
                   [str(s) for s in arrays["paths"]], [str(s) for s in arrays["digests"]],
                   header, arrays.get("index"), str(path))


def _inconsistent(header: dict, arrays: Dict[str, np.ndarray]) -> str:
    """What does not fit in a gallery whose checksum matches (a file written by other code, or
    edited and re-summed): found by fuzzing, such files failed deep in the search with
    IndexError, ValueError or FAISS errors, or ranked identities that do not exist."""
    emb, labels = arrays["embeddings"], arrays["labels"]
    n = len(arrays["paths"])
    if emb.dtype.kind != "f" or emb.ndim != 2 or emb.shape[0] != n or not np.isfinite(emb).all():
        return f"embeddings {emb.dtype} {emb.shape} for {n} images"
    if header.get("embedding_size", emb.shape[1]) != emb.shape[1]:
        return f"embeddings of size {emb.shape[1]}, header says {header.get('embedding_size')}"
    if labels.dtype.kind not in "iu" or labels.shape != (n,) or n and not (
            0 <= labels.min() and labels.max() < len(arrays["identities"])):
        return "labels do not index its identities"
    if any(arrays[k].dtype.kind != "U" or arrays[k].ndim != 1 for k in ARRAYS[2:]) or \
            len(arrays["digests"]) != n:
        return "identities, paths or digests are not lists of names"
    stored, export = header.get("index"), header.get("export")
    if ("index" in arrays) != isinstance(stored, dict) or isinstance(stored, dict) and (
            stored.get("kind") not in ("flat", "ivf", "hnsw") or arrays["index"].dtype != np.uint8
            or not isinstance(stored.get("score"), str)):
        return "its stored index and header disagree"
    if not isinstance(export, dict) or not all(isinstance(export.get(k), str)
                                               for k in ("dir", "fingerprint")):
        return "header.export names no export directory and fingerprint"
    if not isinstance(header.get("calibration", {}), dict) or \
            not isinstance(header.get("side", "left"), str):
        return "header.calibration or header.side"
    return ""
