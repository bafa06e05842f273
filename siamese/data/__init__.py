"""Images and pairs: decoding, views (invert, blur), class folders, seeded splits, pair and
triplet sampling, users' pair files, and the training batch sources.

Lives here: `images` (decode with Pillow), `views`, `folder`, `splits`, `sampling`, `pairfiles`
(CSV / LFW pair lists), `prepare` (PairData: a run's decoded images, splits, val/test pairs),
`loaders` (SOURCES: pairs, triplets, P x K, none), `storage` (data.storage: memory, the decoded
`cache` on disk, stream), `recordio` (MXNet RecordIO packs, read) and `packing` (written),
`workers` (data.workers: batches from forked processes).
May import: `siamese.errors`, `siamese.formats`; receives its `data` config section. Never
models, losses, training or evaluation.
"""
