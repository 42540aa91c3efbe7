"""Tests of calcimg.core.measure against scikit-image's regionprops and exact geometry."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull
from skimage.measure import regionprops

from calcimg.core.measure import (
    ObjectPixels,
    flat_fractions,
    hysteresis_trimmed,
    label_objects,
    label_objects_compact,
    neighbour_fraction,
    object_maxima,
    object_means,
    object_moments,
    object_solidity,
    object_widths,
    trim_to_peak_fraction,
)
from calcimg.core.morphology import disk_mask, hysteresis


def _random_labels(seed: int) -> tuple[np.ndarray, int]:
    """A random 8-connected label image of a few dozen blobs of varied shape."""
    rng = np.random.default_rng(seed)
    mask = ndi.gaussian_filter(rng.standard_normal((120, 140)), 2.5) > 0.12
    return label_objects(mask)


def _pixel_square_solidity(mask: np.ndarray) -> float:
    """Area over the area of the convex hull of the pixel squares (corners at +-0.5)."""
    rr, cc = np.nonzero(mask)
    corners = np.concatenate([np.column_stack([rr + dr, cc + dc]) for dr in (-0.5, 0.5) for dc in (-0.5, 0.5)])
    return float(mask.sum() / ConvexHull(corners).volume)


def test_label_objects_is_8_connected_raster_order():
    """Diagonal neighbours join; ids follow the raster order of each object's first pixel; int32."""
    labels, n = label_objects(np.array([[0, 0, 1], [1, 1, 0], [0, 0, 0], [0, 1, 1]], bool))
    assert n == 2 and labels.dtype == np.int32
    assert labels.tolist() == [[0, 0, 1], [1, 1, 0], [0, 0, 0], [0, 2, 2]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_object_moments_area_centroid_bbox_match_regionprops(seed):
    """Area, centroid and (exclusive) bounding box equal skimage.measure.regionprops for every object."""
    labels, n = _random_labels(seed)
    assert n > 10
    moments = object_moments(labels, n)
    props = regionprops(labels)
    assert [p.label for p in props] == list(range(1, n + 1))
    assert np.array_equal(moments["area_px"], [p.area for p in props])
    assert np.allclose(moments["centroid_row"], [p.centroid[0] for p in props], rtol=0, atol=1e-9)
    assert np.allclose(moments["centroid_col"], [p.centroid[1] for p in props], rtol=0, atol=1e-9)
    boxes = np.column_stack([moments[k] for k in ("bbox_row0", "bbox_col0", "bbox_row1", "bbox_col1")])
    assert np.array_equal(boxes, [p.bbox for p in props])


@pytest.mark.parametrize("seed", [0, 1])
def test_object_moments_axes_match_regionprops(seed):
    """Major / minor axis lengths and eccentricity equal skimage's (the docstring's definition)."""
    labels, n = _random_labels(seed)
    moments = object_moments(labels, n)
    props = regionprops(labels)
    assert np.allclose(moments["major_axis_px"], [p.axis_major_length for p in props], rtol=1e-9, atol=1e-9)
    assert np.allclose(moments["minor_axis_px"], [p.axis_minor_length for p in props], rtol=1e-9, atol=1e-9)
    assert np.allclose(moments["eccentricity"], [p.eccentricity for p in props], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_object_moments_axes_close_to_regionprops(seed):
    """Axis lengths are within 4 * sqrt(1/12) = 1.155 px of skimage's (the most a one-pixel moment term can add)
    and ordered major >= minor; eccentricity lies in [0, 1] (1 for a one-pixel line, as in skimage)."""
    labels, n = _random_labels(seed)
    moments = object_moments(labels, n)
    props = regionprops(labels)
    bound = 4 * np.sqrt(1 / 12) + 1e-9
    assert np.abs(moments["major_axis_px"] - [p.axis_major_length for p in props]).max() <= bound
    assert np.abs(moments["minor_axis_px"] - [p.axis_minor_length for p in props]).max() <= bound
    assert (moments["major_axis_px"] >= moments["minor_axis_px"]).all()
    assert ((moments["eccentricity"] >= 0) & (moments["eccentricity"] <= 1)).all()


def _bars() -> np.ndarray:
    """Four 1-px bars: horizontal (1), vertical (2), down-right on screen (3), up-right on screen (4)."""
    labels = np.zeros((40, 40), np.int32)
    labels[2, 2:12] = 1
    labels[5:15, 20] = 2
    idx = np.arange(8)
    labels[20 + idx, 2 + idx] = 3  # rows and columns grow together
    labels[37 - idx, 20 + idx] = 4
    return labels


@pytest.mark.parametrize("seed", [0, 1])
def test_object_moments_orientation_matches_regionprops(seed):
    """orientation_deg is skimage's orientation in degrees (objects with equal eigenvalues have none: skipped)."""
    labels, n = _random_labels(seed)
    moments = object_moments(labels, n)
    props = regionprops(labels)
    eig = np.array([p.inertia_tensor_eigvals for p in props])
    defined = eig[:, 0] - eig[:, 1] > 1e-6
    expected = np.degrees([p.orientation for p in props])
    gap = (moments["orientation_deg"] - expected) % 180  # skimage may give -90 where (-90, 90] gives 90
    assert np.allclose(np.minimum(gap, 180 - gap)[defined], 0, atol=1e-7)
    assert np.allclose(object_moments(_bars(), 4)["orientation_deg"], [90, 0, 45, -45])


def test_object_moments_orientation_is_an_axis_angle():
    """Whatever the zero direction: angles lie in (-90, 90], a horizontal and a vertical bar are 90 degrees apart,
    the two diagonals are 90 apart and 45 from the horizontal, and there is no -0.0."""
    got = object_moments(_bars(), 4)["orientation_deg"]

    def apart(a: float, b: float) -> float:
        d = abs(a - b) % 180
        return min(d, 180 - d)

    assert ((got > -90) & (got <= 90)).all()
    assert apart(got[0], got[1]) == pytest.approx(90)
    assert apart(got[2], got[3]) == pytest.approx(90)
    assert apart(got[0], got[2]) == pytest.approx(45) and apart(got[0], got[3]) == pytest.approx(45)
    assert not np.signbit(got[got == 0]).any()


def test_object_moments_missing_label_is_zero():
    """A label id with no pixels gets area 0 and a zero box rather than an error."""
    labels = np.zeros((5, 5), np.int32)
    labels[1, 1] = 2
    moments = object_moments(labels, 2)
    assert moments["area_px"].tolist() == [0, 1]
    assert [moments[k][0] for k in ("bbox_row0", "bbox_col0", "bbox_row1", "bbox_col1")] == [0, 0, 0, 0]


def test_object_means_and_maxima():
    """Per-object mean and maximum of a value image."""
    labels = np.array([[1, 1, 0], [0, 2, 2], [0, 0, 2]], np.int32)
    values = np.array([[1, 3, 100], [100, 4, 5], [100, 100, 9]], np.uint16)
    assert object_means(labels, 2, values).tolist() == [2.0, 6.0]
    assert object_maxima(labels, 2, values).tolist() == [3.0, 9.0]
    assert object_maxima(np.zeros((3, 3), np.int32), 0, values).shape == (0,)


@pytest.mark.parametrize("radius", [2, 3, 5, 8, 12, 20])
def test_object_widths_of_disk(radius):
    """A digital disk of radius r is between 2r - 1 and 2r + 1 wide.

    Its pixels reach r + 0.5 along the axes (2r + 1 across), but its staircase edge comes closer to the centre at
    the first step, so the largest inscribed disk of the pixel squares is a little under 2r: r = 5 gives 9.2,
    r = 20 gives 39.05.
    """
    labels = np.pad(disk_mask(radius).astype(np.int32), 3)
    width = object_widths(labels, 1)
    assert 2 * radius - 1 <= width[0] <= 2 * radius + 1


@pytest.mark.parametrize("length", [1, 5, 30])
def test_object_widths_of_one_pixel_lines(length):
    """A one-pixel line is 1 wide, whatever its length and direction (horizontal, vertical, diagonal)."""
    labels = np.zeros((40, 40), np.int32)
    labels[2, 3 : 3 + length] = 1
    labels[5 : 5 + length, 38] = 2
    idx = np.arange(length)
    labels[8 + idx, 2 + idx] = 3 if length > 1 else 0
    n = 3 if length > 1 else 2
    assert np.allclose(object_widths(labels, n), 1.0)


@pytest.mark.parametrize("side", [3, 5, 7, 9])
def test_object_widths_of_odd_squares(side):
    """A filled odd square of side s is exactly s wide; objects touching the image edge count the edge as outside."""
    labels = np.zeros((12, 12), np.int32)
    labels[:side, :side] = 1
    assert object_widths(labels, 1)[0] == pytest.approx(side, abs=1e-4)


def test_object_solidity_square_is_one():
    """A filled square (and any axis-aligned rectangle) has solidity exactly 1."""
    labels = np.zeros((20, 20), np.int32)
    labels[2:8, 2:8] = 1
    labels[10:13, 4:19] = 2
    moments = object_moments(labels, 2)
    assert object_solidity(labels, 2, moments).tolist() == [1.0, 1.0]


def test_object_solidity_tiny_objects_are_one():
    """Objects of fewer than three pixels are given solidity 1."""
    labels = np.zeros((6, 6), np.int32)
    labels[1, 1] = 1
    labels[3, 3:5] = 2
    assert object_solidity(labels, 2, object_moments(labels, 2)).tolist() == [1.0, 1.0]


def _l_shape() -> np.ndarray:
    mask = np.zeros((14, 14), bool)
    mask[2:12, 2:5] = True
    mask[9:12, 2:12] = True
    return mask


def test_object_solidity_l_shape_close_to_reference():
    """An L (arms 10 x 3, area 51) is within 0.04 of both references.

    scikit-image's solidity counts the pixels whose centres fall in the hull of the pixel corners (0.708 here);
    the area of the hull of the pixel squares themselves gives 0.675; calcimg gives 0.694.
    """
    mask = _l_shape()
    labels = mask.astype(np.int32)
    solidity = object_solidity(labels, 1, object_moments(labels, 1))[0]
    assert solidity == pytest.approx(regionprops(labels)[0].solidity, abs=0.04)
    assert solidity == pytest.approx(_pixel_square_solidity(mask), abs=0.04)
    assert solidity < 0.75


@pytest.mark.parametrize("shape", ["L", "triangle", "plus"])
def test_object_solidity_equals_pixel_square_hull(shape):
    """Solidity is area over the hull of the pixel squares, exactly (the docstring's definition)."""
    if shape == "L":
        mask = _l_shape()
    elif shape == "triangle":
        mask = np.pad(np.tril(np.ones((15, 15), bool)), 2)
    else:
        mask = np.zeros((13, 13), bool)
        mask[5:8, 2:11] = True
        mask[2:11, 5:8] = True
    labels = mask.astype(np.int32)
    solidity = object_solidity(labels, 1, object_moments(labels, 1))[0]
    assert solidity == pytest.approx(_pixel_square_solidity(mask), rel=1e-6)


def test_neighbour_fraction_tells_a_crowd_from_a_lone_candidate():
    """Other objects' cover of a window around each object: near zero for one alone, large in a crowd, and never
    counting the object itself."""
    mask = np.zeros((200, 200), bool)
    mask[20:24, 20:24] = True  # alone
    for r in range(120, 160, 6):  # a crowd of 4 x 4 specks, 2 px apart
        for c in range(120, 160, 6):
            mask[r : r + 4, c : c + 4] = True
    lone, crowded = neighbour_fraction(mask, np.array([[21.5, 21.5], [139.5, 139.5]]), np.array([16, 16]), 40.0)
    assert lone == pytest.approx(0.0, abs=0.02)
    assert crowded > 0.3


def test_flat_fractions_match_the_plain_definition():
    """A pixel is flat when its 3x3 neighbourhood (edges repeated beyond the image) holds one value: the fraction
    per object equals that of a grey erosion equal to the dilation, on noise with flat plateaus (one at a corner)."""
    rng = np.random.default_rng(3)
    image = rng.integers(100, 104, (60, 70)).astype(np.uint16)
    image[10:30, 5:25] = 500
    image[0:12, 55:70] = 700
    image[40:44, 40:60] = 300
    labels, n = _random_labels(4)
    labels = labels[:60, :70]
    labels[10:30, 5:25] = labels.max() + 1
    labels, n = label_objects(labels > 0)
    footprint = np.ones((3, 3), bool)
    flat = ndi.grey_erosion(image, footprint=footprint, mode="nearest") == ndi.grey_dilation(
        image, footprint=footprint, mode="nearest"
    )
    expected = np.array([flat[labels == k].mean() for k in range(1, n + 1)])
    got = flat_fractions(ObjectPixels.of(labels, n), image)
    np.testing.assert_allclose(got, expected)
    assert got.max() > 0.5  # the plateau's object is mostly flat
    assert np.median(got) < 0.05  # noise is not


def test_flat_fractions_of_noise_are_zero():
    """Noise of a few grey levels has (almost) no pixel equal to all its neighbours."""
    rng = np.random.default_rng(5)
    image = rng.normal(1000, 20, (80, 80)).astype(np.uint16)
    labels, n = _random_labels(6)
    labels, n = label_objects(labels[:80, :80] > 0)
    assert flat_fractions(ObjectPixels.of(labels, n), image).max() == 0.0


def _random_masks(seed: int, count: int):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        shape = tuple(int(v) for v in rng.integers(1, 60, 2))
        yield rng, rng.random(shape) < rng.random()


def test_label_objects_compact_numbers_as_label_objects_in_uint16_until_it_overflows():
    for _, mask in _random_masks(0, 50):
        compact, n = label_objects_compact(mask)
        labels, n_plain = label_objects(mask)
        assert compact.dtype == np.uint16 and n == n_plain
        assert np.array_equal(compact, labels)
    many = np.zeros((600, 600), bool)
    many[::2, ::2] = True  # 90,000 separate pixels: more than uint16 can number
    compact, n = label_objects_compact(many)
    assert n == 90_000 and compact.dtype == np.int32
    assert np.array_equal(compact, label_objects(many)[0])


def test_on_rim_is_what_a_3x3_erosion_clears():
    for _, mask in _random_masks(1, 80):
        labels, n = label_objects(mask)
        pixels = ObjectPixels.of(labels, n)
        eroded = ndi.binary_erosion(labels > 0, np.ones((3, 3), bool), border_value=0)
        assert np.array_equal(pixels.on_rim(labels), ~pixels.values(eroded))


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.5])
def test_hysteresis_trimmed_equals_hysteresis_then_trim(fraction):
    for rng, low in _random_masks(2, 60):
        values = rng.integers(0, 1000, low.shape).astype(np.uint16)
        high = low & (values > 900)
        expected = trim_to_peak_fraction(hysteresis(low, high), values, fraction)
        made = []

        def make(values=values, made=made):
            made.append(1)
            return values

        assert np.array_equal(hysteresis_trimmed(low, high, make, fraction), expected)
        assert len(made) == (1 if fraction > 0 else 0)  # the values are made once, and only when needed
