"""The accept/reject decision for each candidate object, with the reason, as CellProfiler records it.

Every candidate keeps one decision: ``accepted`` or the first reason (in the order of :data:`REJECTION_REASONS`)
that applies. The rules are vectorised over all candidates.
"""

from __future__ import annotations

import numpy as np

#: Reasons a candidate is rejected, in the order they are tested; each has a colour in the overlays.
REJECTION_REASONS = (
    "outside_field",  # centred outside the field of view (collimation, shutter, its margin) or cut by the image edge
    "outside_body",  # on air: calcinosis lies in tissue
    "excluded_region",  # inside a user's exclude mask or outside the include mask
    "marker",  # brighter than any tissue (lead marker or its letter), or flat: a graphic burned into the pixels
    "too_small",  # below min_area_mm2
    "too_large",  # above max_area_mm2
    "ridge",  # long and thin along a bone, skin or field outline: cortical edge, processing halo
    "low_contrast",  # barely above the local background: noise or texture
    "faint",  # too little excess density for calcium (a fraction of the bone-to-tissue range)
    "low_score",  # the learned candidate model finds it unlike a deposit
)

ACCEPTED = "accepted"

#: The reason given in a comparison to the candidates of a lesion that matches nothing on the other film and scores
#: under ``Params.unmatched_min_score`` (:func:`calcimg.core.paired.unconfirmed_candidates`); a single film's
#: decision never gives it.
UNCONFIRMED = "unconfirmed"


def decide(
    *,
    outside_field: np.ndarray,
    outside_body: np.ndarray,
    excluded: np.ndarray,
    marker: np.ndarray,
    area: np.ndarray,
    min_area: float,
    max_area: float,
    width: np.ndarray,
    ridge_max_width: float,
    ridge_elongation: float,
    on_outline: np.ndarray,
    contrast_k: np.ndarray,
    min_contrast_k: float,
    relative_excess: np.ndarray,
    min_relative_excess: float,
    score: np.ndarray | None = None,
    min_score: float = 0.0,
) -> np.ndarray:
    """Decide every candidate at once.

    Parameters
    ----------
    outside_field, outside_body, excluded, marker : numpy.ndarray of bool
        Per-candidate facts found by the caller.
    area : numpy.ndarray
        Candidate areas (same unit as ``min_area`` / ``max_area``).
    min_area, max_area : float
        Accepted area range.
    width : numpy.ndarray
        Largest inscribed-disk diameter (same unit as ``ridge_max_width``).
    ridge_max_width, ridge_elongation : float
        A candidate no wider than ``ridge_max_width`` with ``area / width**2`` above ``ridge_elongation`` (its
        length over its width) is a ridge when it lies along an outline ...
    on_outline : numpy.ndarray of bool
        ... as told by this: cortical edges run along bone outlines and processing halos along the skin and the
        field's edges, while calcified sheets run inside soft tissue.
    contrast_k : numpy.ndarray
        Mean excess over the background in noise standard deviations.
    min_contrast_k : float
        Smallest accepted ``contrast_k``.
    relative_excess : numpy.ndarray
        Mean excess over the background as a fraction of the image's tissue range.
    min_relative_excess : float
        Smallest accepted ``relative_excess``.
    score : numpy.ndarray, optional
        The learned candidate score in [0, 1] (:mod:`calcimg.core.candidate_model`).
    min_score : float
        Smallest accepted ``score``.

    Returns
    -------
    numpy.ndarray of str
        ``"accepted"`` or the first rejection reason, per candidate.

    Examples
    --------
    >>> decide(outside_field=np.array([False, False]), outside_body=np.array([False, False]),
    ...        excluded=np.array([False, False]),
    ...        marker=np.array([False, False]), area=np.array([10.0, 40.0]), min_area=1, max_area=100,
    ...        width=np.array([3.0, 2.0]), ridge_max_width=2.5, ridge_elongation=4, on_outline=np.array([1, 1]),
    ...        contrast_k=np.array([8.0, 8.0]), min_contrast_k=3, relative_excess=np.array([0.2, 0.2]),
    ...        min_relative_excess=0.03).tolist()
    ['accepted', 'ridge']
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        elongation = np.where(width > 0, area / np.maximum(width, 1e-9) ** 2, np.inf)
    tests = {
        "outside_field": outside_field,
        "outside_body": outside_body,
        "excluded_region": excluded,
        "marker": marker,
        "too_small": area < min_area,
        "too_large": area > max_area,
        "ridge": (width <= ridge_max_width) & (elongation > ridge_elongation) & np.asarray(on_outline, bool),
        "low_contrast": contrast_k < min_contrast_k,
        "faint": relative_excess < min_relative_excess,
        "low_score": (np.zeros(len(area), bool) if score is None else np.asarray(score) < min_score),
    }
    decision = np.full(len(area), ACCEPTED, dtype=object)
    undecided = np.ones(len(area), bool)
    for reason in REJECTION_REASONS:
        hit = undecided & np.asarray(tests[reason], bool)
        decision[hit] = reason
        undecided &= ~hit
    return decision.astype(str) if len(area) else np.zeros(0, dtype=str)


def size_class(diameter: np.ndarray, limits: tuple[float, ...]) -> np.ndarray:
    """Name the size class of each equivalent diameter.

    Examples
    --------
    >>> size_class(np.array([0.5, 2.0, 5.0, 12.0, 30.0]), (1.0, 3.0, 8.0, 20.0)).tolist()
    ['punctate', 'small', 'medium', 'large', 'mass']
    """
    names = np.array(["punctate", "small", "medium", "large", "mass"][: len(limits) + 1])
    return names[np.searchsorted(np.asarray(limits), diameter, side="right")]


def lesion_evidence(
    lesion_of_pixel: np.ndarray,
    candidate_of_pixel: np.ndarray,
    accepted: np.ndarray,
    scores: np.ndarray,
    support: np.ndarray,
    n_lesions: int,
) -> tuple[np.ndarray, np.ndarray]:
    """What each lesion was accepted on: the best learned score of the accepted candidates it is made of, and the
    support of that candidate ("own", or "other_visit" in a comparison).

    Parameters
    ----------
    lesion_of_pixel, candidate_of_pixel : numpy.ndarray
        For each candidate pixel, the lesion it lies in (0: none) and its candidate id (1..n).
    accepted : numpy.ndarray
        bool per candidate (index ``candidate_id - 1``).
    scores : numpy.ndarray
        Learned score per candidate (NaN where there is none).
    support : numpy.ndarray
        ``support`` per candidate.
    n_lesions : int
        Number of lesions (ids 1..n_lesions).

    Returns
    -------
    score : numpy.ndarray
        float per lesion (index ``lesion_id - 1``): NaN where no accepted candidate with a score lies in it (a piece
        or a faint counterpart, or a film decided without the model).
    support : numpy.ndarray
        object per lesion: the support of its best candidate, "" where it holds no accepted candidate.

    Examples
    --------
    >>> score, support = lesion_evidence(np.array([1, 1, 2, 0]), np.array([1, 2, 3, 4]),
    ...                                  np.array([True, True, False, True]), np.array([0.95, 0.99, 0.2, 0.97]),
    ...                                  np.array(["own", "other_visit", "", "own"]), 2)
    >>> score.tolist(), support.tolist()
    ([0.99, nan], ['other_visit', ''])
    """
    use = (lesion_of_pixel > 0) & accepted[candidate_of_pixel - 1]
    lesions, candidates = lesion_of_pixel[use], candidate_of_pixel[use]
    candidate_score = np.nan_to_num(scores[candidates - 1], nan=-1.0)  # no score: below every score
    best = np.full(n_lesions + 1, -np.inf)
    np.maximum.at(best, lesions, candidate_score)
    # The best candidate of each lesion (the lowest id among equal scores).
    at_best = candidate_score == best[lesions]
    which = np.full(n_lesions + 1, np.iinfo(np.int64).max)
    np.minimum.at(which, lesions[at_best], candidates[at_best].astype(np.int64))
    has = np.isfinite(best[1:])
    score = np.where(has & (best[1:] >= 0), best[1:], np.nan)
    lesion_support = np.full(n_lesions, "", dtype=object)
    lesion_support[has] = support[which[1:][has] - 1]
    return score, lesion_support
