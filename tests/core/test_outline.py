"""Outlines completed against a plane fitted around each lesion (calcimg.core.outline)."""

from __future__ import annotations

import numpy as np
import pytest

from calcimg.core.outline import OutlineSettings, grow_to_local_background

SETTINGS = OutlineSettings(
    ring_inner_px=4, ring_outer_px=9, reach_px=5, fraction=0.1, ring_k=2.0, min_area_px=30, smoothing_px=1.0
)


def _dome(rows: np.ndarray, cols: np.ndarray, centre: tuple[float, float], radius: float) -> np.ndarray:
    """The phantoms' deposit profile: thickness ``sqrt(1 - rho**2)`` inside the disk, 0 outside."""
    rho2 = ((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / radius**2
    return np.sqrt(np.clip(1.0 - rho2, 0.0, None))


def _ramp_with_disk(seed: int = 0, slope: float = 8.0, excess: float = 150.0, noise: float = 4.0):
    """A tissue ramp falling to the right with one dome-shaped deposit, and Gaussian noise."""
    rows, cols = np.mgrid[0:120, 0:120]
    dome = _dome(rows, cols, (60, 60), 14.5)
    rng = np.random.default_rng(seed)
    image = 2000 - slope * cols + excess * dome + rng.normal(0, noise, dome.shape)
    return np.clip(image, 0, 65535).astype(np.uint16), dome > 0


def _everywhere(shape):
    return np.ones(shape, bool)


def test_a_deposit_on_a_slope_gets_its_downhill_rim_back():
    image, disk = _ramp_with_disk()
    cols = np.arange(120)[None, :]
    short = (disk & (cols < 70)).astype(np.int32)  # the downhill rim (the right-hand 5 columns) is missing
    grown, added = grow_to_local_background(short, image, disk, _everywhere(disk.shape), ~_everywhere(disk.shape),
                                            SETTINGS)  # fmt: skip
    found = grown == 1
    assert (found & short.astype(bool)).sum() == short.sum()  # nothing removed
    assert (disk & ~found).sum() <= 0.02 * disk.sum()  # the rim is back
    assert (found & ~disk).sum() <= 0.05 * disk.sum()  # and the tissue beside it is not taken (its blurred skirt)
    assert added[1] == found.sum() - short.sum() > 0


def test_an_outline_that_is_whole_does_not_grow_into_noise():
    image, disk = _ramp_with_disk(seed=1)
    _, added = grow_to_local_background(disk.astype(np.int32), image, disk, _everywhere(disk.shape),
                                        ~_everywhere(disk.shape), SETTINGS)  # fmt: skip
    assert added[1] <= 0.05 * disk.sum()  # the blurred skirt of its edge, at most


@pytest.mark.parametrize("reason", ["ring leaves the surround", "ring on bone", "too small"])
def test_lesions_whose_surround_a_plane_does_not_describe_keep_their_outline(reason):
    image, disk = _ramp_with_disk()
    cols = np.arange(120)[None, :]
    short = (disk & (cols < 70)).astype(np.int32)
    surround = _everywhere(disk.shape)
    bone = ~_everywhere(disk.shape)
    settings = SETTINGS
    if reason == "ring leaves the surround":
        surround[:, 66:] = False  # a skin edge cutting the deposit: over 30 % of its ring is outside
    elif reason == "ring on bone":
        bone[:, :60] = True
    else:
        settings = OutlineSettings(**{**SETTINGS.__dict__, "min_area_px": int(short.sum()) + 1})
    grown, added = grow_to_local_background(short, image, disk, surround, bone, settings)
    np.testing.assert_array_equal(grown, short)
    assert added.sum() == 0


def test_a_ring_cut_in_part_by_the_field_edge_is_fitted_on_the_part_inside():
    """A skin edge just beyond the deposit takes a fifth of the ring: the plane fitted to the rest gives back the
    same rim, within a few pixels, as the whole ring does."""
    image, disk = _ramp_with_disk()
    cols = np.arange(disk.shape[1])[None, :]
    short = (disk & (cols < 70)).astype(np.int32)
    surround, no_bone = _everywhere(disk.shape), ~_everywhere(disk.shape)
    whole, added_whole = grow_to_local_background(short, image, disk, surround, no_bone, SETTINGS)
    surround[:, 75:] = False
    cut, added_cut = grow_to_local_background(short, image, disk, surround, no_bone, SETTINGS)
    assert added_whole[1] > 50
    assert abs(int(added_cut[1]) - int(added_whole[1])) <= 5
    assert ((cut > 0) & ~(whole > 0)).sum() <= 5  # nothing the whole ring would not take


def test_a_pixel_two_lesions_could_take_goes_to_neither_and_flips_commute():
    rows, cols = np.mgrid[0:100, 0:140]
    left_dome, right_dome = _dome(rows, cols, (50, 55), 12.5), _dome(rows, cols, (50, 84), 12.5)
    left, right = left_dome > 0, right_dome > 0
    bridge = (np.abs(rows - 50) <= 2) & (cols >= 60) & (cols <= 80)
    rng = np.random.default_rng(2)
    relief = np.maximum(np.maximum(left_dome, right_dome), 0.5 * bridge)
    image = (1500 + 200 * relief + rng.normal(0, 3, left.shape)).astype(np.uint16)
    labels = np.zeros(left.shape, np.int32)
    labels[left & (cols < 64)] = 1
    labels[right & (cols > 76)] = 2
    occupied = left | right | bridge
    settings = OutlineSettings(**{**SETTINGS.__dict__, "reach_px": 8})
    none, ones = ~_everywhere(left.shape), _everywhere(left.shape)
    grown, _ = grow_to_local_background(labels, image, occupied, ones, none, settings)
    # Lesion 1 reaches column 71, lesion 2 column 69: the columns within reach of both are nobody's.
    assert not (grown[50, 69:72] > 0).any()
    assert (grown[50, 64:69] == 1).all() and (grown[50, 72:77] == 2).all()
    flipped, _ = grow_to_local_background(labels[:, ::-1], image[:, ::-1], occupied[:, ::-1], ones, none, settings)
    np.testing.assert_array_equal(flipped[:, ::-1] > 0, grown > 0)


def test_no_lesion_gives_an_empty_result():
    image, disk = _ramp_with_disk()
    labels = np.zeros(disk.shape, np.int32)
    grown, added = grow_to_local_background(labels, image, disk, _everywhere(disk.shape), disk, SETTINGS)
    assert not grown.any() and added.tolist() == [0]


def test_completing_in_place_gives_what_a_copy_gives():
    """``out=labels`` writes into the labels themselves (the pipeline's way, saving a full-size copy), and the
    candidates' own label map serves as ``occupied``: the same result as a new array and a bool mask."""
    rows, cols = np.mgrid[0:100, 0:140]
    left_dome, right_dome = _dome(rows, cols, (50, 55), 12.5), _dome(rows, cols, (50, 84), 12.5)
    image = 1500 + 200 * np.maximum(left_dome, right_dome) + np.random.default_rng(3).normal(0, 3, rows.shape)
    image = image.astype(np.uint16)
    labels = np.zeros(rows.shape, np.int32)
    labels[(left_dome > 0) & (cols < 62)] = 1
    labels[(right_dome > 0) & (cols > 78)] = 2
    candidates = np.where(left_dome > 0, 1, np.where(right_dome > 0, 2, 0)).astype(np.int32)
    ones = _everywhere(rows.shape)
    settings = OutlineSettings(**{**SETTINGS.__dict__, "reach_px": 8})
    copied, added_copy = grow_to_local_background(labels, image, candidates > 0, ones, ~ones, settings)
    assert added_copy[1] > 0 and added_copy[2] > 0
    in_place = labels.copy()
    result, added = grow_to_local_background(in_place, image, candidates, ones, ~ones, settings, out=in_place)
    assert result is in_place
    np.testing.assert_array_equal(in_place, copied)
    np.testing.assert_array_equal(added, added_copy)
