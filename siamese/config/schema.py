"""The configuration schema: one dataclass per section, each field with its default, a one-line
help (written into every run's `config.yaml` as a comment) and its value checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Literal

from .typed import typed_field as _f

NO_DOWNLOAD = ("model.pretrained: true would download weights, and this tool never downloads at "
               "run time; fetch the .params file on a connected machine (e.g. gluoncv.model_zoo."
               "get_model(name, pretrained=True) stores it under ~/.mxnet/models/) and set "
               "model.pretrained to its path")

# Images per batch when scoring: training's validation by default, and eval.py, galleries and
# enrolment always (they score from an export alone): the same batches give the same embeddings.
EVAL_BATCH_SIZE = 256


@dataclass
class DataConfig:
    root: str = _f("data/digits", "image folder, one sub-folder per class (PNG/JPEG/BMP/GIF), "
                   "or a RecordIO pack NAME.rec (with NAME.idx; python -m siamese.pack)")
    storage: Literal["auto", "memory", "cache", "stream"] = _f(
        "auto", "decoded images: memory (one array), cache (a memory-mapped file under "
        "data.cache_dir, written on first use), stream (decoded per batch); auto = memory "
        "below 20000 images, else cache"
    )
    cache_dir: str = _f("auto", "folder of the decoded cache files (auto = "
                        "$XDG_CACHE_HOME/siamese, else ~/.cache/siamese)")
    workers: int = _f(0, "processes that decode and augment training batches while the "
                      "network trains (0 = in the training process)", min=0, max=64)
    split: Literal["image", "class", "group"] = _f(
        "image", "image: classes shared, images disjoint; class: val/test classes unseen; "
        "group: val/test classes from groups (data.groups) training never saw"
    )
    groups: Literal["none", "name", "csv"] = _f(
        "none", "groups of classes: none; name (a class folder's name up to its last "
        "underscore, Omniglot's alphabet); csv (groups.csv beside the class folders, header "
        "class,group)"
    )
    group_batches: float = _f(0.0, "data.sampler: pk: share of batches whose P classes all "
                              "come from one group (negatives from the same group)",
                              min=0.0, max=1.0)
    rotate_classes: List[int] = _f([], "training classes' rotations by these angles (90, 180, "
                                   "270) as new classes, e.g. [90, 180, 270] ([] = none)")
    mirror_classes: bool = _f(False, "with rotate_classes: mirror images (and their "
                              "rotations) as new classes too")
    train_on: Literal["split", "all"] = _f(
        "split", "split: train on the training split; all: on every image (the final model, "
        "once the recipe and epochs are fixed on validation; needs train.select: last)"
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
    augment_rotate: float = _f(0.0, "training only: random rotation of up to this many degrees "
                               "(with shear and scale: an affine distortion, Koch et al. 2015)",
                               min=0.0, max=180.0)
    augment_shear: float = _f(0.0, "training only: random shear of up to this many degrees",
                              min=0.0, max=60.0)
    augment_scale: float = _f(0.0, "training only: random scale by 1 +- this, x and y apart",
                              min=0.0, max=0.9)
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


CONVNET_OPTIONS = ("widths", "stem_stride", "pool")  # model keys for the convnet branch only;
# at their defaults they leave the branch as it is built without them


@dataclass
class ModelConfig:
    architecture: Literal["siamese", "pseudo_siamese", "two_channel"] = _f(
        "siamese", "siamese: one branch for both sides; pseudo_siamese: a left and a right "
        "branch sharing only model.share; two_channel: both images as channels of one network "
        "that scores the pair"
    )
    share: List[str] = _f([], "pseudo_siamese: parameter-name patterns shared by both branches, "
                              "e.g. [features.8, embed] ([] = nothing shared)")
    branch: str = _f("convnet", "branch network from the registry "
                     "(siamese.models.branches.BRANCHES)")
    embedding_size: int = _f(128, "length of the embedding vector", min=1)
    members: int = _f(1, "siamese: N branches trained side by side, each on its own loss, as "
                      "one exported branch: an ensemble whose embedding is theirs concatenated "
                      "(N x embedding_size values) and whose distance averages theirs", min=1)
    widths: List[int] = _f([], "convnet: channels of its convolutions, one block each, e.g. "
                           "[64, 128, 256] ([] = the branch's own, [32, 64, 128])", min=1)
    stem_stride: int = _f(1, "convnet: stride of its first convolution (2 = a larger input at "
                          "about the cost of a half-size one)", min=1, max=4)
    pool: Literal["mean", "flatten"] = _f(
        "mean", "convnet: how its last feature map becomes the embedding layer's input: mean "
        "(over H and W; any input size) or flatten (the whole map, so where each stroke or part "
        "lies is kept; a fixed input size)")
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
                   "cosface (margin softmax over the training classes, data.sampler: pk) | "
                   "nca (soft nearest neighbour inside P x K batches, data.sampler: pk) | "
                   "none (reconstruction only, needs model.decoder)")
    margin: float = _f(1.0, "contrastive: different pairs are pushed beyond this distance; "
                       "triplet: d(anchor, negative) must exceed d(anchor, positive) by this; "
                       "cosface: subtracted from the true class's cosine (e.g. 0.35)",
                       positive=True)
    scale: float = _f(30.0, "cosface: the scale s of the cosine logits; nca: the scale s of "
                      "the logits -s * distance", positive=True)
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
    select: str = _f("auc", "the epoch kept: auc (best validation AUC), nway:N (best "
                     "validation N-way 1-shot accuracy, episodes within one group where "
                     "data.groups has them) or last")
    select_episodes: int = _f(1000, "train.select: nway:N: validation episodes per epoch "
                              "(the same every epoch)", min=10)
    eval_batch_size: int = _f(EVAL_BATCH_SIZE, "images per embedding batch in evaluation", min=1)
    kvstore: Literal["device", "local", "dist_sync", "dist_device_sync"] = _f(
        "device", "gradients summed over devices (device | local) or machines (dist_*)"
    )
    keep_checkpoints: int = _f(3, "per-epoch checkpoints kept besides last and best", min=1)
    nonfinite: Literal["stop", "skip"] = _f(
        "stop", "a non-finite loss or gradient: stop (exit 1) or skip the batch"
    )
    max_skipped_batches: int = _f(10, "with nonfinite: skip, stop after this many", min=0)
    amp: bool = _f(False, "mixed precision (float16) on GPUs with MXNet AMP; refused on CPU")
    fused_ops: bool = _f(True, "on CPUs with oneDNN, train the convnet branch with BatchNorm+ReLU "
                         "as one operator and the mean over H, W as pooling (same maths, "
                         "faster); exports always hold the plain operators")


@dataclass
class EvalConfig:
    threshold: str = _f("accuracy", "the threshold stored in the export, chosen on validation "
                        "pairs: accuracy (most pairs right) | far:0.001 (false accept rate at "
                        "most 0.001)")


@dataclass
class ExportConfig:
    onnx: bool = _f(False, "also write export/branch.onnx at the end of training (.[onnx] extra)")
    symmetries: Literal["none", "flip", "rotations", "dihedral"] = _f(
        "none", "the exported branch embeds each image in these symmetries of itself and "
        "returns the embeddings side by side (V times the inference): flip (the mirror image), "
        "rotations (4 quarter turns, square images), dihedral (both: 8); the threshold and the "
        "test figures of metrics.json use it too (siamese.export.symmetries)"
    )


@dataclass
class LogConfig:
    tensorboard: bool = _f(False, "write TensorBoard event files under RUN_DIR/tensorboard/ "
                           "(.[tensorboard] extra): scalars per epoch, the loss every "
                           "tensorboard_every steps, validation embeddings for the projector")
    tensorboard_every: int = _f(20, "log.tensorboard: the training loss every this many steps",
                                min=1)


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
    log: LogConfig = field(default_factory=LogConfig,
                           metadata={"help": "what a run records besides log.jsonl"})
    device: str = _f("auto", "auto (all GPUs, else CPU) | cpu | gpu | gpu:0,1 | cpu:0,1")
    seed: int = _f(0, "seeds Python, numpy and mxnet, the splits and the pair sampling")
