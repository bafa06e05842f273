"""`python eval.py` / `siamese eval`: evaluate a trained model on held-out pairs or n-way episodes.

    python eval.py RUN_DIR                                  # the run's own test pairs
    python eval.py RUN_DIR_OR_EXPORT_DIR --pairs FILE --root DIR [--out report.json]
    python eval.py RUN_DIR_OR_EXPORT_DIR --n-way 5,20 --root DIR [--episodes 1000] [--shots 1]
    python eval.py RUN_DIR --n-way 20 --classes val --within-group   # episodes in one group
    python eval.py RUN_DIR --far 0.01,0.001      # thresholds for target false accept rates,
                                                 # chosen on the run's validation pairs
    python eval.py RUN_DIR_OR_EXPORT_DIR --episode-file data/omniglot/runs   # fixed episodes
    python eval.py RUN_DIR_OR_EXPORT_DIR --retrieval --root DIR     # leave-one-out retrieval
    python eval.py RUN_DIR --open-set --classes test [--shots K]    # gallery / probe protocol

The model, its preprocessing, distance and threshold come from the export's model.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UserError
from ..eval.present import format_table, write_outputs
from ..eval.report import Request, build_report
from ..formats.preprocess import SYMMETRIES
from .common import rates, run, setup_logging


def _ways(text: str) -> list:
    try:
        ways = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 5,20, got {text!r}") from None
    if not ways or min(ways) < 2:
        raise argparse.ArgumentTypeError(f"each N must be at least 2, got {text!r}")
    return ways


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="eval.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", type=Path, help="a run directory or an export directory")
    p.add_argument("--pairs", type=Path, help="pair list: CSV left,right,label or LFW pairs.txt")
    p.add_argument("--root", type=Path, help="image folder the pair list / classes refer to")
    p.add_argument("--out", type=Path, help="JSON report (default TARGET/eval.json); the plots "
                                            "go beside it")
    p.add_argument("--n-way", type=_ways, default=[], metavar="N[,N...]",
                   help="N-way K-shot identification on the class folders of --root")
    p.add_argument("--shots", type=int, default=1, help="K support images per class")
    p.add_argument("--episodes", type=int, default=1000, help="episodes per N")
    p.add_argument("--seed", type=int, default=0, help="seed of the episodes")
    p.add_argument("--classes", choices=("all", "unseen", "val", "test"), default="all",
                   help="--n-way on all class folders, on classes the run never trained on, "
                        "or on its validation or test classes only (data.split: class)")
    p.add_argument("--within-group", nargs="?", const="run", choices=("run", "name", "csv"),
                   metavar="RULE", help="--n-way: also episodes whose N classes all come from "
                   "one group (as Lake's Omniglot runs): the run's data.groups, or name "
                   "(folder name up to its last underscore) or csv (groups.csv under --root)")
    p.add_argument("--tta", type=int, default=0, metavar="K",
                   help="test-time averaging for pairs, --far, --n-way and --episode-file: "
                        "each embedding the mean over the image and its copies shifted by K "
                        "pixels (an export written with `siamese export --tta K` does it itself)")
    p.add_argument("--symmetries", choices=tuple(SYMMETRIES),
                   default="none",
                   help="pairs, --far, --n-way and --episode-file: embed each image under "
                        "these turns / mirror images, side by side (an export written with "
                        "`siamese export --symmetries NAME` does it itself)")
    p.add_argument("--far", type=rates, default=[], metavar="RATE[,RATE...]",
                   help="report the threshold reaching each target false accept rate on the "
                        "validation pairs, and the TAR/FAR it gives on the scored pairs")
    p.add_argument("--val-pairs", type=Path, help="validation pair list for --far (default: "
                                                  "the run's pairs/val.csv)")
    p.add_argument("--episode-file", type=Path, metavar="DIR_OR_FILE",
                   help="fixed one-shot episodes: Lake's run folders (runNN/class_labels.txt, "
                        "or a folder of them) or a CSV episode,role,path,label")
    p.add_argument("--plot-embeddings", action="store_true",
                   help="embeddings.png: a 2-D map (PCA; t-SNE/UMAP when installed) of the "
                        "images of the class folders under --root")
    p.add_argument("--retrieval", action="store_true",
                   help="every image of the class folders under --root queries all the others: "
                        "Precision@1, Recall@1,2,4,8, R-Precision, MAP@R")
    p.add_argument("--open-set", action="store_true",
                   help="enroll --shots images of each identity not held back; probe with their "
                        "other images and with held-back identities: rank-1, DIR@FAR, CMC")
    p.add_argument("--unknown-fraction", type=float, default=0.5,
                   help="--open-set: share of the identities held back from the gallery")
    p.add_argument("--index", choices=("auto", "exact", "flat", "ivf", "hnsw"), default="auto",
                   help="nearest-neighbour search for --retrieval / --open-set (FAISS for "
                        "flat, ivf, hnsw)")
    p.add_argument("--allow-outside-root", action="store_true",
                   help="accept pair-file paths that leave --root (absolute, or with ..)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> int:
        setup_logging()
        if args.shots < 1 or args.episodes < 1:
            raise UserError("--shots and --episodes must be at least 1")
        if args.tta < 0:
            raise UserError("--tta: a shift in pixels, 0 or more")
        if args.tta and (args.retrieval or args.open_set or args.plot_embeddings):
            raise UserError("--tta: averages pairs, --far, --n-way and --episode-file only, not "
                            "--retrieval, --open-set or --plot-embeddings (an export written "
                            "with --tta averages everywhere)")
        if args.symmetries != "none" and (args.retrieval or args.open_set or
                                          args.plot_embeddings):
            raise UserError("--symmetries: for pairs, --far, --n-way and --episode-file only, "
                            "not --retrieval, --open-set or --plot-embeddings (an export "
                            "written with --symmetries embeds them everywhere)")
        if args.within_group and not args.n_way:
            raise UserError("--within-group: goes with --n-way N")
        if not 0.0 < args.unknown_fraction < 1.0:
            raise UserError("--unknown-fraction must be in (0, 1)")
        request = Request(pairs=args.pairs, root=args.root, ways=args.n_way, shots=args.shots,
                          episodes=args.episodes, seed=args.seed, fars=args.far,
                          val_pairs=args.val_pairs, classes=args.classes,
                          allow_outside=args.allow_outside_root,
                          episode_file=args.episode_file, plot_embeddings=args.plot_embeddings,
                          retrieval=args.retrieval, open_set=args.open_set,
                          unknown_fraction=args.unknown_fraction, index=args.index,
                          progress=sys.stderr.isatty(), within_group=args.within_group,
                          tta=args.tta, symmetries=args.symmetries)
        report, pictures, model = build_report(args.target, request)
        out = args.out or args.target / "eval.json"
        write_outputs(report, pictures, model, out)
        print(format_table(report))
        drawn = [*(["roc.png", "distances.png", "mistakes.png"] if "pairs" in pictures else []),
                 *(["cmc.png"] if {"retrieval", "open_set"} & set(pictures) else []),
                 *(["dir_far.png"] if "open_set" in pictures else [])]
        drawn = f"  plots: {', '.join(drawn)} beside it" if drawn else ""
        print(f"report: {out}{drawn}")
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
