"""Pieces of rejected candidates taken under the other film's lesions (calcimg.core.paired)."""

from __future__ import annotations

import numpy as np
import pytest

from calcimg.core.paired import faint_counterparts, pieces_under_lesions, unconfirmed_candidates


def _stone_on_bone(shape=(60, 120)):
    """A long bone (response 20) with a stone on it (a disk of response 100), one candidate: the bone's."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    bone = (rows >= 22) & (rows < 38) & (cols >= 5) & (cols < 115)
    stone = (rows - 30) ** 2 + (cols - 60) ** 2 <= 6**2
    response = np.where(stone, 100.0, np.where(bone, 20.0, 0.0)).astype(np.float32)
    candidates = (bone | stone).astype(np.int32)
    return response, candidates, stone


def test_the_piece_under_the_other_films_lesion_is_the_stone_not_the_bone():
    response, candidates, stone = _stone_on_bone()
    # the other film's lesion: the stone one pixel smaller (registration and outline differ a little)
    rows, cols = np.mgrid[0:60, 0:120]
    lesion = (rows - 30) ** 2 + (cols - 61) ** 2 <= 5**2
    [piece] = pieces_under_lesions(candidates, response, np.array([False, True]), lesion, 4.0, 0.3)
    assert piece.candidate_id == 1
    taken = np.zeros(stone.shape, bool)
    taken[piece.window] = piece.mask
    np.testing.assert_array_equal(taken, stone)


def test_a_piece_reaches_no_further_than_the_reach_from_the_lesion():
    """A stone that grew beyond the reach is cut at the reach: the piece never runs along the bone."""
    response, candidates, _ = _stone_on_bone()
    response[candidates > 0] = 100.0  # bone as bright as the stone: nothing but the reach limits the piece
    rows, cols = np.mgrid[0:60, 0:120]
    lesion = (rows - 30) ** 2 + (cols - 60) ** 2 <= 3**2
    [piece] = pieces_under_lesions(candidates, response, np.array([False, True]), lesion, 5.0, 0.3)
    taken = np.zeros(lesion.shape, bool)
    taken[piece.window] = piece.mask
    taken_cols = np.flatnonzero(taken.any(axis=0))
    assert taken_cols.min() == 60 - 3 - 5 and taken_cols.max() == 60 + 3 + 5
    assert taken.sum() > lesion.sum()


def test_no_piece_from_an_ineligible_candidate_or_one_the_lesion_barely_touches():
    response, candidates, _ = _stone_on_bone()
    rows, cols = np.mgrid[0:60, 0:120]
    on_stone = (rows - 30) ** 2 + (cols - 60) ** 2 <= 5**2
    assert pieces_under_lesions(candidates, response, np.array([False, False]), on_stone, 4.0, 0.3) == []
    # a lesion mostly beside the bone (less than half of it inside the candidate)
    beside = (rows >= 14) & (rows < 25) & (cols >= 100) & (cols < 104)
    assert pieces_under_lesions(candidates, response, np.array([False, True]), beside, 4.0, 0.3) == []
    assert pieces_under_lesions(candidates, response, np.array([False, True]), np.zeros_like(beside), 4.0, 0.3) == []


def test_pieces_below_the_smallest_area_are_dropped_and_the_fraction_is_checked():
    response, candidates, stone = _stone_on_bone()
    rows, cols = np.mgrid[0:60, 0:120]
    lesion = (rows - 30) ** 2 + (cols - 60) ** 2 <= 5**2
    eligible = np.array([False, True])
    assert pieces_under_lesions(candidates, response, eligible, lesion, 4.0, 0.3, min_area_px=int(stone.sum()))
    assert not pieces_under_lesions(candidates, response, eligible, lesion, 4.0, 0.3, min_area_px=int(stone.sum()) + 1)
    for fraction in (0.0, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            pieces_under_lesions(candidates, response, eligible, lesion, 4.0, fraction)


def test_no_piece_of_a_bone_where_nothing_rises_above_the_rest_of_it():
    """Under a lesion that is new on the other film, the bone of this film (its response textured, no deposit)
    gives no piece: the part under the lesion does not stand out from the rest of the bone. With a stone there,
    it does."""
    response, candidates, stone = _stone_on_bone()
    rng = np.random.default_rng(0)
    bone = candidates > 0
    response[bone] = rng.normal(50.0, 10.0, int(bone.sum())).clip(1, None)
    rows, cols = np.mgrid[0:60, 0:120]
    lesion = (rows - 30) ** 2 + (cols - 60) ** 2 <= 5**2
    eligible = np.array([False, True])
    assert pieces_under_lesions(candidates, response, eligible, lesion, 4.0, 0.3) == []
    response[stone] += 100.0
    [piece] = pieces_under_lesions(candidates, response, eligible, lesion, 4.0, 0.3)
    taken = np.zeros(stone.shape, bool)
    taken[piece.window] = piece.mask
    assert (taken & stone).sum() == stone.sum() and (taken & ~stone).sum() < stone.sum()


def _faint_disk_film(rise: float, seed: int = 0, centre=(50, 50), radius=15):
    """A flat field with noise 4 and a disk rising ``rise`` above it."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:100, 0:100]
    disk = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2
    return (1000 + rise * disk + rng.normal(0, 4, disk.shape)).astype(np.uint16), disk


def _counterparts(image, other, own=None, bone=None, min_lesion_px=100):
    nothing = np.zeros(image.shape, bool)
    return faint_counterparts(
        image,
        other.astype(np.int32),
        nothing if own is None else own,
        nothing,
        np.ones(image.shape, bool),
        nothing if bone is None else bone,
        reach_px=6,
        ring_px=8,
        smoothing_px=1.0,
        min_lesion_px=min_lesion_px,
    )


def test_no_counterpart_where_the_deposit_resolved_or_this_film_has_a_lesion_or_the_lesion_is_small():
    image, disk = _faint_disk_film(20.0)
    flat, _ = _faint_disk_film(0.0)
    assert _counterparts(flat, disk) == []  # nothing rises: resolved
    assert len(_counterparts(image, disk)) == 1
    own = np.zeros(disk.shape, bool)
    own[50, 62] = True  # a lesion of this film within reach: matching decides, not looking
    assert _counterparts(image, disk, own=own) == []
    assert _counterparts(image, disk, min_lesion_px=int(disk.sum()) + 1) == []


def test_no_counterpart_that_lies_mostly_beside_the_other_films_lesion_or_with_its_ring_on_bone():
    image, disk = _faint_disk_film(20.0, radius=10)
    # the other film's lesion covers only the disk's left edge: most of what rises lies beside it
    cols = np.mgrid[0:100, 0:100][1]
    edge = disk & (cols <= 43)
    assert _counterparts(image, edge, min_lesion_px=10) == []
    assert len(_counterparts(image, disk, min_lesion_px=10)) == 1
    bone = np.zeros(disk.shape, bool)
    bone[:, 60:] = True  # bone under a part of the ring: a plane does not model a bone's edge
    assert _counterparts(image, disk, bone=bone, min_lesion_px=10) == []


def _two_lesions() -> tuple[np.ndarray, np.ndarray]:
    """Lesion 1 made of candidates 1 and 2; lesion 2 of candidate 3 and a hole-filled pixel on no candidate."""
    labels = np.array([[1, 1, 1, 0, 2, 2, 2]])
    candidates = np.array([[1, 1, 2, 0, 3, 0, 3]])
    return labels, candidates


def test_an_unmatched_lesion_is_judged_by_its_best_candidate():
    labels, candidates = _two_lesions()
    own = np.ones(3, bool)
    scores = np.array([0.95, 0.995, 0.96])
    # Lesion 1 holds a candidate above the bar, so both of its candidates stand; lesion 2 does not.
    assert unconfirmed_candidates(np.array([1, 2]), labels, candidates, scores, own, 0.99).tolist() == [
        False,
        False,
        True,
    ]
    # Only the lesions named unmatched are judged.
    assert not unconfirmed_candidates(np.array([1]), labels, candidates, scores, own, 0.99).any()
    assert unconfirmed_candidates(np.array([1, 2]), labels, candidates, scores, own, 0.999).tolist() == [
        True,
        True,
        True,
    ]


def test_lesions_on_the_other_films_evidence_or_without_a_score_are_left_alone():
    labels, candidates = _two_lesions()
    scores = np.array([0.95, 0.95, 0.95])
    borrowed = np.array([True, False, True])  # candidate 2 was accepted on the other film's support
    assert unconfirmed_candidates(np.array([1, 2]), labels, candidates, scores, borrowed, 0.99).tolist() == [
        False,
        False,
        True,
    ]
    unscored = np.array([0.95, 0.95, np.nan])
    assert unconfirmed_candidates(np.array([1, 2]), labels, candidates, unscored, np.ones(3, bool), 0.99).tolist() == [
        True,
        True,
        False,
    ]
    # A piece or a faint counterpart (pixels on no accepted candidate of this film) keeps its lesion.
    piece_labels = np.array([[1, 1, 0]])
    piece_candidates = np.array([[0, 0, 0]])
    assert not unconfirmed_candidates(
        np.array([1]), piece_labels, piece_candidates, np.array([]), np.array([], bool), 0.99
    ).any()
