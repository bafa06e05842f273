"""The loss of a branch of several members (model.members): each member's own loss on its own
part of the embedding, averaged, so the members train as independent models."""

from __future__ import annotations

import math
from typing import Callable

from mxnet.gluon import HybridBlock


class PerMember(HybridBlock):
    """N copies of a loss, one per member of a siamese.models.branches.Members branch.

    The branch outputs (B, N x E): member k's unit embedding divided by sqrt(N) in columns
    k x E to (k + 1) x E. Each of the `n_inputs` embedding arrays is cut into the N parts and
    scaled back by sqrt(N); loss k sees part k and the targets unchanged; the loss per example
    is the mean over the members. A loss with parameters (CosFace's class weights) has its own
    per member.

    Args:
        make: builds one member's loss (inside this block's name scope: CosFace's weights of
            member k are named after it).
        members: N.
    """

    def __init__(self, make: Callable[..., HybridBlock], members: int, **kwargs):
        super().__init__(**kwargs)
        self.count = members
        self.parts = []
        with self.name_scope():
            for k in range(members):
                part = make()
                self.register_child(part, f"member{k}")
                self.parts.append(part)
        first = self.parts[0]
        self.n_inputs = first.n_inputs
        self.higher_is_similar = first.higher_is_similar
        self.distance = first.distance

    def hybrid_forward(self, F, *args):
        k_in, root = self.n_inputs, math.sqrt(self.count)
        cut = [F.split(e, num_outputs=self.count, axis=1) for e in args[:k_in]]
        total = 0
        for k, part in enumerate(self.parts):
            total = total + part(*[c[k] * root for c in cut], *args[k_in:])
        return total / self.count

    def score_spec(self) -> dict:
        return self.parts[0].score_spec()

    def example_targets(self, n: int, ctx) -> list:
        return self.parts[0].example_targets(n, ctx)
