"""What one film's lesions say about the other film, in a comparison of two films.

A deposit that one film shows on its own can, on the other film, be part of a larger candidate that was rejected
as a whole: a stone that grew onto a finger bone and merged with the bone's candidate, a deposit beside a lead
letter inside the marker's zone, a sheet whose candidate runs on along the skin as a ridge. A reader comparing
the two films looks at the same place on both and outlines the deposit there; :func:`pieces_under_lesions` does
the same: under each lesion of the other film it takes from the rejected candidate the part that rises to a
share of the candidate's peak there, within a reach of the lesion. The candidate stays rejected; its piece is
accepted as a lesion of its own film, measured on that film's own pixels.

A large deposit can also be missed on one film altogether (no candidate covers it: a mass too faint on that film)
while the other film shows it. :func:`faint_counterparts` looks, where a large lesion of the other film
matches nothing, for what rises above a plane fitted to the surround on this film, as the outline completion
(:mod:`calcimg.core.outline`) does around a lesion, and takes it when it rises clearly and lies mostly under the
other film's lesion.

The other film also weighs against a lesion. A lesion that matches nothing on the other film, whose place that
film sees, is called new or resolved; a false detection on one film is called so too, since false detections
rarely repeat at the same place. :func:`unconfirmed_candidates` names the candidates of such lesions whose
learned score falls short of a stricter bar than a single film's: a change needs stronger evidence than a
detection that the other film confirms.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from calcimg.core.measure import ObjectPixels, object_windows
from calcimg.core.morphology import disk_kernel
from calcimg.core.outline import ring_plane, smoothed_window

#: The share of the other film's lesion that must lie inside one rejected candidate for a piece to be taken from it.
MIN_SHARE_INSIDE = 0.5
#: A piece that is less than half of its candidate must stand out from the rest of it: its mean response reaches
#: this percentile of the rest's. A deposit on a bone rises above nearly all of the bone; the densest part of a
#: bone (under a deposit that is new on the other film) does not.
REST_PERCENTILE = 90.0
#: A faint counterpart must rise, in median over the other film's lesion, this many robust spreads of the ring's
#: residuals above the ring's plane.
COUNTERPART_MIN_RISE = 3.0
#: Its pixels rise to this share of the 95th percentile of the rise under the other film's lesion (half maximum).
COUNTERPART_FRACTION = 0.5
#: At least this share of the counterpart lies under the other film's lesion (the deposit is where it was seen).
COUNTERPART_MIN_SHARE_UNDER = 2.0 / 3.0
#: Its ring (beyond the reach) must lie at least this much on free tissue of the field, and at most this much on
#: bone (a plane does not model a bone's edge), as for the outline completion.
COUNTERPART_MIN_RING_FREE = 0.7
COUNTERPART_MAX_RING_BONE = 0.05


class Piece(NamedTuple):
    """Pixels of one film accepted as a lesion on the other film's evidence: a part of a rejected candidate, or a
    faint counterpart.

    Attributes
    ----------
    candidate_id : int
        The candidate it is taken from (its value in the candidate label map); 0 for a faint counterpart, which
        lies on no candidate.
    window : tuple of slice
        Where ``mask`` lies in the film.
    mask : numpy.ndarray
        bool, the piece's pixels within ``window``.
    """

    candidate_id: int
    window: tuple[slice, slice]
    mask: np.ndarray


def pieces_under_lesions(
    candidates: np.ndarray,
    response: np.ndarray,
    eligible: np.ndarray,
    lesions: np.ndarray,
    reach_px: float,
    fraction: float,
    min_area_px: int = 1,
    pixels: ObjectPixels | None = None,
) -> list[Piece]:
    """Pieces of rejected candidates that lie under the other film's lesions.

    For each connected lesion of ``lesions`` that lies at least :data:`MIN_SHARE_INSIDE` inside one eligible
    candidate, the piece is the part of that candidate within ``reach_px`` of the lesion whose response reaches
    ``fraction`` of the candidate's peak response under the lesion: of its connected parts, the one sharing most
    pixels with the lesion (one deposit, one piece). Pieces smaller than ``min_area_px`` are dropped, and so is a
    piece that is less than half of its candidate unless it stands out from the rest (:data:`REST_PERCENTILE`).

    Parameters
    ----------
    candidates : numpy.ndarray
        int candidate label map of this film (0 background).
    response : numpy.ndarray
        This film's response (what rises above the local background), same shape.
    eligible : numpy.ndarray
        bool per candidate id ``1..n`` (index 0 unused): the candidates a piece may be taken from.
    lesions : numpy.ndarray
        bool, the other film's accepted lesions carried into this film's frame.
    reach_px : float
        How far from the other film's lesion a piece may extend (the deposit may have grown), in pixels.
    fraction : float
        Share of the peak response under the lesion that the piece's pixels reach (0 < fraction <= 1).
    min_area_px : int
        Smallest piece kept, in pixels.
    pixels : ObjectPixels, optional
        The candidates' pixels, when already gathered (:meth:`ObjectPixels.of` of ``candidates``).

    Returns
    -------
    list of Piece
        In the order of the other film's lesions (raster order of their first pixel); two lesions over one
        candidate give two pieces, which may overlap.

    Examples
    --------
    A bright spot on a long, fainter band that was rejected as a whole; the other film's lesion lies on the spot:

    >>> response = np.zeros((20, 40), np.float32)
    >>> response[8:12, 2:38] = 10.0
    >>> response[7:13, 18:24] = 50.0
    >>> candidates = (response > 5).astype(np.int32)
    >>> lesions = np.zeros((20, 40), bool)
    >>> lesions[8:12, 19:23] = True
    >>> [piece] = pieces_under_lesions(candidates, response, np.array([False, True]), lesions, 3.0, 0.3)
    >>> piece.candidate_id, int(piece.mask.sum())
    (1, 36)
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    lesions = np.ascontiguousarray(lesions, dtype=bool)
    touched = np.unique(candidates[lesions])
    if not eligible[touched[touched > 0]].any():
        return []  # the common case, found in one pass: no lesion touches a candidate a piece may come from
    _, lesion_labels = cv2.connectedComponents(lesions.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    if pixels is None:
        pixels = ObjectPixels.of(candidates, int(candidates.max(initial=0)))
    reach = disk_kernel(reach_px)
    pad = int(np.ceil(reach_px)) + 1
    pieces = []
    for lesion_id, window in object_windows(lesion_labels, pad):
        lesion = lesion_labels[window] == lesion_id
        under = candidates[window][lesion]
        ids, counts = np.unique(under[under > 0], return_counts=True)
        inside = counts >= MIN_SHARE_INSIDE * lesion.sum()
        ids = ids[inside & eligible[ids]]
        if not len(ids):
            continue
        near = cv2.dilate(lesion.view(np.uint8), reach) > 0
        values = response[window]
        for candidate_id in ids:
            candidate = candidates[window] == candidate_id
            peak = float(values[lesion & candidate].max())
            if peak <= 0:
                continue  # nothing rises under the lesion
            rising = near & candidate & (values >= fraction * peak)
            _, parts = cv2.connectedComponents(rising.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
            shared = np.bincount(parts[lesion & rising])
            shared[0] = 0
            piece = parts == int(np.argmax(shared))
            if int(piece.sum()) >= min_area_px and _stands_out(piece, window, candidates.shape, response, pixels,
                                                                int(candidate_id)):  # fmt: skip
                pieces.append(Piece(int(candidate_id), window, piece))
    return pieces


def _stands_out(
    piece: np.ndarray,
    window: tuple[slice, slice],
    shape: tuple[int, ...],
    response: np.ndarray,
    pixels: ObjectPixels,
    candidate_id: int,
) -> bool:
    """Whether a piece is most of its candidate or its mean response reaches the rest's :data:`REST_PERCENTILE`."""
    rows, cols = np.nonzero(piece)
    inside = np.ravel_multi_index((rows + window[0].start, cols + window[1].start), shape[:2])
    candidate = pixels.positions(candidate_id)
    rest = np.setdiff1d(candidate, inside, assume_unique=True)
    if len(rest) <= len(inside):
        return True
    flat = response.ravel()
    return float(flat[inside].mean()) >= float(np.percentile(flat[rest], REST_PERCENTILE))


def faint_counterparts(
    image: np.ndarray,
    other_labels: np.ndarray,
    own_lesions: np.ndarray,
    occupied: np.ndarray,
    surround_ok: np.ndarray,
    bone: np.ndarray,
    *,
    reach_px: float,
    ring_px: float,
    smoothing_px: float,
    min_lesion_px: int,
    min_area_px: int = 1,
) -> list[Piece]:
    """Faint counterparts on this film of the other film's large lesions that match nothing here.

    For each lesion of ``other_labels`` of at least ``min_lesion_px`` with no lesion of this film within
    ``reach_px``, a plane is fitted to this film's smoothed image on a ring from ``reach_px`` to ``reach_px +
    ring_px`` around it (the ring's free pixels; skipped where less than :data:`COUNTERPART_MIN_RING_FREE` of the
    ring is free or more than :data:`COUNTERPART_MAX_RING_BONE` on bone). When the median rise over the lesion is at
    least :data:`COUNTERPART_MIN_RISE` robust spreads of the ring's residuals, the counterpart is the connected part
    within ``reach_px`` that rises to :data:`COUNTERPART_FRACTION` of the rise's 95th percentile under the lesion
    and shares most pixels with it; it is kept when at least :data:`COUNTERPART_MIN_SHARE_UNDER` of it lies under
    the lesion and it has ``min_area_px``.

    Parameters
    ----------
    image : numpy.ndarray
        This film's working image (bright = dense).
    other_labels : numpy.ndarray
        int labels of the other film's lesions carried into this film's frame (0 background).
    own_lesions : numpy.ndarray
        bool, this film's lesions.
    occupied : numpy.ndarray
        Nonzero at this film's candidates (left out of the ring).
    surround_ok : numpy.ndarray
        bool, where a ring may lie (the field of view and the body).
    bone : numpy.ndarray
        bool bone mask of this film.
    reach_px, ring_px : float
        How far from the other film's lesion the counterpart may extend, and the ring's width beyond that.
    smoothing_px : float
        Gaussian sigma of the smoothing before the plane is fitted.
    min_lesion_px : int
        Smallest lesion of the other film looked for.
    min_area_px : int
        Smallest counterpart kept.

    Returns
    -------
    list of Piece
        With ``candidate_id`` 0.

    Examples
    --------
    A faint disk (rise 20 over noise 4) that this film's detection missed, under the other film's lesion:

    >>> rng = np.random.default_rng(0)
    >>> rows, cols = np.mgrid[0:100, 0:100]
    >>> disk = (rows - 50) ** 2 + (cols - 50) ** 2 <= 15**2
    >>> image = (1000 + 20 * disk + rng.normal(0, 4, disk.shape)).astype(np.uint16)
    >>> other = disk.astype(np.int32)
    >>> nothing, free = np.zeros(disk.shape, bool), np.ones(disk.shape, bool)
    >>> [found] = faint_counterparts(image, other, nothing, nothing, free, nothing, reach_px=6, ring_px=8,
    ...                              smoothing_px=1.0, min_lesion_px=100)
    >>> taken = np.zeros(disk.shape, bool); taken[found.window] = found.mask
    >>> bool((taken & disk).sum() > 0.9 * disk.sum()), bool((taken & ~disk).sum() < 0.1 * disk.sum())
    (True, True)
    """
    near_kernel = disk_kernel(reach_px)
    outer_kernel = disk_kernel(reach_px + ring_px)
    pad = int(np.ceil(reach_px + ring_px)) + 1
    blur_pad = int(np.ceil(4 * smoothing_px)) + 1
    found = []
    for lesion_id, window in object_windows(other_labels, pad):
        lesion = other_labels[window] == lesion_id
        if int(lesion.sum()) < min_lesion_px:
            continue
        near = cv2.dilate(lesion.view(np.uint8), near_kernel) > 0
        if own_lesions[window][near].any():
            continue  # this film has a lesion there: matching, not looking, decides
        ring = (cv2.dilate(lesion.view(np.uint8), outer_kernel) > 0) & ~near
        free = ring & (occupied[window] == 0) & surround_ok[window]
        if free.sum() < COUNTERPART_MIN_RING_FREE * ring.sum() or bone[window][ring].mean() > COUNTERPART_MAX_RING_BONE:
            continue
        fine = smoothed_window(image, window, blur_pad, smoothing_px)
        plane, spread = ring_plane(fine, free)
        rise = fine - plane
        if not float(np.median(rise[lesion])) >= COUNTERPART_MIN_RISE * spread:
            continue
        rising = near & (rise >= COUNTERPART_FRACTION * float(np.percentile(rise[lesion], 95)))
        _, parts = cv2.connectedComponents(rising.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
        shared = np.bincount(parts[lesion & rising])
        shared[0] = 0
        if not shared.any():
            continue
        piece = parts == int(np.argmax(shared))
        area = int(piece.sum())
        if area >= max(min_area_px, 1) and (piece & lesion).sum() >= COUNTERPART_MIN_SHARE_UNDER * area:
            found.append(Piece(0, window, piece))
    return found


def unconfirmed_candidates(
    unmatched: np.ndarray,
    labels: np.ndarray,
    candidates: np.ndarray,
    scores: np.ndarray,
    own: np.ndarray,
    min_score: float,
) -> np.ndarray:
    """Candidates whose lesions match nothing on the other film and score under ``min_score``.

    A lesion is judged by the highest score among the candidates it is made of; it is left alone when any of its
    pixels came from the other film's evidence (a candidate accepted on that film's support, a piece, a faint
    counterpart: they were taken because the other film shows a lesion there) or when none of its candidates
    has a score.

    Parameters
    ----------
    unmatched : numpy.ndarray
        Lesion ids (values of ``labels``) that match nothing on the other film, whose place it sees.
    labels : numpy.ndarray
        int label map of the film's lesions.
    candidates : numpy.ndarray
        int label map of the film's candidates (``candidate_id``, 1..n).
    scores : numpy.ndarray
        Learned score of each candidate (index ``candidate_id - 1``); NaN where there is none.
    own : numpy.ndarray
        bool per candidate: accepted on this film's own evidence.
    min_score : float
        Score a lesion that matches nothing needs.

    Returns
    -------
    numpy.ndarray
        bool per candidate (index ``candidate_id - 1``): the candidates to reject as unconfirmed.

    Examples
    --------
    >>> labels = np.array([[1, 1, 0, 2, 2]]); candidates = np.array([[1, 1, 0, 2, 3]])
    >>> unconfirmed_candidates(np.array([1, 2]), labels, candidates, np.array([0.95, 0.97, 0.999]),
    ...                        np.array([True, True, True]), 0.99).tolist()
    [True, False, False]
    """
    n = len(scores)
    result = np.zeros(n, bool)
    if len(unmatched) == 0 or n == 0:
        return result
    judged = np.zeros(int(max(labels.max(initial=0), np.max(unmatched))) + 1, bool)
    judged[unmatched] = True
    where = judged[labels]
    lesion_ids = labels[where]
    candidate_ids = candidates[where]
    top = int(lesion_ids.max()) + 1
    # Per lesion: its best score, and whether any pixel lies off this film's own accepted candidates.
    on_own = candidate_ids > 0
    on_own[on_own] = own[candidate_ids[on_own] - 1]
    borrowed = np.bincount(lesion_ids, weights=(candidate_ids > 0) & ~on_own, minlength=top) > 0
    score = np.where(on_own, np.nan_to_num(scores[np.maximum(candidate_ids, 1) - 1], nan=-1.0), -1.0)
    best = np.full(top, -1.0)
    np.maximum.at(best, lesion_ids, score)
    weak = (best >= 0) & (best < min_score) & ~borrowed
    result[np.unique(candidate_ids[on_own & weak[lesion_ids]]) - 1] = True
    return result
