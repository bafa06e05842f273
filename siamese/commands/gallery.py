"""Identification: enroll identities once, then ask of each new image "which one, or none?".

    python -m siamese.gallery build EXPORT_DIR IMAGE_DIR --out GALLERY   # one folder per identity
    python -m siamese.gallery add GALLERY IMAGE_DIR          # more images or new identities
    python -m siamese.gallery remove GALLERY NAME [NAME ...] # drop identities
    python -m siamese.gallery info GALLERY
    python -m siamese.gallery query GALLERY IMAGE... [--top-k 5] [--far RATE] [--json]
    python -m siamese.gallery calibrate GALLERY --probes DIR --far 0.01[,0.001]
    python -m siamese.gallery evaluate GALLERY --probes OTHER_DIR [--far 0.01]   # DIR, FAR
    python -m siamese.gallery bench [--size 1000000] [--quick]   # search speed, random vectors

A gallery holds the embeddings of one export and its fingerprint: another export is refused.
A probe is `unknown` when its best identity's score is beyond the threshold: the export's own
(model.json) by default, or with --far one calibrated on probes of enrolled identities and of
identities not enrolled. Search is exact up to 50,000 enrolled images, then an IVF index of
FAISS (pip install 'siamese[faiss]'); --index chooses (exact, flat, ivf, hnsw).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..formats.gallery import read_gallery, write_gallery
from ..identification.enroll import (
    add_to,
    attach_index,
    build_gallery,
    embed_files,
    enroll_folder,
    gallery_index,
    open_for_gallery,
    open_gallery_export,
    remove_from,
)
from ..identification.ranking import (
    Ranked,
    calibrate_open_set,
    calibration_entry,
    calibration_threshold,
    decisions,
    rank_identities,
    split_probes,
)
from ..identification.report import CMC_RANKS
from ..identification.retrieval import open_set_metrics
from ..identification.search import KINDS, similarity
from .bench.search import main as bench_main
from .common import rates, run, setup_logging


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m siamese.gallery", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="embed every image of the class folders into a gallery")
    b.add_argument("export_dir", type=Path)
    b.add_argument("image_dir", type=Path)
    b.add_argument("--out", type=Path, required=True, help="the gallery file to write")
    b.add_argument("--side", choices=("left", "right"), default="left",
                   help="the network enrolled images go through (pseudo-siamese exports); "
                        "probes go through the other one")
    a = sub.add_parser("add", help="enroll more images or new identities")
    a.add_argument("gallery", type=Path)
    a.add_argument("image_dir", type=Path)
    r = sub.add_parser("remove", help="drop identities")
    r.add_argument("gallery", type=Path)
    r.add_argument("names", nargs="+")
    i = sub.add_parser("info", help="what a gallery holds")
    i.add_argument("gallery", type=Path)
    q = sub.add_parser("query", help="the ranked identities of each image, and the decision")
    q.add_argument("gallery", type=Path)
    q.add_argument("images", type=Path, nargs="+")
    q.add_argument("--top-k", type=int, default=5)
    q.add_argument("--far", type=float, help="use the threshold calibrated for this rate")
    q.add_argument("--json", action="store_true")
    c = sub.add_parser("calibrate", help="open-set thresholds for false-alarm rates")
    c.add_argument("gallery", type=Path)
    c.add_argument("--probes", type=Path, required=True,
                   help="class folders: of enrolled identities (other images than enrolled) "
                        "and of identities not enrolled")
    c.add_argument("--far", type=rates, required=True, metavar="RATE[,RATE...]")
    e = sub.add_parser("evaluate", help="identification figures on held-out probes at the "
                                        "threshold query uses")
    e.add_argument("gallery", type=Path)
    e.add_argument("--probes", type=Path, required=True,
                   help="class folders, as for calibrate, but not the calibration probes")
    e.add_argument("--far", type=float, help="the threshold calibrated for this rate")
    e.add_argument("--json", action="store_true")
    for s in (a, r, q, c, e):
        s.add_argument("--export", type=Path, help="the gallery's export, moved (the same "
                                                   "network: its fingerprint is checked)")
    for s in (q, c, e):
        s.add_argument("--index", choices=("auto", *KINDS), default="auto")
    sub.add_parser("bench", add_help=False,
                   help="search speed and recall on random unit vectors (siamese.commands.bench."
                        "search; `bench --help` for its options)")
    return p.parse_args(argv)


def cmd_build(args) -> int:
    comparator, meta, _ = open_for_gallery(args.export_dir)
    gallery = build_gallery(comparator, meta, args.export_dir, args.image_dir, args.side,
                            sys.stderr.isatty())
    write_gallery(args.out, attach_index(gallery, meta["score"]))
    print(f"{args.out}: {len(gallery.paths)} images of {len(gallery.identities)} identities, "
          f"embedded by {args.export_dir}")
    return 0


def cmd_add(args) -> int:
    gallery = read_gallery(args.gallery)
    comparator, meta, _ = open_gallery_export(gallery, args.gallery, args.export)
    gallery, added = add_to(gallery, comparator, meta, args.image_dir, sys.stderr.isatty())
    write_gallery(args.gallery, attach_index(gallery, meta["score"]))
    print(f"{args.gallery}: {added} images added; {len(gallery.paths)} images of "
          f"{len(gallery.identities)} identities")
    return 0


def cmd_remove(args) -> int:
    gallery = read_gallery(args.gallery)
    _, meta, _ = open_gallery_export(gallery, args.gallery, args.export)
    gallery = remove_from(gallery, args.names, args.gallery)
    write_gallery(args.gallery, attach_index(gallery, meta["score"]))
    print(f"{args.gallery}: removed {', '.join(args.names)}; {len(gallery.paths)} images of "
          f"{len(gallery.identities)} identities")
    return 0


def cmd_info(args) -> int:
    g = read_gallery(args.gallery)
    info = {k: v for k, v in g.header.items() if k != "checksum"}
    info["images_per_identity"] = g.counts()
    print(json.dumps(info, indent=2))
    return 0


def _probe_side(gallery, comparator) -> str:
    """Probes go through the side opposite the gallery's (the same one when both sides share
    one network)."""
    side = gallery.header["side"]
    if comparator.same_embedding:
        return side
    return "right" if side == "left" else "left"


def _threshold(args, gallery, spec: dict, export_dir: Path) -> tuple:
    """(threshold in model.json units, where it comes from): the export's, or with --far the
    one calibrated for that rate."""
    if args.far is None:
        return float(spec["threshold"]), f"{export_dir}/model.json"
    threshold = calibration_threshold(gallery.header.get("calibration"), args.far,
                                      str(args.gallery))
    return threshold, f"calibrated for FAR {args.far:g}"


def cmd_query(args) -> int:
    if args.top_k < 1:
        raise UserError("--top-k must be at least 1")
    gallery = read_gallery(args.gallery)
    comparator, meta, export_dir = open_gallery_export(gallery, args.gallery, args.export)
    spec = meta["score"]
    threshold, source = _threshold(args, gallery, spec, export_dir)
    for f in args.images:
        if not f.is_file():
            raise UserError(f"{f}: no such image file")
    emb, kept = embed_files(comparator, meta, args.images, _probe_side(gallery, comparator),
                            sys.stderr.isatty())
    if len(kept) < len(args.images):
        raise UserError(f"{args.images[min(set(range(len(args.images))) - set(kept))]}: "
                        f"cannot read image")
    index = gallery_index(gallery, spec, args.index)
    ranked = rank_identities(index, gallery.embeddings, gallery.labels, spec, emb, args.top_k)
    out = [dict(d, image=str(f), threshold=threshold, threshold_source=source)
           for f, d in zip(args.images, decisions(ranked, gallery.identities, spec, threshold))]
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for d in out:
        top = ", ".join(f"{t['identity']} {t['score']:.4f}" for t in d["top"])
        verdict = d["identity"] if d["known"] else \
            f"unknown (best {d['best']['identity']} at {d['best']['score']:.4f})"
        print(f"{d['image']}: {verdict}  [threshold {threshold:.4f}, {source}]  top: {top}")
    return 0


def _probe_set(args, gallery, comparator, meta: dict, top_k: int = 1) -> tuple:
    """(Ranked, truth) of the class folders under --probes: truth is each probe's identity id
    in the gallery, -1 for an identity not enrolled. Enrolled files are left out."""
    emb, names, _, _ = enroll_folder(comparator, meta, args.probes,
                                     _probe_side(gallery, comparator), gallery.digests,
                                     sys.stderr.isatty())
    truth = split_probes(names, gallery.identities)
    index = gallery_index(gallery, meta["score"], args.index)
    return rank_identities(index, gallery.embeddings, gallery.labels, meta["score"], emb,
                           top_k), truth


def _subset(ranked: Ranked, mask: np.ndarray) -> Ranked:
    return Ranked(ranked.ids[mask], ranked.sim[mask])


def cmd_calibrate(args) -> int:
    gallery = read_gallery(args.gallery)
    comparator, meta, _ = open_gallery_export(gallery, args.gallery, args.export)
    ranked, truth = _probe_set(args, gallery, comparator, meta)
    gen, imp = truth >= 0, truth < 0
    found = calibrate_open_set(_subset(ranked, gen), truth[gen], _subset(ranked, imp),
                               meta["score"], args.far)
    for far, c in found.items():
        c["probes"] = str(args.probes.resolve())
        if c["n_impostor"] * float(far) < 1:
            print(f"FAR {far}: {c['n_impostor']} impostor probes cannot measure it; the "
                  f"threshold admits none of them", file=sys.stderr)
    gallery.header["calibration"] = dict(gallery.header.get("calibration") or {}, **found)
    write_gallery(args.gallery, gallery)
    for far, c in found.items():
        print(f"FAR {far}: threshold {c['threshold']:.4f}  (on these probes: FAR {c['far']:.4f}, "
              f"DIR {c['dir']:.4f}; {c['n_genuine']} genuine, {c['n_impostor']} impostor)")
    return 0


def cmd_evaluate(args) -> int:
    gallery = read_gallery(args.gallery)
    comparator, meta, export_dir = open_gallery_export(gallery, args.gallery, args.export)
    spec = meta["score"]
    threshold, source = _threshold(args, gallery, spec, export_dir)
    if args.far is not None and calibration_entry(gallery.header.get("calibration"), args.far,
                                                  str(args.gallery))["probes"] == \
            str(args.probes.resolve()):
        raise UserError(f"--probes {args.probes}: the threshold for FAR {args.far:g} was "
                        f"calibrated on these probes; score others (never the calibration set)")
    ranked, truth = _probe_set(args, gallery, comparator, meta, CMC_RANKS)
    gen, imp = truth >= 0, truth < 0
    m = open_set_metrics(ranked.ids[gen], ranked.sim[gen], truth[gen], ranked.sim[imp, 0],
                         (), similarity(spec, np.float64(threshold)), CMC_RANKS)
    accepted = ranked.sim[gen, 0] >= similarity(spec, np.float64(threshold))
    wrong = float((accepted & (ranked.ids[gen, 0] != truth[gen])).mean()) if gen.any() else 0.0
    out = {"threshold": threshold, "threshold_source": source, "probes": str(args.probes),
           "rank1": m["rank1"], "cmc": m["cmc"], "dir": m["at_threshold"]["dir"],
           "far": m["at_threshold"]["far"], "misidentified": wrong,
           "n_genuine": m["n_genuine"], "n_impostor": m["n_impostor"]}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"threshold {threshold:.4f} ({source}) on {out['n_genuine']} genuine and "
          f"{out['n_impostor']} impostor probes:\n  DIR {out['dir']:.4f}  FAR {out['far']:.4f}  "
          f"misidentified {wrong:.4f}  rank-1 {out['rank1']:.4f}")
    return 0


COMMANDS = {"build": cmd_build, "add": cmd_add, "remove": cmd_remove, "info": cmd_info,
            "query": cmd_query, "calibrate": cmd_calibrate, "evaluate": cmd_evaluate}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        return bench_main(argv[1:])
    args = parse_args(argv)

    def body() -> int:
        setup_logging()
        return COMMANDS[args.command](args)

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
