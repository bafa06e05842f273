"""Augmentation: translation alone is unchanged; the affine warp checked on cases by hand."""

from __future__ import annotations

import numpy as np

from siamese.data.augment import Augment, affine_matrices, random_shift, warp


def test_without_affine_it_is_the_translation_with_the_same_draws():
    batch = np.random.default_rng(0).integers(0, 255, (4, 8, 8, 1), dtype=np.uint8)
    a = Augment(shift=2)(batch, np.random.default_rng(1))
    b = random_shift(batch, 2, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)


def test_identity_quarter_turn_and_shift_by_hand():
    img = np.arange(25, dtype=np.uint8).reshape(1, 5, 5, 1)
    eye = np.eye(2)[None]
    np.testing.assert_array_equal(warp(img, eye, np.zeros((1, 2))), img)
    # A quarter turn about the centre in (row, col) coordinates: out[r, c] = in[c, 4 - r]
    # for rotation by +90 degrees (row' = -col, col' = row relative to the centre).
    quarter = np.array([[[0.0, -1.0], [1.0, 0.0]]])
    expected = np.rot90(img[0, :, :, 0], k=1)
    np.testing.assert_array_equal(warp(img, quarter, np.zeros((1, 2)))[0, :, :, 0], expected)
    # A shift of one row down: row 0 repeats the edge.
    moved = warp(img, eye, np.array([[1.0, 0.0]]))[0, :, :, 0]
    np.testing.assert_array_equal(moved[1:], img[0, :4, :, 0])
    np.testing.assert_array_equal(moved[0], img[0, 0, :, 0])


def test_random_maps_stay_within_their_ranges():
    maps = affine_matrices(500, rotate=10, shear=0, scale=0, rng=np.random.default_rng(0))
    angles = np.rad2deg(np.arctan2(maps[:, 1, 0], maps[:, 0, 0]))
    assert np.abs(angles).max() <= 10 and np.abs(angles).max() > 9
    np.testing.assert_allclose(np.linalg.det(maps), 1.0, atol=1e-12)  # rotation only
    maps = affine_matrices(500, rotate=0, shear=0, scale=0.2, rng=np.random.default_rng(0))
    d = np.stack([maps[:, 0, 0], maps[:, 1, 1]])
    assert d.min() >= 0.8 and d.max() <= 1.2 and np.allclose(maps[:, 0, 1], 0)


def test_affine_augment_keeps_shape_dtype_and_changes_images():
    batch = np.random.default_rng(0).integers(0, 255, (6, 16, 16, 1), dtype=np.uint8)
    out = Augment(shift=2, rotate=10, shear=5, scale=0.1)(batch, np.random.default_rng(2))
    assert out.shape == batch.shape and out.dtype == np.uint8
    assert (out != batch).any()
