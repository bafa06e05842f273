"""eval.py --retrieval and --open-set: identification figures of an export on class folders.

- Retrieval: every image queries all the others (leave-one-out); see
  siamese.identification.retrieval.
- Open set: a seeded share of the identities is held back; of the others `shots` images each
  are enrolled in a gallery, their other images are genuine probes, and every image of a
  held-back identity is an impostor probe. Reported: rank-1 identification rate, the CMC curve,
  DIR@FAR (the threshold for each rate is read off the impostors, as face recognition
  evaluations report an operating point), and DIR / FAR at the export's own threshold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..data.folder import scan_folder
from ..errors import UserError
from ..formats.pairsets import read_split_classes
from ..formats.rundir import RunDir
from .ranking import rank_identities
from .retrieval import OPEN_SET_FARS, dir_far_curve, open_set_metrics, retrieval_metrics
from .search import build_index, search, similarity, to_score

CMC_RANKS = 20


def select_classes(root: Path, run_dir: Optional[Path], classes: str) -> tuple:
    """(ImageFolder, indices of its images kept, class names kept): "all"; "unseen" (classes
    without a training image in the run); "val" / "test" (its validation or test classes)."""
    folder = scan_folder(root)
    if classes == "all":
        return folder, np.arange(len(folder.paths)), list(folder.classes)
    if run_dir is None:
        raise UserError(f"--classes {classes}: needs a run directory (its pairs/split.csv)")
    split = read_split_classes(RunDir(run_dir).split_file)
    wanted = (set(folder.classes) - split["train"]) if classes == "unseen" else \
        split[classes] - split["train"]
    keep = np.flatnonzero([folder.classes[c] in wanted for c in folder.labels])
    return folder, keep, [c for c in folder.classes if c in wanted]


def _embeddings(model, root: Path, paths, progress: bool) -> tuple:
    """(gallery-side, probe-side) embeddings of image files: one array twice when both sides
    share one network."""
    c = model.comparator
    if not c.embeds:
        raise UserError("--retrieval / --open-set: a two-channel pair scorer has no embeddings")
    images = model.load_files(root, paths, progress)
    left = c.embed_side(images, "left", progress)
    return left, (left if c.same_embedding else c.embed_side(images, "right", progress))


def retrieval_report(model, root: Path, classes: str, progress: bool,
                     index_kind: str = "auto") -> tuple:
    """(report, recall@k curve for the plot): leave-one-out retrieval over the class folders."""
    folder, keep, names = select_classes(root, model.run_dir, classes)
    if len(keep) < 2:
        raise UserError(f"--retrieval: {root} has fewer than 2 images in {classes} classes")
    labels = folder.labels[keep]
    gallery, queries = _embeddings(model, root, [folder.paths[i] for i in keep], progress)
    relevant = np.bincount(labels)[labels] - 1
    k = int(min(len(keep) - 1, max(int(relevant.max()), 8, CMC_RANKS)))
    spec = model.meta["score"]
    _, ids = search(build_index(gallery, spec, index_kind), gallery, spec, queries, k + 1)
    others = np.stack([row[row != q][:k] for q, row in enumerate(ids)])  # the query left out
    found = labels[others]
    report = dict(retrieval_metrics(found, labels, relevant), n_images=int(len(keep)),
                  n_classes=len(names), classes=classes, root=str(root),
                  protocol="leave-one-out: every image queries all the others")
    hits = found == labels[:, None]
    curve = [float(hits[relevant > 0, :r].any(axis=1).mean()) for r in range(1, k + 1)]
    return report, curve[:CMC_RANKS]


def _protocol(labels: np.ndarray, n_classes: int, shots: int, unknown_fraction: float,
              seed: int) -> tuple:
    """(gallery rows, genuine probe rows, impostor rows, enrolled class ids), seeded."""
    rng = np.random.default_rng(seed)
    present = np.unique(labels)
    order = rng.permutation(present)
    n_unknown = int(round(unknown_fraction * len(present)))
    if not 1 <= n_unknown < len(present):
        raise UserError(f"--open-set: {len(present)} identities cannot be split into enrolled "
                        f"and held back with --unknown-fraction {unknown_fraction:g}")
    unknown, enrolled = set(order[:n_unknown].tolist()), order[n_unknown:]
    gallery, genuine = [], []
    for c in enrolled:
        rows = rng.permutation(np.flatnonzero(labels == c))
        gallery += rows[:shots].tolist()
        genuine += rows[shots:].tolist()
    impostor = [i for i in range(len(labels)) if labels[i] in unknown]
    return np.sort(gallery), np.sort(genuine), np.asarray(impostor), np.sort(enrolled)


def open_set_report(model, root: Path, classes: str, shots: int, unknown_fraction: float,
                    seed: int, progress: bool, index_kind: str = "auto") -> tuple:
    """(report, (cmc, (far, dir) curve)) of the gallery/probe protocol (module docstring)."""
    folder, keep, names = select_classes(root, model.run_dir, classes)
    labels = folder.labels[keep]
    g, gen, imp, enrolled = _protocol(labels, len(folder.classes), shots, unknown_fraction, seed)
    if not len(gen):
        raise UserError(f"--open-set --shots {shots}: no enrolled identity has an image left to "
                        f"probe with")
    left, right = _embeddings(model, root, [folder.paths[i] for i in keep], progress)
    spec = model.meta["score"]
    index = build_index(left[g], spec, index_kind)
    ranked = rank_identities(index, left[g], labels[g], spec, right[gen], CMC_RANKS)
    impostor = rank_identities(index, left[g], labels[g], spec, right[imp], 1).sim[:, 0]
    t = similarity(spec, np.float64(spec["threshold"]))
    m = open_set_metrics(ranked.ids, ranked.sim, labels[gen], impostor, OPEN_SET_FARS, t,
                         CMC_RANKS)
    for row in [*m["dir_at_far"].values(), m["at_threshold"]]:
        row["threshold"] = float(to_score(spec, np.float64(row["threshold"])))
    m["at_threshold"]["threshold_source"] = "the export's model.json"
    curve = dir_far_curve(ranked.ids[:, 0] == labels[gen], ranked.sim[:, 0], impostor)
    report = dict(m, shots=shots, seed=seed, unknown_fraction=unknown_fraction,
                  n_enrolled=int(len(enrolled)), n_unknown=int(len(names) - len(enrolled)),
                  n_gallery=int(len(g)), classes=classes, root=str(root),
                  enrolled=[folder.classes[c] for c in enrolled])
    return report, (m["cmc"], curve)
