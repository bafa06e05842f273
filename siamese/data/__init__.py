"""Images and pairs: where images come from and how a run keeps them decoded, views (invert,
blur), class folders, seeded splits, pair and triplet sampling, users' pair files, augmentation,
and the training batch sources.

Lives here: `images` (decode with Pillow), `folder` (class folders), `recordio` (MXNet RecordIO
packs, read) and `packing` (written), `sources` (a folder or a pack: its i-th image), `storage`
(data.storage: memory, the decoded `cache` on disk, stream), `views`, `splits`, `groups`
(data.groups: groups of classes), `sampling`, `trainset` (the training examples, rotation
classes), `turns` (quarter turns and mirrors: rotation classes, test-time symmetries),
`pairfiles` (CSV / LFW pair lists), `prepare` (PairData: a run's decoded images, splits,
val/test pairs), `augment` (shifts and affine distortions), `loaders` (BatchSource and SOURCES:
pairs, triplets, P x K, none), `workers` (data.workers: batches from forked processes).
May import: `siamese.errors`, `siamese.config`, `siamese.formats`; receives its `data` config
section. Never models, losses, scoring, training or evaluation.
"""
