"""Training objectives: distances (one registry, MXNet and numpy implementations), pair losses
(contrastive, Koch's logistic head, a two-channel network's own logit), triplet losses (random
and mined in P x K batches), margin softmax, neighbourhood components analysis in P x K
batches, and the loss registry.

Lives here: `distances` (DISTANCES: add a distance here), `pair`, `triplet`, `mining` (the
(N, N) miners of batch triplets), `margin` (CosFace), `neighbours` (NCA), `members` (a
loss per member of an ensemble branch), `registry` (LOSSES: add a loss here, and its batch in
siamese.train.pairing).
May import: `siamese.errors`, `siamese.config`, `siamese.formats`; receives its `loss` config
section and the distance name. Never data, models, training or evaluation. `distances` imports
no mxnet, so scoring uses it too.
"""
