"""Tests of calcimg.core.fov: flat shutter regions, collimation bands and marker zones."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from calcimg.core.fov import (
    _row_percentiles,
    collimation_bands,
    field_of_view,
    flat_regions,
    grow_square,
    marker_regions,
    shutter_edges,
)
from symmetries import DIHEDRAL


def _tissue(seed: int = 0, shape: tuple[int, int] = (256, 256)) -> np.ndarray:
    """Noisy 'tissue' (2500 +- 800 in a pattern that varies along every row and column, noise sigma 40)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    field = 2500 + 800 * np.sin(rows / 9.0) * np.sin(cols / 7.0) + rng.normal(0, 40, shape)
    return np.clip(field, 0, 65535).astype(np.uint16)


def test_noisy_tissue_is_all_usable():
    """Noisy tissue alone: nothing flat, no band, the whole image is the field of view."""
    fov = field_of_view(_tissue())
    assert fov.mask.all() and fov.flat_fraction == 0.0 and fov.bands == {}


def test_flat_black_and_white_bands_are_excluded():
    """A flat black band (left, 30 columns) and a flat white band (right, 25) are excluded exactly, tissue kept."""
    image = _tissue()
    image[:, :30] = 0
    image[:, -25:] = 65535
    fov = field_of_view(image)
    assert not fov.mask[:, :30].any()
    assert not fov.mask[:, -25:].any()
    assert fov.mask[:, 30:-25].all()
    assert fov.flat_fraction == pytest.approx(55 / 256)
    assert fov.bands == {}


def test_field_of_view_margin_shrinks_the_field():
    """margin_px erodes the field by that many pixels, the image border counting as outside."""
    image = _tissue()
    image[:, :30] = 0
    fov = field_of_view(image, margin_px=3)
    assert not fov.mask[:, :33].any()
    assert fov.mask[3:-3, 33:-3].all()
    assert not fov.mask[:3].any() and not fov.mask[:, -3:].any()


def test_bright_unexposed_band_is_found():
    """A noisy band brighter than all tissue along the top edge (40 rows) is a collimation band of depth 40."""
    rng = np.random.default_rng(1)
    image = _tissue()
    image[:40] = np.clip(9000 + rng.normal(0, 50, (40, 256)), 0, 65535).astype(np.uint16)
    assert collimation_bands(image, np.ones(image.shape, bool)) == {"top": 40}
    fov = field_of_view(image)
    assert fov.bands == {"top": 40}
    assert not fov.mask[:40].any() and fov.mask[40:].all()


@pytest.mark.parametrize("side", ["top", "bottom", "left", "right"])
def test_bright_band_on_each_side(side):
    """The band is found on whichever side it lies, with its depth (20 pixels)."""
    rng = np.random.default_rng(2)
    image = _tissue(3)
    band = np.clip(9000 + rng.normal(0, 50, (20, 256)), 0, 65535).astype(np.uint16)
    if side == "top":
        image[:20] = band
    elif side == "bottom":
        image[-20:] = band
    elif side == "left":
        image[:, :20] = band.T
    else:
        image[:, -20:] = band.T
    assert collimation_bands(image, np.ones(image.shape, bool)) == {side: 20}


def test_bright_structure_inside_is_not_a_band():
    """A bright block away from the edges (rows through it also cross tissue) is not a band."""
    rng = np.random.default_rng(4)
    image = _tissue()
    image[100:140, 100:140] = np.clip(9000 + rng.normal(0, 50, (40, 40)), 0, 65535).astype(np.uint16)
    assert collimation_bands(image, np.ones(image.shape, bool)) == {}


def test_flat_regions_ignore_small_flat_patches():
    """A flat patch smaller than min_area is not a shutter; a large one is, grown by one pixel."""
    image = _tissue()
    image[10:15, 10:15] = 0  # 25 flat pixels (9 fully flat)
    image[100:150, 100:150] = 0
    flat = flat_regions(image, min_area=64)
    assert not flat[10:15, 10:15].any()
    assert flat[100:150, 100:150].all()
    assert not flat[:99].any() and not flat[151:].any()


def test_fov_to_dict():
    """to_dict gives the inside fraction, the flat fraction, the flat pixels' share of the field and the bands,
    JSON-safe."""
    image = _tissue()
    image[:, :64] = 0
    record = field_of_view(image).to_dict()
    assert record == {
        "fraction_inside": 0.75,
        "flat_fraction": 0.25,
        "flat_pixel_share": 0.0,
        "collimation_bands_px": {},
        "shutter_edges_px": {},
    }


def test_marker_regions_grown_by_a_square_margin():
    """Regions at or above the level of at least min_area pixels, grown by a square margin; lone pixels ignored."""
    image = np.zeros((40, 40), np.uint16)
    image[10:20, 10:14] = 1000
    image[30, 30] = 1000
    zone = grow_square(marker_regions(image, 900, min_area_px=10), 2)
    expected = np.zeros((40, 40), bool)
    expected[8:22, 8:16] = True
    assert np.array_equal(zone, expected)
    assert not grow_square(marker_regions(image, 1001, min_area_px=1), 2).any()


def _tilted_shutter(seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Tissue with a collimator blade's shadow on the right: beyond a line 4 degrees off vertical (40 pixels deep at
    the middle row) a smooth bright ramp, so that no column is a band; and the truth of what lies beyond."""
    rng = np.random.default_rng(seed)
    image = _tissue(seed).astype(np.float64)
    rows, cols = np.mgrid[:256, :256]
    line = 215 + (rows - 127.5) * np.tan(np.radians(4))
    beyond = cols > line
    ramp = 5000 + 30 * (cols - line) + rng.normal(0, 40, image.shape)
    image[beyond] = ramp[beyond]
    return np.clip(image, 0, 65535).astype(np.uint16), beyond


def test_tilted_shutter_shadow_is_excluded():
    """A bright shutter beyond a tilted straight edge is no band, but is found as a shutter edge and excluded; the
    tissue before it is kept (within 2 pixels of the edge, which is blurred on a film)."""
    image, beyond = _tilted_shutter()
    fov = field_of_view(image)
    assert set(fov.shutters) == {"right"}
    rows, cols = np.mgrid[:256, :256]
    distance = np.abs(cols - (215 + (rows - 127.5) * np.tan(np.radians(4))))
    assert not fov.mask[beyond & (distance > 2)].any()
    assert fov.mask[~beyond & (distance > 2)].all()
    assert fov.to_dict()["shutter_edges_px"] == {"right": list(fov.shutters["right"])}


@pytest.mark.parametrize("name", sorted(DIHEDRAL))
def test_shutter_edge_follows_flips_and_turns(name):
    """A flipped or turned film gives the flipped or turned field of view."""
    image, _ = _tilted_shutter()
    transform = DIHEDRAL[name]
    assert np.array_equal(field_of_view(transform(image)).mask, transform(field_of_view(image).mask))


def test_anatomy_beyond_a_straight_edge_is_no_shutter():
    """A bright region beyond a straight edge that holds structure (sharp-edged 'bones') is anatomy, not a blade's
    shadow: nothing is excluded."""
    image = _tissue(6).astype(np.float64)
    image[:, 200:] += 3000
    rows, cols = np.mgrid[:256, :256]
    for centre_row in range(20, 256, 30):
        image[(rows - centre_row) ** 2 + (cols - 228) ** 2 < 81] += 2000
    image = np.clip(image, 0, 65535).astype(np.uint16)
    usable = np.ones(image.shape, bool)
    assert shutter_edges(image, usable) == {}
    assert field_of_view(image).mask.all()
    # the straight edge itself is found: it is the structure beyond it that rules it out
    assert set(shutter_edges(image, usable, max_busy_fraction=1.0)) == {"right"}


@pytest.mark.parametrize("shape", [(1, 400), (400, 1), (2, 300), (11, 500), (12, 12)])
def test_shutter_search_on_a_film_too_thin_for_an_edge(shape):
    """A film one or a few pixels thin (with enough pixels to look at) finds no shutter edge and does not fail."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 4000, shape).astype(np.uint16)
    assert shutter_edges(image, np.ones(shape, bool)) == {}
    assert field_of_view(image).mask.shape == shape


def test_row_percentiles_equal_nanpercentile_row_by_row():
    """The bands' row percentiles equal numpy's nanpercentile of each usable row, bit for bit, with NaN in rows
    with no usable pixel; rows with and without NaN, and all-NaN rows, mixed; at both ends, the middle and between
    two values."""
    rng = np.random.default_rng(0)
    for _ in range(100):
        block = rng.normal(100, 30, (int(rng.integers(1, 40)), int(rng.integers(1, 60)))).astype(np.float32)
        block[rng.random(block.shape) < rng.choice([0.0, 0.05, 0.5, 0.99])] = np.nan
        block[int(rng.integers(0, len(block)))] = np.nan
        usable = ~np.isnan(block).all(axis=1)
        for q in (0.0, 10.0, 50.0, 99.5, 100.0):
            expected = np.full(len(block), np.nan)
            if usable.any():
                expected[usable] = np.nanpercentile(block[usable], q, axis=1)
            np.testing.assert_array_equal(_row_percentiles(block, usable, q), expected)


def test_flat_pixel_share_tells_a_noisy_film_from_a_flattened_one():
    """On noisy tissue hardly any pixel equals all its neighbours; on the same tissue quantised to a few levels
    (what a lossy 8-bit export does to smooth regions) many do."""
    tissue = _tissue()
    assert field_of_view(tissue).flat_pixel_share < 0.01
    coarse = (np.round(tissue / 200.0) * 200).astype(np.uint16)  # flat patches too small to be shutters
    field = field_of_view(coarse)
    assert field.flat_fraction == 0.0 and field.flat_pixel_share > 0.05


def test_grow_square_equals_a_whole_film_dilation():
    """grow_square dilates only the mask's bounding box grown by the margin: the same as dilating the whole film."""
    rng = np.random.default_rng(0)
    for _ in range(100):
        shape = tuple(int(v) for v in rng.integers(1, 60, 2))
        mask = (rng.random(shape) < rng.random() * 0.05).astype(np.uint8)
        for margin in (0, 1, 3, 10, 70):
            square = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * margin + 1, 2 * margin + 1))
            expected = (cv2.dilate(mask, square) if margin and mask.any() else mask).astype(bool)
            assert np.array_equal(grow_square(mask, margin), expected)
