"""What one film's lesions say about the other film's rejected candidates, in a comparison of two films.

A deposit that one film shows on its own can, on the other film, be part of a larger candidate that was rejected
as a whole: a stone that grew onto a finger bone and merged with the bone's candidate, a deposit beside a lead
letter inside the marker's zone, a sheet whose candidate runs on along the skin as a ridge. A reader comparing
the two films looks at the same place on both and outlines the deposit there; :func:`pieces_under_lesions` does
the same: under each lesion of the other film it takes from the rejected candidate the part that rises to a
share of the candidate's peak there, within a reach of the lesion. The candidate stays rejected; its piece is
accepted as a lesion of its own film, measured on that film's own pixels.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np
from scipy import ndimage

from calcimg.core.measure import ObjectPixels
from calcimg.core.morphology import disk_kernel

#: The share of the other film's lesion that must lie inside one rejected candidate for a piece to be taken from it.
MIN_SHARE_INSIDE = 0.5
#: A piece that is less than half of its candidate must stand out from the rest of it: its mean response reaches
#: this percentile of the rest's. A deposit on a bone rises above nearly all of the bone; the densest part of a
#: bone (under a deposit that is new on the other film) does not.
REST_PERCENTILE = 90.0


class Piece(NamedTuple):
    """A part of one rejected candidate, accepted on the other film's evidence.

    Attributes
    ----------
    candidate_id : int
        The candidate it is taken from (its value in the candidate label map).
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
    for lesion_id, box in enumerate(ndimage.find_objects(lesion_labels), start=1):
        if box is None:
            continue
        window = (
            slice(max(0, box[0].start - pad), min(candidates.shape[0], box[0].stop + pad)),
            slice(max(0, box[1].start - pad), min(candidates.shape[1], box[1].stop + pad)),
        )
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
