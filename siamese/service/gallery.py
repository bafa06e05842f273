"""The gallery a service identifies against, and enrolling or removing identities through it.

Enrolled uploads are kept as files beside the gallery, `<GALLERY>.enrolled/<identity>/<sha1>
<.suffix>` (the bytes as sent, so their digest is the one `siamese.gallery` computes), and
enrolment is `siamese.gallery add GALLERY <GALLERY>.enrolled` done in-process: the gallery file
written is the one that command writes from the same files (tests/service check it). Removing
is `siamese.gallery remove GALLERY NAME`, then the identity's folder goes. The file is written
atomically (siamese.formats.gallery): a change is fully written or not at all.

Changes run on the inference thread (siamese.service.batcher), one at a time, between batches:
they embed with the same networks, and two changes never interleave.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from pathlib import Path
from typing import List, Optional

import numpy as np

from ..errors import UserError
from ..formats.gallery import read_gallery, write_gallery
from ..identification.enroll import add_to, attach_index, gallery_index, remove_from
from ..identification.ranking import calibration_threshold, decisions, rank_identities
from .inputs import SUFFIX, ClientError

log = logging.getLogger(__name__)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.@+-]{0,127}$")


def check_name(name: str) -> str:
    """An identity name that is safe as a folder name: no path separators, no `..`."""
    if not NAME.match(name) or ".." in name:
        raise ClientError(400, f"identity name {name[:80]!r}: use letters, digits, space and "
                               f"_ . @ + - (at most 128, no path separators, no '..')")
    return name


class GalleryStore:
    """A gallery file opened by a service, checked against the service's export.

    Args:
        path: the gallery file (`python -m siamese.gallery build ...`).
        engine: the service's Engine (siamese.service.engine).
        far: use the threshold calibrated for this false-alarm rate (else the export's).
    """

    def __init__(self, path: Path, engine, far: Optional[float] = None):
        self.path, self.engine = Path(path), engine
        self.gallery = read_gallery(self.path)
        made_by = self.gallery.header["export"]
        if made_by["fingerprint"] != engine.fingerprint:
            raise UserError(f"{path}: made with export {made_by['dir']} (fingerprint "
                            f"{made_by['fingerprint'][:12]}), refused by {engine.export_dir} "
                            f"(fingerprint {engine.fingerprint[:12]}): other weights or "
                            f"preprocessing; build the gallery again")
        if not engine.embeds:
            raise UserError(f"{engine.export_dir}: a pair scorer has no embeddings to search")
        self.store = self.path.with_name(self.path.name + ".enrolled")
        self._tidy()
        spec = engine.spec
        if far is None:
            self.threshold, self.source = float(spec["threshold"]), "the export's model.json"
        else:
            self.threshold = calibration_threshold(self.gallery.header.get("calibration"), far,
                                                   str(self.path))
            self.source = f"calibrated for FAR {far:g} (kept when the gallery changes)"
        self._state = (self.gallery, gallery_index(self.gallery, spec))

    def _tidy(self) -> None:
        """Remove uploads a change killed mid-way left behind (files the gallery does not
        hold): the next enrolment would otherwise add them."""
        if not self.store.is_dir():
            return
        known = set(self.gallery.digests)
        for f in sorted(self.store.glob("*/*")):
            if f.is_file() and hashlib.sha1(f.read_bytes()).hexdigest() not in known:
                log.warning("%s: not in %s (an enrolment that did not finish), removed", f,
                            self.path)
                f.unlink()

    @property
    def probe_side(self) -> str:
        """Probes go through the side opposite the gallery's (the same when one network
        embeds both sides)."""
        side = self.gallery.header["side"]
        if self.engine.comparator.same_embedding:
            return side
        return "right" if side == "left" else "left"

    def identify(self, probes: np.ndarray, top_k: int) -> list:
        """Decisions (siamese.identification.ranking.decisions) of probe embeddings (P, E)."""
        g, index = self._state  # one read: a change swaps both at once
        ranked = rank_identities(index, g.embeddings, g.labels, self.engine.spec, probes, top_k)
        return decisions(ranked, g.identities, self.engine.spec, self.threshold)

    def summary(self) -> dict:
        g = self.gallery
        return {"file": str(self.path), "images": len(g.paths),
                "identities": g.counts(), "threshold": self.threshold,
                "threshold_source": self.source}

    def first_image(self, name: str) -> Path:
        """The first enrolled file of an identity (its thumbnail)."""
        g = self.gallery
        if name not in g.identities:
            raise ClientError(404, f"identity {name[:80]!r} is not enrolled")
        label = g.identities.index(name)
        return Path(g.paths[int(np.flatnonzero(g.labels == label)[0])])

    def enroll(self, name: str, blobs: List[bytes], formats: List[str]) -> dict:
        """Add the uploaded images to identity `name` (a new identity or more images of one);
        runs on the inference thread."""
        folder = self.store / check_name(name)
        written = []
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for data, fmt in zip(blobs, formats):
                f = folder / (hashlib.sha1(data).hexdigest() + SUFFIX.get(fmt, ".png"))
                if not f.exists():
                    f.write_bytes(data)
                    written.append(f)
            e = self.engine
            gallery, added = add_to(self.gallery, e.comparator, e.meta, self.store)
            gallery = attach_index(gallery, e.spec)
            write_gallery(self.path, gallery)
        except BaseException:
            for f in written:
                f.unlink(missing_ok=True)
            raise
        self._swap(gallery)
        log.info("enrolled %d image(s) of %s into %s", added, name, self.path)
        return {"identity": name, "added": added, **self.summary()}

    def remove(self, name: str) -> dict:
        """Drop identity `name` and its enrolled files; runs on the inference thread."""
        check_name(name)
        if name not in self.gallery.identities:
            raise ClientError(404, f"identity {name!r} is not enrolled")
        try:
            gallery = remove_from(self.gallery, [name], self.path)
        except UserError as e:
            raise ClientError(409, str(e)) from None
        write_gallery(self.path, attach_index(gallery, self.engine.spec))
        shutil.rmtree(self.store / name, ignore_errors=True)
        self._swap(gallery)
        log.info("removed %s from %s", name, self.path)
        return {"identity": name, "removed": True, **self.summary()}

    def _swap(self, gallery) -> None:
        self._state = (gallery, gallery_index(gallery, self.engine.spec))
        self.gallery = gallery
