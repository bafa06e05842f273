"""Balanced pair, triplet and P x K sampling over labelled images (numpy only).

A pair is a row `(i, j, label)` of image indices with label 1 = same class, 0 = different.
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError


class PairSampler:
    """Balanced random pairs over a set of labelled images; never an image with itself.

    Args:
        labels: (N,) class of each image in the set (indices returned refer to this set).
        name: the set's name, for error messages.
        groups: (N,) group of each image's class (data.groups), or None.
        group_share: share of P x K batches whose classes all come from one group.
    """

    def __init__(self, labels: np.ndarray, name: str, groups=None, group_share: float = 0.0):
        self.labels = np.asarray(labels)
        self.group_share = group_share if groups is not None else 0.0
        self.order = np.argsort(self.labels, kind="stable")  # images grouped by class
        classes, self.start, self.count = np.unique(
            self.labels[self.order], return_index=True, return_counts=True
        )
        self.cls = np.searchsorted(classes, self.labels)  # dense class id per image
        self.rank = np.empty(len(self.labels), np.int64)  # position of an image in its class
        self.rank[self.order] = np.arange(len(self.labels)) - self.start[self.cls[self.order]]
        self.pos_anchor = np.flatnonzero(self.count[self.cls] >= 2)
        if len(self.pos_anchor) == 0:
            raise UserError(
                f"data: the {name} split has no class with 2 or more images, so no same pairs; "
                f"add images or change data.split / data.*_fraction"
            )
        if len(classes) < 2:
            raise UserError(
                f"data: the {name} split has only one class, so no different pairs; "
                f"add classes or change data.split / data.*_fraction"
            )
        # group of each dense class (images of one class share it)
        self.class_group = None if groups is None else \
            np.asarray(groups)[self.order[self.start]]
        self.n_pos = int((self.count * (self.count - 1) // 2).sum())
        self.n_neg = int((len(self.labels) ** 2 - (self.count ** 2).sum()) // 2)

    def _positives(self, n: int, rng: np.random.Generator) -> np.ndarray:
        i = rng.choice(self.pos_anchor, n)
        c, m = self.cls[i], self.count[self.cls[i]]
        k = (rng.random(n) * (m - 1)).astype(np.int64)
        k += k >= self.rank[i]  # skip the anchor itself
        return np.stack([i, self.order[self.start[c] + k], np.ones(n, np.int64)], 1)

    def _negatives(self, n: int, rng: np.random.Generator) -> np.ndarray:
        i = rng.integers(0, len(self.labels), n)
        c, m = self.cls[i], self.count[self.cls[i]]
        r = (rng.random(n) * (len(self.labels) - m)).astype(np.int64)
        r += np.where(r >= self.start[c], m, 0)  # skip the anchor's class block
        return np.stack([i, self.order[r], np.zeros(n, np.int64)], 1)

    def triplets(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n random triplets (anchor, positive, negative): int64 array (n, 3).

        The positive is another image of the anchor's class, the negative any image of
        another class.
        """
        a, p, _ = self._positives(n, rng).T
        c, m = self.cls[a], self.count[self.cls[a]]
        r = (rng.random(n) * (len(self.labels) - m)).astype(np.int64)
        r += np.where(r >= self.start[c], m, 0)  # skip the anchor's class block
        return np.stack([a, p, self.order[r]], 1)

    def pk_batch(self, p: int, k: int, rng: np.random.Generator) -> np.ndarray:
        """A batch of `p` classes x `k` images, class by class: int64 array (p * k,).

        Only classes with 2 or more images are drawn (one image has no positive). A class with
        fewer than k images gives all of them, then repeats drawn at random.
        """
        usable = np.flatnonzero(self.count >= 2)
        if self.group_share > 0 and rng.random() < self.group_share:
            chosen = self.one_group(usable, p, rng)
        else:
            chosen = rng.choice(usable, p, replace=False)
        out = []
        for c in chosen:
            members = self.order[self.start[c]:self.start[c] + self.count[c]]
            if len(members) >= k:
                out.append(rng.choice(members, k, replace=False))
            else:
                extra = rng.choice(members, k - len(members), replace=True)
                out.append(np.concatenate([rng.permutation(members), extra]))
        return np.concatenate(out)

    def one_group(self, usable: np.ndarray, p: int, rng: np.random.Generator) -> np.ndarray:
        """p classes of one group, the group drawn in proportion to its usable classes; a
        group with fewer than p classes gives all of them, the rest drawn from other groups."""
        groups = self.class_group[usable]
        g = groups[rng.integers(0, len(usable))]
        inside, outside = usable[groups == g], usable[groups != g]
        if len(inside) >= p:
            return rng.choice(inside, p, replace=False)
        return np.concatenate([rng.permutation(inside),
                               rng.choice(outside, p - len(inside), replace=False)])

    def sample(self, n: int, rng: np.random.Generator, unique: bool = False) -> np.ndarray:
        """n pairs (n // 2 same, the rest different), shuffled: int64 array (n, 3).

        With `unique`, no unordered pair repeats; when fewer exist than asked, all are used.
        """
        halves = []
        for fn, want, avail in ((self._positives, n // 2, self.n_pos),
                                (self._negatives, n - n // 2, self.n_neg)):
            if not unique:
                halves.append(fn(want, rng))
                continue
            want = min(want, avail)
            got = np.empty((0, 3), np.int64)
            for _ in range(50):
                got = np.concatenate([got, fn(2 * want + 16, rng)])
                key = np.sort(got[:, :2], 1)
                _, first = np.unique(key, axis=0, return_index=True)
                got = got[np.sort(first)]
                if len(got) >= want:
                    break
            halves.append(got[:want])
        pairs = np.concatenate(halves)
        return pairs[rng.permutation(len(pairs))]
