"""Tests of calcimg.core.morphology against scipy / scikit-image references."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage as ndi
from skimage.filters import apply_hysteresis_threshold

from calcimg.core.morphology import (
    binary_open,
    disk_mask,
    disk_rectangles,
    fill_holes,
    grey_opening_disk,
    hysteresis,
    large_components,
    line_opening_max,
)
from symmetries import DIHEDRAL

RADII = [0, 0.5, 1, 1.5, 2, 2.3, 3, 4, 5.5, 6.7, 10, 17.2]


def _paint(rectangles: list[tuple[int, int]], n: int) -> np.ndarray:
    """Union of centred rectangles (half sizes) on a (2n+1) square."""
    union = np.zeros((2 * n + 1, 2 * n + 1), bool)
    for h, w in rectangles:
        union[n - h : n + h + 1, n - w : n + w + 1] = True
    return union


def _random_uint16(seed: int, shape: tuple[int, int] = (70, 83), smooth: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if smooth == 0:
        return rng.integers(0, 65536, shape).astype(np.uint16)
    field = ndi.gaussian_filter(rng.standard_normal(shape), smooth)
    return ((field - field.min()) / np.ptp(field) * 60000).astype(np.uint16)


def _smooth_mask(seed: int, shape: tuple[int, int] = (60, 70), sigma: float = 2.0) -> np.ndarray:
    """A random binary mask with blobs of a few pixels (so openings keep something)."""
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.standard_normal(shape), sigma) > 0


@pytest.mark.parametrize("radius", RADII)
def test_disk_rectangles_union_is_disk_mask(radius):
    """The union of the staircase rectangles is exactly the digital disk i**2 + j**2 <= r**2."""
    mask = disk_mask(radius)
    n = mask.shape[0] // 2
    assert mask.shape == (2 * n + 1, 2 * n + 1)
    assert np.array_equal(_paint(disk_rectangles(radius), n), mask)


@pytest.mark.parametrize("radius", [3, 6.7, 10, 17.2])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_disk_rectangles_limited_is_inscribed(radius, k):
    """With max_rectangles the union has at most k rectangles and stays inside the disk."""
    rectangles = disk_rectangles(radius, max_rectangles=k)
    mask = disk_mask(radius)
    assert 1 <= len(rectangles) <= k
    union = _paint(rectangles, mask.shape[0] // 2)
    assert not (union & ~mask).any()


def test_disk_rectangles_ordered_flat_to_tall():
    """Rectangles go from widest-and-flattest to tallest-and-narrowest (the docstring's order)."""
    rectangles = disk_rectangles(10)
    heights = [h for h, _ in rectangles]
    widths = [w for _, w in rectangles]
    assert heights == sorted(heights) and widths == sorted(widths, reverse=True)
    assert rectangles[0] == (0, 10) and rectangles[-1] == (10, 0)


@pytest.mark.parametrize("radius", [1, 1.5, 2.3, 4, 6.7])
@pytest.mark.parametrize("smooth", [0.0, 2.0])
def test_grey_opening_disk_matches_scipy(radius, smooth):
    """Equals scipy.ndimage.grey_opening(footprint=disk_mask(r)) over the whole image.

    OpenCV treats pixels beyond the border as absent; scipy's default 'reflect' mode gives the same opening for a
    symmetric convex footprint, because a mirrored pixel is always closer than the pixel it replaces (and so
    already inside the footprint). The interior (2n from the border) must match whatever the convention.
    """
    image = _random_uint16(int(radius * 10), smooth=smooth)
    footprint = disk_mask(radius)
    n = footprint.shape[0] // 2
    opened = grey_opening_disk(image, radius)
    reference = ndi.grey_opening(image, footprint=footprint)
    assert opened.dtype == image.dtype and opened.shape == image.shape
    inner = (slice(2 * n, -2 * n), slice(2 * n, -2 * n))
    assert np.array_equal(opened[inner], reference[inner])
    assert np.array_equal(opened, reference)
    # The documented border convention: absent pixels (erosion pads with the maximum, dilation with the minimum).
    absent = ndi.grey_dilation(
        ndi.grey_erosion(image, footprint=footprint, mode="constant", cval=65535),
        footprint=footprint,
        mode="constant",
        cval=0,
    )
    assert np.array_equal(opened, absent)


def test_grey_opening_disk_float32():
    """float32 images give the same opening as scipy too."""
    image = _random_uint16(5, smooth=1.5).astype(np.float32) / 7
    assert np.array_equal(grey_opening_disk(image, 3), ndi.grey_opening(image, footprint=disk_mask(3)))


@pytest.mark.parametrize("radius", [4, 6.7, 17.2])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_grey_opening_disk_limited_rectangles(radius, k):
    """With max_rectangles it is the exact opening by the union of the kept rectangles, so it never exceeds the
    image and is idempotent.

    Note: it is NOT bounded by the exact disk opening in either direction (a smaller structuring element does not
    give a larger opening unless the disk is open with respect to it), so no such inequality is asserted.
    """
    image = _random_uint16(k, smooth=2.0)
    approx = grey_opening_disk(image, radius, max_rectangles=k)
    n = int(radius)
    union = _paint(disk_rectangles(radius, k), n)
    reference = ndi.grey_opening(image, footprint=union)
    assert np.array_equal(approx, reference)
    assert (approx <= image).all()
    assert np.array_equal(grey_opening_disk(approx, radius, max_rectangles=k), approx)


def test_grey_opening_disk_radius_below_one_is_identity():
    """A radius below 1 is a single-pixel disk: the opening returns a copy of the image."""
    image = _random_uint16(2)
    opened = grey_opening_disk(image, 0.7)
    assert np.array_equal(opened, image) and opened is not image


def test_line_opening_max_keeps_line_removes_square():
    """A 31-px line survives a 15-px line opening at full value; a 3x3 square disappears (any orientation count)."""
    image = np.zeros((41, 41), np.uint16)
    image[20, 5:36] = 100
    image[8:11, 8:11] = 100
    for n_orientations in (1, 4, 12):
        opened = line_opening_max(image, 15, n_orientations)
        assert (opened[20, 5:36] == 100).all()
        assert (opened[8:11, 8:11] == 0).all()
        assert opened[20, :5].max() == 0 and opened[20, 36:].max() == 0


def test_line_opening_max_diagonal_line_needs_orientations():
    """A diagonal line is removed by the horizontal opening alone but kept with 4 or 12 orientations."""
    image = np.zeros((41, 41), np.uint16)
    idx = np.arange(5, 36)
    image[idx, idx] = 100
    assert line_opening_max(image, 15, 1).max() == 0
    for n_orientations in (4, 12):
        opened = line_opening_max(image, 15, n_orientations)
        assert (opened[idx[3:-3], idx[3:-3]] == 100).all()
        assert np.count_nonzero(opened) == len(idx)


def test_line_opening_max_horizontal_only_is_exact_opening():
    """With one orientation it is scipy's grey opening by a 1 x L line (edge replicated), hence <= the image."""
    image = _random_uint16(3, shape=(64, 64))
    opened = line_opening_max(image, 7, 1)
    assert np.array_equal(opened, ndi.grey_opening(image, size=(1, 7), mode="nearest"))
    assert (opened <= image).all()


@pytest.mark.parametrize("n_orientations", [2, 4, 12])
def test_line_opening_max_bounds(n_orientations):
    """Between the horizontal opening and the image itself: every line is an opening (no interpolation)."""
    image = _random_uint16(n_orientations, shape=(64, 64))
    opened = line_opening_max(image, 7, n_orientations)
    horizontal = ndi.grey_opening(image, size=(1, 7), mode="nearest")
    assert opened.dtype == image.dtype and opened.shape == image.shape
    assert (opened >= horizontal).all()
    assert (opened <= image).all()


@settings(max_examples=30, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 70), st.integers(1, 70)),
    length=st.floats(1.0, 40.0),
    seed=st.integers(0, 2**16),
    name=st.sampled_from(sorted(DIHEDRAL)),
)
def test_line_opening_max_is_exactly_equivariant_to_flips_and_turns(shape, length, seed, name):
    """With 12 orientations (a multiple of 4), opening a flipped or turned image gives the flipped or turned
    opening, to the grey level, on any shape, odd or even."""
    transform = DIHEDRAL[name]
    image = cv2.GaussianBlur(_random_uint16(seed, shape=shape), (0, 0), 1.5)
    expected = transform(line_opening_max(image, length, 12))
    assert np.array_equal(line_opening_max(np.ascontiguousarray(transform(image)), length, 12), expected)


def test_line_opening_max_keeps_a_line_at_30_degrees():
    """A 1-px digital line 30 degrees off the vertical, 40 px long, survives a 15-px opening along most of its
    length with 12 orientations; with 4 (0, 45, 90, 135 degrees) it is removed."""
    image = np.zeros((61, 61), np.uint16)
    rows = np.arange(10, 50)
    cols = np.round(30 + np.tan(np.radians(30)) * (rows - 30)).astype(int)
    image[rows, cols] = 100
    kept = line_opening_max(image, 15, 12)[rows, cols]
    assert (kept[5:-5] == 100).all()
    assert line_opening_max(image, 15, 4).max() == 0


@settings(max_examples=150, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 24), st.integers(1, 24))))
def test_fill_holes_matches_scipy(mask):
    """fill_holes equals scipy.ndimage.binary_fill_holes (4-connected background) on any small mask."""
    assert np.array_equal(fill_holes(mask), ndi.binary_fill_holes(mask))


def test_fill_holes_diagonal_gap_is_not_a_hole_leak():
    """A hole closed only diagonally (8-connected ring) is still filled: background flows 4-connected."""
    mask = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], bool)
    assert fill_holes(mask)[1, 1]
    assert not fill_holes(mask)[0, 0]


def _hysteresis_reference(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """scikit-image's apply_hysteresis_threshold with 8-connectivity instead of its default 4."""
    labels, _ = ndi.label(image > low, structure=np.ones((3, 3)))
    keep = np.unique(labels[image > high])
    return np.isin(labels, keep[keep > 0])


@settings(max_examples=100, deadline=None)
@given(
    arrays(np.uint8, st.tuples(st.integers(1, 20), st.integers(1, 20)), elements=st.integers(0, 9)),
    st.integers(0, 9),
    st.integers(0, 9),
)
def test_hysteresis_matches_8_connected_skimage_semantics(image, a, b):
    """hysteresis(image > low, image > high) equals skimage's rule with 8-connected regions."""
    low, high = min(a, b), max(a, b)
    assert np.array_equal(hysteresis(image > low, image > high), _hysteresis_reference(image, low, high))


def test_hysteresis_matches_skimage_when_connectivity_is_irrelevant():
    """On blobs that touch only edge-wise, it equals skimage.filters.apply_hysteresis_threshold itself."""
    image = np.zeros((12, 12))
    image[1:5, 1:5] = 0.5
    image[2, 2] = 1.0
    image[7:11, 6:10] = 0.5
    expected = apply_hysteresis_threshold(image, 0.3, 0.8)
    assert np.array_equal(hysteresis(image > 0.3, image > 0.8), expected)
    assert expected[1:5, 1:5].all() and not expected[7:11, 6:10].any()


def test_hysteresis_is_8_connected_unlike_skimage_default():
    """A low region touching a seed only diagonally is kept (skimage's default 4-connectivity would drop it)."""
    image = np.array([[2, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    kept = hysteresis(image > 0.5, image > 1.5)
    assert kept.tolist() == [[True, False, False], [False, True, False], [False, False, True]]
    assert apply_hysteresis_threshold(image, 0.5, 1.5).sum() == 1


@pytest.mark.parametrize("radius", [1, 2, 3.5])
@pytest.mark.parametrize("seed", [0, 1])
def test_binary_open_matches_scipy(radius, seed):
    """binary_open equals scipy's opening by disk_mask(r) with absent border pixels; in the interior it equals
    scipy.ndimage.binary_opening with its default border (zeros outside), which erodes at the image edge."""
    mask = _smooth_mask(seed)
    footprint = disk_mask(radius)
    n = footprint.shape[0] // 2
    opened = binary_open(mask, radius)
    assert opened.dtype == bool
    absent = ndi.binary_dilation(ndi.binary_erosion(mask, footprint, border_value=1), footprint, border_value=0)
    assert np.array_equal(opened, absent)
    inner = (slice(2 * n, -2 * n), slice(2 * n, -2 * n))
    assert np.array_equal(opened[inner], ndi.binary_opening(mask, footprint)[inner])
    assert 0 < opened.sum() < mask.sum()


def test_binary_open_small_radius_is_copy():
    """A radius below 1 leaves the mask unchanged (and returns a copy)."""
    mask = _smooth_mask(3)
    opened = binary_open(mask, 0.9)
    assert np.array_equal(opened, mask) and opened is not mask


@pytest.mark.parametrize("many_small", [False, True])
def test_large_components_equals_area_look_up(many_small):
    """Whichever way the small components are cleared (one by one, or one look-up pass when there are more than
    ``_MAX_COMPONENTS_CLEARED``), the result is the plain definition: each 8-connected component kept when its area
    reaches ``min_area``."""
    rng = np.random.default_rng(7)
    small_counts = []
    for _ in range(40):
        rows, cols = rng.integers(1, 80, 2)
        density = 0.15 if many_small else rng.uniform(0.3, 0.9)
        mask = (rng.random((rows, cols)) < density).astype(np.uint8)
        min_area = int(rng.integers(0, 15))
        _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
        keep = stats[:, cv2.CC_STAT_AREA] >= min_area
        small_counts.append(int((~keep[1:]).sum()))
        keep[0] = False
        result = large_components(mask, min_area)
        assert result.dtype == np.uint8
        assert np.array_equal(result, keep.view(np.uint8)[labels])
    # both ways of clearing were taken
    assert any(count > 64 if many_small else 0 < count <= 64 for count in small_counts)
