"""Tests of calcimg.core.grid: reduced copies and samples that mirror with the image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calcimg.core.grid import (
    block_coordinates,
    block_mean,
    centred_indices,
    centred_sample,
    grow,
    grow_mask,
    shrink,
    symmetric_factor,
)

FLIPS = {"fliplr": np.fliplr, "flipud": np.flipud, "transpose": np.transpose, "rot90": np.rot90}


@pytest.mark.parametrize(
    ("shape", "factor", "expected"),
    [((100, 80), 4, 4), ((101, 80), 4, 3), ((100, 81), 2, 1), ((101, 81), 3, 3), ((10, 10), 1, 1), ((10, 10), 0, 1)],
)
def test_symmetric_factor(shape, factor, expected):
    assert symmetric_factor(shape, factor) == expected


def test_block_mean_of_a_multiple_is_the_plain_block_mean():
    """A side that is already a multiple of the factor gets no padding: the blocks are the plain blocks."""
    image = np.arange(36, dtype=np.float32).reshape(6, 6)
    expected = image.reshape(2, 3, 2, 3).mean(axis=(1, 3))
    assert np.allclose(block_mean(image, 3), expected)


def test_block_mean_refuses_a_factor_that_cannot_tile_symmetrically():
    with pytest.raises(ValueError, match="symmetrically"):
        block_mean(np.zeros((5, 6), np.uint16), 2)


#: Random images of any shape up to 90 x 90, a reduction factor and one of the flips and turns.
MIRROR_CASES = settings(max_examples=40, deadline=None)(
    given(
        rows=st.integers(1, 90),
        cols=st.integers(1, 90),
        factor=st.integers(1, 8),
        seed=st.integers(0, 2**16),
        name=st.sampled_from(sorted(FLIPS)),
    )
)


@MIRROR_CASES
def test_shrink_and_grow_mirror_with_the_image(rows, cols, factor, seed, name):
    """Shrinking and growing a flipped or turned image gives the flipped or turned results, exactly, for grey
    levels and masks, on any shape and factor."""
    flip = FLIPS[name]
    image = cv2.GaussianBlur(np.random.default_rng(seed).integers(0, 60000, (rows, cols)).astype(np.uint16), (0, 0), 1)
    flipped = np.ascontiguousarray(flip(image))
    small = shrink(image, factor)
    assert np.array_equal(shrink(flipped, factor), flip(small))
    assert np.array_equal(grow(shrink(flipped, factor), flipped.shape), flip(grow(small, image.shape)))
    mask = small > np.median(small)
    assert np.array_equal(
        grow_mask(np.ascontiguousarray(flip(mask)), flipped.shape), flip(grow_mask(mask, image.shape))
    )


@MIRROR_CASES
def test_block_mean_mirrors_with_the_image(rows, cols, factor, seed, name):
    flip = FLIPS[name]
    image = np.random.default_rng(seed).integers(0, 60000, (rows, cols)).astype(np.uint16)
    block = symmetric_factor(image.shape, factor)
    assert np.array_equal(block_mean(np.ascontiguousarray(flip(image)), block), flip(block_mean(image, block)))


def test_shrink_by_two_is_the_block_mean_and_grow_keeps_a_constant():
    image = np.random.default_rng(1).integers(0, 4000, (40, 60)).astype(np.uint16)
    assert np.abs(shrink(image, 2).astype(int) - image.reshape(20, 2, 30, 2).mean(axis=(1, 3))).max() <= 0.5
    assert (grow(np.full((7, 9), 1234, np.uint16), (17, 23)) == 1234).all()
    assert shrink(image, 1) is image and grow(image, image.shape) is image


def test_grow_mask_keeps_half_covered_pixels():
    small = np.zeros((5, 5), bool)
    small[2, 2] = True
    grown = grow_mask(small, (10, 10))
    assert grown[4:6, 4:6].all() and grown.sum() == 4


def test_block_coordinates_put_each_block_centre_on_a_whole_number():
    """A 9-px side reduced by 3 (no padding): pixels 1, 4, 7 are the centres of blocks 0, 1, 2."""
    assert block_coordinates(np.array([1.0, 4.0, 7.0]), 9, 3).tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("side", [1, 2, 7, 10, 11])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_centred_indices_are_symmetric_and_every_stride_from_each_end(side, stride):
    """Steps of ``stride`` from each end; where the two meet in the middle the gap is under two strides."""
    index = centred_indices(side, stride)
    assert np.array_equal(index, side - 1 - index[::-1])
    assert index[0] == 0 and index[-1] == side - 1
    assert np.all(np.diff(index) < 2 * stride)
    assert np.count_nonzero(np.diff(index) != stride) <= 1


def test_centred_sample_mirrors():
    image = np.arange(7 * 10).reshape(7, 10)
    assert np.array_equal(centred_sample(np.fliplr(image), 2), np.fliplr(centred_sample(image, 2)))
    assert centred_sample(image, 1) is image
