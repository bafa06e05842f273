"""Scoring the network being trained on the run's fixed pairs: validation every epoch, and at
the end the threshold chosen on validation pairs and applied to test pairs."""

from __future__ import annotations

import mxnet as mx

from ..eval.oneshot import n_way_accuracy
from ..eval.thresholds import pair_metrics, threshold_report
from ..formats.preprocess import pad_batch, to_tensor
from ..models.decoder import reconstruction_loss
from ..scoring.comparator import Comparator, training_comparator
from .engine import Parts


def comparator(parts: Parts) -> Comparator:
    """The network being trained as a pair scorer (see siamese.scoring.comparator)."""
    return training_comparator(parts.net, parts.loss.score_spec(), parts.data.mean,
                               parts.data.std, parts.cfg.train.eval_batch_size, parts.ctxs[0],
                               parts.cfg.data.right_view)


def split_scores(parts: Parts, split: str) -> tuple:
    """(scores, labels) of the model on the fixed `val` or `test` pairs."""
    rows = parts.data.pairs[split]
    return comparator(parts).score(parts.data.images, rows[:, 0], rows[:, 1]), rows[:, 2]


def has_pairs(parts: Parts) -> bool:
    """False for reconstruction-only runs on unlabelled images (no validation/test pairs)."""
    return len(parts.data.pairs["val"]) > 0 and len(parts.data.pairs["test"]) > 0


def validate(parts: Parts, split: str = "val", threshold=None) -> dict:
    """Verification metrics of the model on a fixed pair set (threshold None: chosen here);
    None values when the run has no pairs (unlabelled reconstruction-only training)."""
    if not has_pairs(parts):
        return {"auc": None, "eer": None, "accuracy": None, "threshold": None, "n_pairs": 0}
    scores, labels = split_scores(parts, split)
    return pair_metrics(scores, labels, parts.loss.score_spec(), threshold)


def validate_and_test(parts: Parts) -> tuple:
    """(val metrics, test metrics, score spec with threshold): the threshold is chosen on the
    validation pairs by `eval.threshold` and applied unchanged to the test pairs."""
    return threshold_report(parts.loss.score_spec(), parts.cfg.eval.threshold,
                            split_scores(parts, "val"), split_scores(parts, "test"))


def reconstruction_error(parts: Parts, split: str) -> float:
    """Mean squared reconstruction error of the `split` images ("val" or "test"), unweighted."""
    autoencoder = parts.autoencoder
    assert autoencoder is not None
    images = parts.data.images[parts.data.splits[split]]
    b, total = parts.cfg.train.eval_batch_size, 0.0
    for s in range(0, len(images), b):
        chunk = images[s:s + b]
        real = len(chunk)
        x = mx.nd.array(to_tensor(pad_batch(chunk, b), parts.data.mean, parts.data.std),
                        ctx=parts.ctxs[0])
        total += float(reconstruction_loss(mx.nd, autoencoder(x), x)[:real].sum()
                       .asscalar())
    return total / max(len(images), 1)


def val_nway(parts: Parts, n_way: int, split: str = "val") -> float:
    """N-way 1-shot accuracy on the validation images (train.select: nway:N): the same
    `train.select_episodes` episodes every epoch, each within one group when data.groups has
    groups (as Lake's Omniglot runs are), else over all validation classes."""
    data = parts.data
    index = data.splits[split]
    c = comparator(parts)
    if c.embeds and c.same_embedding:
        scores = c.embed_side(data.images[index], "left")
    else:  # two branches, or a pair scorer: pairs scored by the comparator
        scores = lambda a, b: c.score(data.images, index[a], index[b])  # noqa: E731
    out = n_way_accuracy(scores, data.folder.labels[index], c.spec, n_way, 1,
                         parts.cfg.train.select_episodes, parts.cfg.seed,
                         data.folder.classes, data.image_groups(index))
    return float(out["accuracy"])

