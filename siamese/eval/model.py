"""The model under evaluation: an export (or a run's export/), its comparator and model.json,
and how its images are loaded and scored (eval.py --tta included)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..config import EVAL_BATCH_SIZE, read_yaml
from ..data.images import load_images
from ..errors import UserError, no_pairs_run
from ..formats.bundle import META
from ..formats.preprocess import CHANNELS
from ..formats.rundir import RunDir
from ..scoring.bundles import open_comparator
from ..scoring.comparator import Comparator
from .tta import image_scores, pair_list_scores


@dataclass
class Model:
    """An exported model (one branch, two branches or a pair scorer) and its model.json."""

    comparator: Comparator
    meta: dict
    export_dir: Path
    run_dir: Optional[Path]
    tta: int = 0  # eval.py --tta K: embeddings averaged over shifts of K pixels (eval.tta)
    symmetries: str = "none"  # eval.py --symmetries NAME: turns embedded side by side

    def load_files(self, root: Path, paths: Sequence[str], progress: bool) -> np.ndarray:
        """uint8 images (len(paths), H, W, C) of image files, decoded as model.json says."""
        pre = self.meta["preprocess"]
        return load_images([root / p for p in paths], pre["resize"], CHANNELS[pre["color"]],
                           progress)

    def pair_scores(self, root: Path, paths: Sequence[str], progress: bool):
        """A function (left indices, right indices) -> scores over these image files; images
        are embedded once per side (embedding models) or pairs scored (pair scorers)."""
        return image_scores(self.comparator, self.load_files(root, paths, progress), self.tta,
                            progress, self.symmetries)

    def score_list(self, pairs, root: Path, progress: bool) -> tuple:
        """(scores, unique image paths, their images) of a PairList, with --tta and
        --symmetries."""
        pre = self.meta["preprocess"]
        return pair_list_scores(self.comparator, pairs, root, pre["resize"],
                                CHANNELS[pre["color"]], self.tta, progress, self.symmetries)

    @property
    def scoring_note(self) -> str:
        return ("each unique image embedded once per side, pairs scored from embeddings"
                if self.comparator.embeds else
                "each pair run through the two-channel network (no embeddings to cache)")


def open_model(target: Path) -> Model:
    """A run directory (uses its export/) or an export directory (model.json inside)."""
    target = Path(target)
    if (RunDir(target).export / META).is_file():
        export_dir, run_dir = RunDir(target).export, target
    elif (target / META).is_file():
        export_dir, run_dir = target, None
    elif RunDir(target).read_metrics().get("exported") is False:
        raise no_pairs_run(target)
    else:
        raise UserError(f"{target}: neither a run directory with export/{META} nor an export "
                        f"directory with {META}")
    comparator, meta = open_comparator(export_dir, EVAL_BATCH_SIZE)
    return Model(comparator, meta, export_dir, run_dir)


def run_data_root(run_dir: Path) -> Path:
    root = read_yaml(RunDir(run_dir).config).get("data", {}).get("root")
    if not root:
        raise UserError(f"{RunDir(run_dir).config}: no data.root")
    return Path(root)
