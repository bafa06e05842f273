"""What eval.py writes and prints: the JSON report, the ROC and score plots, the worst mistakes,
the table."""

from __future__ import annotations

from pathlib import Path

from ..formats.atomic import write_json
from ..formats.figures import safely
from ..identification.plots import plot_cmc, plot_dir_far
from .embedmap import plot_map
from .metrics import eer
from .mistakes import plot_mistakes
from .model import Model
from .plots import plot_roc, plot_scores


def write_outputs(report: dict, pictures: dict, model: Model, out: Path) -> None:
    """The JSON report, and beside it roc.png, distances.png and mistakes.png when pairs were
    scored, embeddings.png with --plot-embeddings (see build_report for `pictures`)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if "map" in pictures:
        points, labels, classes, images = pictures["map"]
        safely(out.parent / "embeddings.png", plot_map, points, labels, classes, images)
        report["embedding_map"] = {"file": str(out.parent / "embeddings.png"),
                                   "methods": list(points), "images": int(len(labels)),
                                   "classes": len(classes)}
    if "pairs" in pictures:
        scores, labels, (left, right), root = pictures["pairs"]
        spec = model.meta["score"]
        name = Path(str(report.get("pairs_file", "pairs"))).name
        safely(out.parent / "roc.png", plot_roc, scores, labels, spec["higher_is_similar"],
               eer(scores if spec["higher_is_similar"] else -scores, labels),
               f"ROC: {name} (AUC {report['auc']:.4f})")
        unit = "similarity (higher = same)" if spec["higher_is_similar"] else \
            f"{spec['name']} distance (lower = same)"
        safely(out.parent / "distances.png", plot_scores, scores, labels, report["threshold"],
               unit, f"{name}: threshold from {report['threshold_source']}")
        safely(out.parent / "mistakes.png", plot_mistakes, root, left, right, scores, labels,
               report["threshold"], spec["higher_is_similar"])
    _identification_pictures(report, pictures, out.parent)
    write_json(out, report)


def _identification_pictures(report: dict, pictures: dict, folder: Path) -> None:
    """cmc.png (retrieval and/or open-set identification by rank) and dir_far.png."""
    curves = {}
    if "retrieval" in pictures:
        curves["retrieval (leave-one-out), recall@k"] = pictures["retrieval"]
    if "open_set" in pictures:
        cmc, (far, dir_) = pictures["open_set"]
        curves["open set: genuine probes, CMC"] = cmc
        o = report["open_set"]
        if safely(folder / "dir_far.png", plot_dir_far, far, dir_, o["n_impostor"],
                  f"open set: {o['n_enrolled']} enrolled, {o['n_unknown']} unknown identities"):
            o["plot"] = str(folder / "dir_far.png")
    if curves and safely(folder / "cmc.png", plot_cmc, curves, "identification by rank"):
        for key in ("retrieval", "open_set"):
            if key in report:
                report[key]["cmc_plot"] = str(folder / "cmc.png")


def format_table(report: dict) -> str:
    """The figures as aligned text lines."""
    rows = []
    if "auc" in report:
        rows += [("model", f"{report['model_kind']}: {report['scoring']}"),
                 ("pairs", f"{report['n_pairs']} ({report['n_images']} images, "
                           f"{report['pairs_format']})"),
                 ("AUC", f"{report['auc']:.4f}"), ("EER", f"{report['eer']:.4f}"),
                 (f"accuracy (threshold from {report['threshold_source']})",
                  f"{report['accuracy']:.4f} at {report['threshold']:.4f}")]
        if "kfold_accuracy_mean" in report:
            rows.append(("k-fold accuracy", f"{report['kfold_accuracy_mean']:.4f} "
                                            f"+- {report['kfold_accuracy_std']:.4f}"))
        rows += [(f"TAR @ FAR {f}", f"{v:.4f}") for f, v in report["tar_at_far"].items()]
        rows.append(("best accuracy (oracle)", f"{report['best_accuracy']:.4f}"))
        for c in report.get("far_calibration", []):
            rows.append((f"threshold for FAR {c['target_far']:g} (validation)",
                         f"{c['threshold']:.4f}: TAR {c['tar']:.4f}, FAR {c['far']:.4f} here "
                         f"(validation TAR {c['val_tar']:.4f}, FAR {c['val_far']:.4f})"))
    for n, r in report.get("n_way", {}).items():
        rows.append((f"{n}-way {r['shots']}-shot accuracy ({r['classes']} classes)",
                     f"{r['accuracy']:.4f} (95% CI {r['ci95'][0]:.4f}-{r['ci95'][1]:.4f}, "
                     f"{r['episodes']} episodes)"))
        if "within_group" in r:
            w = r["within_group"]
            rows.append((f"{n}-way within one group ({w['groups']} groups, {w['rule']})",
                         f"{w['accuracy']:.4f} (95% CI {w['ci95'][0]:.4f}-"
                         f"{w['ci95'][1]:.4f}, {w['episodes']} episodes)"))
    if "embedding_map" in report:
        m = report["embedding_map"]
        rows.append(("embedding map", f"{', '.join(m['methods'])} of {m['images']} images: "
                                      f"{m['file']}"))
    e = report.get("episode_file")
    if e:
        rows.append((f"fixed episodes ({e['episodes']}, {e['queries']} queries)",
                     f"accuracy {e['mean_accuracy']:.4f} (error {e['error_rate']:.4f}, 95% CI "
                     f"{e['ci95'][0]:.4f}-{e['ci95'][1]:.4f}, per episode sd "
                     f"{e['std_accuracy']:.4f})"))
    rows += _identification_rows(report)
    rows.append(("seconds", f"{report['seconds']:.1f}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _identification_rows(report: dict) -> list:
    rows = []
    r = report.get("retrieval")
    if r:
        recall = ", ".join(f"R@{k} {v:.4f}" for k, v in r["recall_at_k"].items())
        rows += [(f"retrieval ({r['n_queries']} queries, {r['classes']} classes)",
                  f"P@1 {r['precision_at_1']:.4f}, {recall}"),
                 ("R-Precision / MAP@R", f"{r['r_precision']:.4f} / {r['map_at_r']:.4f}")]
    o = report.get("open_set")
    if o:
        rows.append((f"open set ({o['n_enrolled']} enrolled x {o['shots']} shots, "
                     f"{o['n_unknown']} unknown)", f"rank-1 {o['rank1']:.4f} "
                                                   f"({o['n_genuine']} genuine, "
                                                   f"{o['n_impostor']} impostor probes)"))
        rows += [(f"DIR @ FAR {f}", f"{d['dir']:.4f} (threshold {d['threshold']:.4f}, FAR "
                                    f"{d['far']:.4f})") for f, d in o["dir_at_far"].items()]
        t = o["at_threshold"]
        rows.append(("DIR / FAR at the export's threshold",
                     f"{t['dir']:.4f} / {t['far']:.4f} (threshold {t['threshold']:.4f})"))
    return rows
