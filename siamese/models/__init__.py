"""Networks: branches and their registry, the three architectures (one class each, one
registry) and their networks, GluonCV zoo branches, local pretrained weights, the decoder, the
sharing map, initializers, FLOP counting, and the fused training operators with their switch.

Lives here: `branches` (BRANCHES: add a branch here), `architectures` (ARCHITECTURES: add an
architecture here), `nets` (SiameseNet, PseudoSiameseNet, TwoChannelNet), `zoo`, `pretrained`,
`decoder`, `sharing`, `init`, `flops`, `norm`, `fused`.
May import: `siamese.errors`, `siamese.config`, `siamese.formats` (reading a checkpoint for
pretrained weights); receives its `model` config section. Never data, losses, scoring,
training or evaluation.
"""
