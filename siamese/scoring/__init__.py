"""Scoring: whatever turns two images, or an image and a gallery, into a score, with any
architecture. Training's validation, evaluation, the exports, predict, enrolment and the
benches all score through here.

Lives here: `scores` (score specs in numpy: a distance of losses.distances or Koch's logistic
head, and the same/different decision at a threshold; no mxnet), `comparator` (the
Comparator: embeds each unique image once per side, or runs pairs through a pair scorer;
`embed`; scoring a pair list), `bundles` (opening an export directory to score with).
May import: formats, data (decoding, views), models (the architecture registry),
losses.distances. Never eval, identification, train or export.
"""
