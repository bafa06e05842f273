"""Test-time averaging (eval.py --tta K): shifted copies and the averaged embedding, by hand."""

from __future__ import annotations

import numpy as np

from siamese.eval.tta import averaged, shifted


def test_shifted_copies_move_by_k_with_edges_repeated():
    img = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1)
    down, up, right, left = (c[0, :, :, 0] for c in shifted(img, 1))
    x = img[0, :, :, 0]
    assert np.array_equal(up[:-1], x[1:]) and np.array_equal(up[-1], x[-1])
    assert np.array_equal(down[1:], x[:-1]) and np.array_equal(down[0], x[0])
    assert np.array_equal(left[:, :-1], x[:, 1:]) and np.array_equal(right[:, 1:], x[:, :-1])


def test_averaged_embedding_is_the_mean_back_on_the_sphere():
    img = np.zeros((1, 3, 3, 1), np.uint8)
    img[0, 0, 0, 0] = 255  # a corner pixel: shifts move it or not

    def embed(x):  # (top-left pixel, 1) on the unit sphere
        v = np.stack([x[:, 0, 0, 0] / 255.0, np.ones(len(x))], 1)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    copies = [img] + shifted(img, 1)
    mean = np.mean([embed(c)[0] for c in copies], axis=0)
    got = averaged(embed, img, 1)[0]
    assert np.allclose(got, mean / np.linalg.norm(mean), atol=1e-6)
    assert np.allclose(averaged(embed, img, 0), embed(img))
    raw = averaged(lambda x: 2 * embed(x), img, 1)[0]  # not normalised: the plain mean
    assert np.allclose(raw, 2 * mean, atol=1e-6)
