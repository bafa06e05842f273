"""Which epoch a run keeps (`train.select`): the best validation AUC (the default), the best
validation N-way 1-shot accuracy (what a one-shot benchmark measures), or the last epoch (a
final model trained on every image, whose epoch count was fixed on validation)."""

from __future__ import annotations

from ..config import parse_select
from ..errors import UserError
from ..eval.oneshot import sample_episodes
from .engine import Parts
from .state import State
from .validation import val_nway


def judge(parts: Parts, state: State, val: dict, row: dict) -> bool:
    """True when the epoch just validated is the best so far; adds `val_nway` to the log row
    under train.select: nway:N."""
    rule, n_way = parse_select(parts.cfg.train.select)
    if not parts.pairing.labelled:  # labels ignored: the best epoch reconstructs best
        return row["val_reconstruction"] < state.best.get("reconstruction", float("inf"))
    if rule == "last":
        return True
    if rule == "nway":
        row["val_nway"] = val_nway(parts, n_way)
        return row["val_nway"] > state.best.get("nway", -1.0)
    return (val["auc"], -val["eer"]) > (state.best["auc"], -state.best["eer"])


def check_select(parts: Parts) -> None:
    """Before the first epoch: train.select: nway:N needs N validation classes with 2 images
    (in one group, with data.groups); UserError naming the key otherwise."""
    rule, n_way = parse_select(parts.cfg.train.select)
    if rule != "nway":
        return
    data = parts.data
    index = data.splits["val"]
    try:
        sample_episodes(data.folder.labels[index], n_way, 1, 1, 0, data.folder.classes,
                        data.image_groups(index))
    except UserError as e:
        raise UserError(f"train.select: {parts.cfg.train.select}: on the validation split: "
                        f"{e}") from None
