"""The project's configuration: the schema (dataclasses with defaults, help and checks), the
rules that involve several keys, and loading a YAML file with `--set` overrides.

Imports no mxnet. Every field has a default and a one-line help (written into `config.yaml` of
each run as a comment). Errors are `UserError`s naming the file and the key path. The generic
machinery (typed loading, overrides, YAML) is siamese.typed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Literal

import yaml

from .errors import UserError
from .typed import apply_overrides, build, read_yaml, to_yaml  # noqa: F401  (re-exported)
from .typed import typed_field as _f

NO_DOWNLOAD = ("model.pretrained: true would download weights, and this tool never downloads at "
               "run time; fetch the .params file on a connected machine (e.g. gluoncv.model_zoo."
               "get_model(name, pretrained=True) stores it under ~/.mxnet/models/) and set "
               "model.pretrained to its path")


@dataclass
class DataConfig:
    root: str = _f("data/digits", "image folder, one sub-folder per class (PNG/JPEG/BMP/GIF)")
    split: Literal["image", "class"] = _f(
        "image", "image: classes shared, images disjoint; class: val/test classes unseen"
    )
    val_fraction: float = _f(0.15, "share of each class's images (or of classes) for validation",
                             min=0.0, max=0.9)
    test_fraction: float = _f(0.15, "share of each class's images (or of classes) for test",
                              min=0.0, max=0.9)
    image_size: List[int] = _f([32, 32], "input [height, width] in pixels (an int means square)",
                               length=2, min=4)
    channels: Literal[1, 3] = _f(1, "1 = grayscale, 3 = RGB; images are converted on load")
    mean: List[float] = _f([0.5], "per-channel mean subtracted after scaling to [0, 1]")
    std: List[float] = _f([0.5], "per-channel std divided after subtracting the mean",
                          positive=True)
    augment_shift: int = _f(0, "training only: random translation of up to this many pixels",
                            min=0)
    bad_images: Literal["skip", "error"] = _f(
        "skip", "unreadable images: skip (a warning each) or error (stop, naming them)"
    )
    right_view: Literal["none", "invert", "blur"] = _f(
        "none", "shows the right image of every pair inverted or blurred: a second image "
        "domain made from one folder (training, evaluation, export and predict)"
    )
    labeled_per_class: int = _f(0, "use only this many training images per class for pairs "
                                "or triplets (0 = all); with a decoder every training image "
                                "still feeds the reconstruction loss", min=0)
    sampler: Literal["pairs", "pk"] = _f(
        "pairs", "pairs: random pairs (triplets for loss.name: triplet); pk: batches of "
        "classes_per_batch classes x images_per_class images (triplet mining)"
    )
    classes_per_batch: int = _f(8, "data.sampler: pk: classes per batch (P)", min=2)
    images_per_class: int = _f(4, "data.sampler: pk: images per class in a batch (K)", min=2)
    val_pairs: int = _f(2000, "validation pairs, half same and half different", min=2)
    test_pairs: int = _f(2000, "test pairs, half same and half different", min=2)


@dataclass
class ModelConfig:
    architecture: Literal["siamese", "pseudo_siamese", "two_channel"] = _f(
        "siamese", "siamese: one branch for both sides; pseudo_siamese: a left and a right "
        "branch sharing only model.share; two_channel: both images as channels of one network "
        "that scores the pair"
    )
    share: List[str] = _f([], "pseudo_siamese: parameter-name patterns shared by both branches, "
                              "e.g. [features.8, embed] ([] = nothing shared)")
    branch: str = _f("convnet", "branch network from the registry (siamese.model.BRANCHES)")
    embedding_size: int = _f(128, "length of the embedding vector", min=1)
    forward_mode: Literal["twice", "concat"] = _f(
        "concat", "twice: call the branch per side; concat: one batch of 2B, split"
    )
    normalize: bool = _f(True, "L2-normalise embeddings (inside the exported branch)")
    distance: Literal["euclidean", "cosine"] = _f(
        "euclidean", "distance between embeddings (lower = more similar): euclidean | cosine "
        "(1 - cos); used by contrastive and triplet losses, evaluation and the export"
    )
    pretrained: str = _f("", "local weights for the branch ('' = none): a .params file of the "
                         "same gluoncv: network, or a run directory / .ckpt of this tool whose "
                         "branch has the same layers (e.g. an autoencoder run)",
                         no_true=NO_DOWNLOAD)
    init: str = _f("xavier(magnitude=2)", "initializer of the network's weights: xavier, msra, "
                   "uniform, normal, orthogonal, gluon (MXNet's default), pytorch (PyTorch's "
                   "default), with arguments, e.g. normal(sigma=0.01)")
    decoder: Literal["none", "tied", "untied"] = _f(
        "none", "a decoder mirroring the branch for a reconstruction loss: tied (the branch's "
        "own weights, transposed) or untied (its own weights); never exported"
    )
    freeze: List[str] = _f([], "parameter-name prefixes not to train, e.g. [net.conv1, net.layer1]")


@dataclass
class LossConfig:
    name: str = _f("contrastive", "loss from the registry: contrastive | logistic | triplet | "
                   "none (reconstruction only, needs model.decoder)")
    margin: float = _f(1.0, "contrastive: different pairs are pushed beyond this distance; "
                       "triplet: d(anchor, negative) must exceed d(anchor, positive) by this",
                       positive=True)
    reconstruction_weight: float = _f(1.0, "with model.decoder: total loss = similarity loss "
                                      "+ this x reconstruction loss (mean squared error)",
                                      positive=True)
    mining: Literal["none", "semi_hard", "hard"] = _f(
        "none", "triplet with data.sampler: pk: none (every triplet of the batch), semi_hard "
        "(closest negative farther than the positive), hard (closest negative)"
    )


@dataclass
class TrainConfig:
    epochs: int = _f(10, "passes over freshly drawn training pairs", min=1)
    batch_size: int = _f(128, "pairs (triplets) per step, over all devices; with data.sampler: "
                         "pk a batch is classes_per_batch x images_per_class images", min=1)
    pairs_per_epoch: int = _f(20000, "training pairs (triplets; images with data.sampler: pk) "
                              "drawn afresh each epoch", min=1)
    lr: float = _f(0.001, "peak learning rate", positive=True)
    optimizer: str = _f("adam", "optimizer: adam | sgd | nag | rmsprop | adagrad")
    momentum: float = _f(0.9, "sgd/nag momentum", min=0.0, max=1.0)
    wd: float = _f(0.0, "weight decay", min=0.0)
    schedule: str = _f("cosine", "learning-rate schedule: constant | cosine | step")
    warmup_epochs: float = _f(0.0, "linear warm-up from 0 to lr over this many epochs", min=0.0)
    patience: int = _f(0, "early stopping: stop after this many epochs without a better "
                       "validation AUC (0 = never)", min=0)
    eval_batch_size: int = _f(256, "images per embedding batch in evaluation", min=1)
    kvstore: Literal["device", "local", "dist_sync", "dist_device_sync"] = _f(
        "device", "gradients summed over devices (device | local) or machines (dist_*)"
    )
    keep_checkpoints: int = _f(3, "per-epoch checkpoints kept besides last and best", min=1)
    nonfinite: Literal["stop", "skip"] = _f(
        "stop", "a non-finite loss or gradient: stop (exit 1) or skip the batch"
    )
    max_skipped_batches: int = _f(10, "with nonfinite: skip, stop after this many", min=0)
    amp: bool = _f(False, "mixed precision (float16) on GPUs with MXNet AMP; refused on CPU")


@dataclass
class EvalConfig:
    threshold: str = _f("accuracy", "the threshold stored in the export, chosen on validation "
                        "pairs: accuracy (most pairs right) | far:0.001 (false accept rate at "
                        "most 0.001)")


@dataclass
class ExportConfig:
    onnx: bool = _f(False, "also write export/branch.onnx at the end of training (.[onnx] extra)")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "images and pairs"})
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "the network"})
    loss: LossConfig = field(default_factory=LossConfig, metadata={"help": "training objective"})
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "optimisation"})
    eval: EvalConfig = field(default_factory=EvalConfig,
                             metadata={"help": "the decision threshold"})
    export: ExportConfig = field(default_factory=ExportConfig,
                                 metadata={"help": "the deployment artefact"})
    device: str = _f("auto", "auto (all GPUs, else CPU) | cpu | gpu | gpu:0,1 | cpu:0,1")
    seed: int = _f(0, "seeds Python, numpy and mxnet, the splits and the pair sampling")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _choice(*names: str):
    return lambda v: v in names


INIT_ARGS = {  # initializer name -> {argument: check of its value} (siamese.engine builds them)
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
    import re

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


def _check(cfg: Config) -> None:
    """Rules that involve more than one field."""
    parse_threshold_rule(cfg.eval.threshold)
    loss, d = cfg.loss, cfg.data
    if loss.mining != "none" and d.sampler != "pk":
        raise UserError(f"loss.mining: {loss.mining} mines inside P x K batches; set "
                        f"data.sampler: pk (with loss.name: triplet)")
    if d.sampler == "pk" and loss.name != "triplet":
        raise UserError(f"data.sampler: pk batches are for loss.name: triplet, not {loss.name}")
    arch = cfg.model.architecture
    if arch == "two_channel" and loss.name != "logistic":
        raise UserError(f"loss.name: model.architecture: two_channel outputs a score per pair "
                        f"and trains with loss.name: logistic (binary cross-entropy), not "
                        f"{loss.name}")
    if arch != "siamese" and loss.name == "triplet":
        raise UserError(f"loss.name: triplet needs model.architecture: siamese (anchor, "
                        f"positive and negative through one branch), not {arch}")
    parse_init(cfg.model.init)
    if cfg.model.decoder != "none" and arch != "siamese":
        raise UserError(f"model.decoder: needs model.architecture: siamese, not {arch}")
    if loss.name == "none" and cfg.model.decoder == "none":
        raise UserError("loss.name: none trains by reconstruction only; set model.decoder: "
                        "tied or untied")
    if loss.name == "none" and d.sampler != "pairs":
        raise UserError("data.sampler: reconstruction-only training (loss.name: none) draws "
                        "images, not P x K batches; leave data.sampler: pairs")
    if cfg.model.share and arch != "pseudo_siamese":
        raise UserError(f"model.share: only for model.architecture: pseudo_siamese ({arch} "
                        f"{'shares everything' if arch == 'siamese' else 'has one network'})")
    if d.val_fraction + d.test_fraction >= 1.0:
        raise UserError("data.test_fraction: val_fraction + test_fraction must be below 1")
    for key in ("mean", "std"):
        if len(getattr(d, key)) not in (1, d.channels):
            raise UserError(f"data.{key}: needs 1 or {d.channels} values (data.channels)")


def _migrate(raw: Any) -> Any:
    """Configs saved before `loss.distance` became `model.distance` still load."""
    if isinstance(raw, dict) and isinstance(raw.get("loss"), dict) and \
            "distance" in raw["loss"]:
        raw = dict(raw, loss=dict(raw["loss"]))
        distance = raw["loss"].pop("distance")
        model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
        raw["model"] = {"distance": distance, **model}
    return raw


def from_dict(raw: Any) -> Config:
    """Build and validate a Config from a plain mapping (as read from YAML)."""
    cfg = build(Config, _migrate(raw), "")
    _check(cfg)
    return cfg


def load_config(path: str | Path, overrides: List[str] = ()) -> Config:
    """Load a YAML config, apply `--set` overrides, validate.

    Args:
        path: the YAML file.
        overrides: strings `key.path=value`.
    Returns:
        The validated Config. `data.root` is made absolute (relative paths are taken from the
        current directory).
    Raises:
        UserError: naming the file and the key path.
    """
    path = Path(path)
    raw = read_yaml(path)
    try:
        cfg = from_dict(raw)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    try:
        cfg = from_dict(apply_overrides(raw, list(overrides)))
    except UserError as e:
        raise UserError(f"--set: {e}") from None
    cfg.data.root = str(Path(cfg.data.root).expanduser().resolve())
    if not Path(cfg.data.root).is_dir():
        raise UserError(f"{path}: data.root: no such folder: {cfg.data.root}")
    return cfg


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


