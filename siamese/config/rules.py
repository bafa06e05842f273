"""Rules that involve more than one config key, and the parsing of keys with a small grammar
(`model.init`, `eval.threshold`). Errors name the key."""

from __future__ import annotations

import os
import re
from typing import Any

import yaml

from ..errors import UserError
from .schema import CONVNET_OPTIONS, Config, ModelConfig

# losses that learn from the labels of P x K batches (data.sampler: pk)
BATCH_LOSSES = ("triplet", "cosface", "nca")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _choice(*names: str):
    return lambda v: v in names


# initializer name -> {argument: check of its value}; siamese.models.init builds them
INIT_ARGS = {
    "xavier": {"rnd_type": _choice("uniform", "gaussian"),
               "factor_type": _choice("avg", "in", "out"), "magnitude": _number},
    "msra": {"factor_type": _choice("avg", "in", "out"), "slope": _number},
    "uniform": {"scale": _number}, "normal": {"sigma": _number},
    "orthogonal": {"scale": _number, "rand_type": _choice("uniform", "normal")},
    "gluon": {}, "pytorch": {},
}


def parse_init(text: str) -> tuple:
    """`xavier(magnitude=2)` -> ("xavier", {"magnitude": 2}); UserError naming model.init for
    an unknown name, argument or value."""
    m = re.fullmatch(r"\s*([a-z_]+)\s*(?:\((.*)\))?\s*", text or "")
    if not m or m.group(1) not in INIT_ARGS:
        raise UserError(f"model.init: unknown initializer {text!r} (valid: "
                        f"{', '.join(INIT_ARGS)}, with arguments like xavier(magnitude=2))")
    name, args = m.group(1), {}
    allowed = INIT_ARGS[name]
    for part in filter(None, (a.strip() for a in (m.group(2) or "").split(","))):
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in allowed or not value.strip():
            raise UserError(f"model.init: {name} takes {', '.join(allowed) or 'no '}"
                            f"{' as ' if allowed else ''}arguments, got {part!r}")
        try:
            args[key] = yaml.safe_load(value.strip())
        except yaml.YAMLError:
            args[key] = value.strip()
        if not allowed[key](args[key]):
            raise UserError(f"model.init: {name}: {key}={value.strip()} is not a valid value")
    return name, args


def parse_threshold_rule(text: str) -> tuple:
    """`accuracy` -> ("accuracy", None); `far:0.001` -> ("far", 0.001). UserError otherwise."""
    if text == "accuracy":
        return "accuracy", None
    if text.startswith("far:"):
        try:
            far = float(text[4:])
        except ValueError:
            far = -1.0
        if 0.0 < far < 1.0:
            return "far", far
    raise UserError(f"eval.threshold: expected accuracy or far:<rate in (0, 1)> such as "
                    f"far:0.001, got {text!r}")


def parse_select(text: str) -> tuple:
    """`auc` -> ("auc", 0); `last` -> ("last", 0); `nway:20` -> ("nway", 20). UserError."""
    if text in ("auc", "last"):
        return text, 0
    m = re.fullmatch(r"nway:(\d+)", text or "")
    if m and int(m.group(1)) >= 2:
        return "nway", int(m.group(1))
    raise UserError(f"train.select: expected auc, last or nway:N (N >= 2, e.g. nway:20), "
                    f"got {text!r}")


def check_groups(cfg: Config) -> None:
    """data.split: group, data.group_batches, data.train_on and train.select together."""
    d = cfg.data
    select, _ = parse_select(cfg.train.select)
    if d.split == "group" and d.groups == "none":
        raise UserError("data.split: group holds whole groups out; set data.groups: name or csv")
    if d.group_batches > 0 and (d.groups == "none" or d.sampler != "pk"):
        raise UserError("data.group_batches: draws P x K batches from one group; needs "
                        "data.groups (name or csv) and data.sampler: pk")
    if d.train_on == "all" and select != "last":
        raise UserError(f"data.train_on: all trains on the validation images too, so "
                        f"validation cannot choose the epoch; set train.select: last (not "
                        f"{cfg.train.select}) and fix train.epochs on a validation run")
    if d.mirror_classes and not d.rotate_classes:
        raise UserError("data.mirror_classes: goes with data.rotate_classes (e.g. [90, 180, "
                        "270])")


def check_members(m) -> None:
    """model.members: an ensemble inside the one branch of a siamese network."""
    if m.members == 1:
        return
    if m.architecture != "siamese":
        raise UserError(f"model.members: an ensemble inside the one branch; needs "
                        f"model.architecture: siamese, not {m.architecture}")
    if not m.normalize:
        raise UserError("model.members: the members' embeddings are averaged as unit vectors; "
                        "needs model.normalize: true")
    if m.decoder != "none":
        raise UserError("model.members: not with model.decoder (one decoder mirrors one "
                        "branch)")


def check_symmetries(cfg: Config) -> None:
    """export.symmetries: the exported branch embeds several turns of each image."""
    name, m = cfg.export.symmetries, cfg.model
    if name == "none":
        return
    if m.architecture != "siamese":
        raise UserError(f"export.symmetries: embeds each image through the one branch of a "
                        f"siamese network; not for model.architecture: {m.architecture}")
    if cfg.loss.name == "logistic":
        raise UserError("export.symmetries: compares the embeddings side by side by distance; "
                        "loss.name: logistic learns a head that weights one embedding")
    h, w = cfg.data.image_size
    if name in ("rotations", "dihedral") and h != w:
        raise UserError(f"export.symmetries: {name} turns images by a quarter, which needs "
                        f"square images; data.image_size is {[h, w]} (flip does not)")


def check(cfg: Config) -> None:
    """Rules that involve more than one field."""
    parse_threshold_rule(cfg.eval.threshold)
    check_groups(cfg)
    loss, d = cfg.loss, cfg.data
    if loss.mining != "none" and d.sampler != "pk":
        raise UserError(f"loss.mining: {loss.mining} mines inside P x K batches; set "
                        f"data.sampler: pk (with loss.name: triplet)")
    if d.sampler == "pk" and loss.name not in BATCH_LOSSES:
        raise UserError(f"data.sampler: pk batches are for loss.name: triplet, cosface or nca, "
                        f"not {loss.name}")
    if loss.name in ("cosface", "nca") and d.sampler != "pk":
        raise UserError(f"loss.name: {loss.name} learns from class labels in P x K batches; set "
                        f"data.sampler: pk")
    if loss.mining != "none" and loss.name != "triplet":
        raise UserError(f"loss.mining: mines triplets; not for loss.name: {loss.name}")
    arch = cfg.model.architecture
    if arch == "two_channel" and loss.name != "logistic":
        raise UserError(f"loss.name: model.architecture: two_channel outputs a score per pair "
                        f"and trains with loss.name: logistic (binary cross-entropy), not "
                        f"{loss.name}")
    if arch != "siamese" and loss.name in BATCH_LOSSES:
        raise UserError(f"loss.name: {loss.name} needs model.architecture: siamese (every image "
                        f"through one branch), not {arch}")
    parse_init(cfg.model.init)
    if cfg.model.decoder != "none" and cfg.model.stem_stride != 1:
        raise UserError("model.stem_stride: the decoder mirrors a stride-1 branch; leave "
                        "model.stem_stride: 1 with model.decoder")
    if cfg.model.decoder != "none" and cfg.model.pool != "mean":
        raise UserError("model.pool: the decoder mirrors the mean over H and W; leave "
                        "model.pool: mean with model.decoder")
    check_members(cfg.model)
    check_symmetries(cfg)
    if cfg.model.decoder != "none" and arch != "siamese":
        raise UserError(f"model.decoder: needs model.architecture: siamese, not {arch}")
    if loss.name == "none" and cfg.model.decoder == "none":
        raise UserError("loss.name: none trains by reconstruction only; set model.decoder: "
                        "tied or untied")
    if loss.name == "none" and d.sampler != "pairs":
        raise UserError("data.sampler: reconstruction-only training (loss.name: none) draws "
                        "images, not P x K batches; leave data.sampler: pairs")
    defaults = ModelConfig()
    for key in CONVNET_OPTIONS:
        if getattr(cfg.model, key) != getattr(defaults, key) and cfg.model.branch != "convnet":
            raise UserError(f"model.{key}: only for model.branch: convnet, not "
                            f"{cfg.model.branch}")
    if cfg.model.share and arch != "pseudo_siamese":
        raise UserError(f"model.share: only for model.architecture: pseudo_siamese ({arch} "
                        f"{'shares everything' if arch == 'siamese' else 'has one network'})")
    if d.val_fraction + d.test_fraction >= 1.0:
        raise UserError("data.test_fraction: val_fraction + test_fraction must be below 1")
    for key in ("mean", "std"):
        if len(getattr(d, key)) not in (1, d.channels):
            raise UserError(f"data.{key}: needs 1 or {d.channels} values (data.channels)")
    check_storage(d)


def check_storage(d) -> None:
    """data.root (folder or pack), data.storage, data.cache_dir and data.workers together."""
    if d.root.endswith((".idx", ".lst")):
        raise UserError(f"data.root: name the pack's .rec file, not {d.root}")
    if d.cache_dir != "auto" and d.storage in ("memory", "stream"):
        raise UserError(f"data.cache_dir: set, but data.storage: {d.storage} writes no cache "
                        f"(use cache or auto)")
    if os.path.isfile(os.path.expanduser(d.cache_dir)):
        raise UserError(f"data.cache_dir: {d.cache_dir} is a file, not a folder")
    if d.workers > 4 * (os.cpu_count() or 1):
        raise UserError(f"data.workers: {d.workers} processes on {os.cpu_count()} processors "
                        f"would only contend; at most 4 per processor")
