"""Identification against a gallery: rank enrolled identities for each probe, decide "which one,
or unknown", and choose the open-set threshold for a false-alarm rate. numpy only.

An identity's score for a probe is its best image's score (nearest neighbour over its enrolled
images). Thresholds and scores are in model.json units (a distance or a similarity, as its
`score.higher_is_similar` says); internally similarities (higher = more alike).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np

from ..errors import UserError
from .retrieval import threshold_for_far
from .search import search, similarity, to_score

UNKNOWN = "unknown"


@dataclass
class Ranked:
    """Each probe's ranked identities: ids (P, k) into the gallery's identities (-1 where
    fewer were found) and their similarities (P, k), best first."""

    ids: np.ndarray
    sim: np.ndarray


def candidates_needed(labels: np.ndarray, top_k: int) -> int:
    """Gallery rows to fetch so that the best `top_k` identities are among them: top_k times
    the most images any identity has (each identity takes its best row)."""
    most = int(np.bincount(labels).max()) if len(labels) else 1
    return int(min(len(labels), top_k * most))


def rank_identities(index, vectors: np.ndarray, labels: np.ndarray, spec: dict,
                    probes: np.ndarray, top_k: int) -> Ranked:
    """The `top_k` identities nearest each probe embedding (P, E), best first."""
    top_k = max(1, min(top_k, len(np.unique(labels))))
    sim, rows = search(index, vectors, spec, probes, candidates_needed(labels, top_k))
    ids = np.full((len(probes), top_k), -1, np.int64)
    best = np.full((len(probes), top_k), -np.inf)
    for p in range(len(probes)):
        seen: Dict[int, None] = {}
        for s, r in zip(sim[p], rows[p]):
            if r < 0:
                break
            ident = int(labels[r])
            if ident not in seen:
                ids[p, len(seen)], best[p, len(seen)] = ident, s
                seen[ident] = None
                if len(seen) == top_k:
                    break
    return Ranked(ids, best)


def decisions(ranked: Ranked, identities: Sequence[str], spec: dict, threshold: float) -> list:
    """For each probe: {identity (or "unknown"), score, top [{identity, score}]} at a threshold
    in model.json units: known when its best identity's score is on the similar side of it."""
    t = similarity(spec, np.float64(threshold))
    out = []
    for ids, sim in zip(ranked.ids, ranked.sim):
        top = [{"identity": identities[i], "score": float(to_score(spec, s))}
               for i, s in zip(ids, sim) if i >= 0]
        known = bool(top) and bool(sim[0] >= t)
        out.append({"identity": top[0]["identity"] if known else UNKNOWN,
                    "known": known, "best": top[0] if top else None, "top": top})
    return out


def calibrate_open_set(genuine: Ranked, truth: np.ndarray, impostor: Ranked, spec: dict,
              fars: Sequence[float]) -> Dict[str, dict]:
    """Open-set thresholds for false-alarm rates, chosen on probe images: of enrolled
    identities (genuine, `truth` their identity ids) and of identities not enrolled (impostors).

    Returns {far: {threshold (model.json units), far (reached on these impostors), dir (genuine
    probes whose best identity is theirs and passes), n_genuine, n_impostor}}.
    """
    if len(truth) == 0 or len(impostor.sim) == 0:
        raise UserError("calibrate: needs probe images of enrolled identities AND of identities "
                        f"not in the gallery (got {len(truth)} and {len(impostor.sim)})")
    imp = impostor.sim[:, 0]
    out = {}
    for far in fars:
        t = threshold_for_far(imp, far)
        hit = (genuine.ids[:, 0] == truth) & (genuine.sim[:, 0] >= t)
        out[str(far)] = {"threshold": float(to_score(spec, np.float64(t))),
                         "far": float((imp >= t).mean()), "dir": float(hit.mean()),
                         "n_genuine": int(len(truth)), "n_impostor": int(len(imp))}
    return out


def calibration_entry(calibration: Dict[str, dict], far: float, where: str) -> dict:
    """The stored calibration for a false-alarm rate (threshold, the probes it was chosen on,
    ...); UserError listing the calibrated rates."""
    for key, c in (calibration or {}).items():
        if abs(float(key) - far) <= 1e-12 * max(1.0, far):
            return c
    have = ", ".join(sorted(calibration or {})) or "none"
    raise UserError(f"--far {far:g}: {where} has no threshold for it (calibrated: {have}); run "
                    f"python -m siamese.gallery calibrate {where} --probes DIR --far {far:g}")


def calibration_threshold(calibration: Dict[str, dict], far: float, where: str) -> float:
    """The stored threshold for a false-alarm rate (model.json units)."""
    return float(calibration_entry(calibration, far, where)["threshold"])


def split_probes(probe_identities: List[str], enrolled: List[str]) -> np.ndarray:
    """For each probe's identity name: its id in the gallery, or -1 when not enrolled."""
    index = {name: i for i, name in enumerate(enrolled)}
    return np.asarray([index.get(n, -1) for n in probe_identities], np.int64)
