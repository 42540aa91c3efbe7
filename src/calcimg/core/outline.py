"""Lesion outlines completed against a plane fitted to the lesion's own surroundings.

The film's background (:func:`calcimg.pipeline._background`) is an opening: at a pixel on the downhill side of a
deposit lying on a slope of the tissue (near the skin, across a soft-tissue shadow), some line runs uphill through
the deposit into brighter tissue, so the opening there is the pixel itself and the deposit's downhill rim has no
response. Deposits of several mm^2 are then outlined short, by up to a third of their area on steep slopes.

Here each lesion large enough to have a surround of its own gets a local background: a plane fitted to a ring
around it (pixels of no candidate, outliers dropped), whose residual spread measures the surround's noise and
texture. The lesion then takes the pixels within a short reach of it that rise above that plane by both a fraction
of the lesion's peak and a multiple of that spread, connected to it. Pixels are only added, never removed, and a
pixel two lesions could take goes to neither. Lesions whose ring lies mostly (more than 30 %) outside the field or
the body, or on bone, keep their outline: a plane does not describe the skin's edge or a bone's texture. A ring cut
by the edge of the field only in part (a deposit near the skin) is fitted on the part inside.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from calcimg.core.measure import object_windows
from calcimg.core.morphology import disk_kernel

#: Ring pixels further than this many robust deviations from the first plane are dropped before the second fit.
_OUTLIER_DEVIATIONS = 3.0
#: Fewest ring pixels a plane is fitted to.
_MIN_RING_PIXELS = 20
#: Smallest share of the ring in the field and the body for a lesion to be refined; the plane is fitted to that part.
_MIN_RING_INSIDE_SHARE = 0.7
#: Largest share of the ring on bone for a lesion to be refined.
_MAX_RING_BONE_SHARE = 0.05


@dataclass(frozen=True)
class OutlineSettings:
    """Settings of :func:`grow_to_local_background`, in pixels.

    Attributes
    ----------
    ring_inner_px, ring_outer_px : float
        The ring the plane is fitted to lies between these distances from the lesion.
    reach_px : float
        Pixels further than this from the lesion are never added.
    fraction : float
        An added pixel rises above the plane by at least this fraction of the lesion's peak above it.
    ring_k : float
        ... and by more than this many robust deviations of the ring's residuals.
    min_area_px : int
        Smaller lesions keep their outline.
    smoothing_px : float
        Gaussian sigma of the image the plane is fitted to and compared with (the extent's smoothing).
    """

    ring_inner_px: float
    ring_outer_px: float
    reach_px: float
    fraction: float
    ring_k: float
    min_area_px: int
    smoothing_px: float


def grow_to_local_background(
    labels: np.ndarray,
    image: np.ndarray,
    occupied: np.ndarray,
    surround_ok: np.ndarray,
    bone: np.ndarray,
    settings: OutlineSettings,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Add to each large enough lesion the pixels near it that rise above its local background plane.

    Beyond the result itself (none with ``out=labels``), only windows around the lesions are made, read and written:
    no full-size temporary (on a large film a label map alone is twice the input's bytes).

    Parameters
    ----------
    labels : numpy.ndarray
        int32 lesion labels (0 background); not modified unless it is ``out``.
    image : numpy.ndarray
        The working image (bright = dense).
    occupied : numpy.ndarray
        Nonzero at the pixels of any candidate, accepted or not (bool, or the candidate labels themselves): left out
        of the ring.
    surround_ok : numpy.ndarray
        bool, where a ring may lie (the field of view and the body); a lesion with less than
        :data:`_MIN_RING_INSIDE_SHARE` of its ring there is not refined, others are fitted on the part there.
    bone : numpy.ndarray
        bool bone mask; a lesion whose ring lies on bone (more than :data:`_MAX_RING_BONE_SHARE`) is not refined.
    settings : OutlineSettings
    out : numpy.ndarray, optional
        Where the result is written; ``labels`` itself to complete it in place. By default a new array.

    Returns
    -------
    labels : numpy.ndarray
        The int32 label map (``out`` when given): the same lesions with the same ids, each a superset of its input.
    added : numpy.ndarray
        int64, pixels added to each lesion id ``1..labels.max()`` (index 0 unused).

    Examples
    --------
    A disk of excess 40 on a ramp, outlined short on its downhill side, gets its rim back:

    >>> rows, cols = np.mgrid[0:80, 0:80]
    >>> disk = (rows - 40) ** 2 + (cols - 40) ** 2 <= 12**2
    >>> image = (1000 + 5 * cols + 40 * disk).astype(np.uint16)
    >>> short = (disk & (cols < 46)).astype(np.int32)
    >>> settings = OutlineSettings(3, 8, 8, 0.1, 2.0, 20, 0.0)
    >>> ones = np.ones(image.shape, bool)
    >>> grown, added = grow_to_local_background(short, image, disk, ones, ~ones, settings)
    >>> bool((grown > 0).sum() == disk.sum()), int(added[1])
    (True, 95)
    """
    n = int(labels.max(initial=0))
    added = np.zeros(n + 1, np.int64)
    pad = int(np.ceil(settings.ring_outer_px + max(settings.reach_px, 0.0))) + 2
    blur_pad = int(np.ceil(4 * settings.smoothing_px)) + 1
    claims = []  # (lesion id, window, the pixels of no lesion it would take)
    for lesion_id, window in object_windows(labels, pad):
        lesion = labels[window] == lesion_id
        if int(lesion.sum()) < settings.min_area_px:
            continue
        grown = _grown_pixels(lesion, labels[window], image, window, blur_pad, occupied[window] != 0,
                              surround_ok[window], bone[window], settings)  # fmt: skip
        if grown is not None:
            claims.append((lesion_id, window, grown & (labels[window] == 0)))
    if out is None:
        out = labels.copy()
    elif out is not labels:
        out[...] = labels
    # Every claim is settled before any is written, so that completing in place reads the input labels only.
    for (lesion_id, window, _), taken in zip(claims, _uncontested(claims), strict=True):
        out[window][taken] = lesion_id
        added[lesion_id] = int(taken.sum())
    return out, added


def _grown_pixels(
    lesion: np.ndarray,
    labels: np.ndarray,
    image: np.ndarray,
    window: tuple[slice, slice],
    blur_pad: int,
    occupied: np.ndarray,
    surround_ok: np.ndarray,
    bone: np.ndarray,
    settings: OutlineSettings,
) -> np.ndarray | None:
    """The pixels (in the window) one lesion takes, lesion included; None when its surround does not allow it."""
    as_uint8 = lesion.view(np.uint8)
    inner = cv2.dilate(as_uint8, disk_kernel(settings.ring_inner_px)) > 0
    ring = (cv2.dilate(as_uint8, disk_kernel(settings.ring_outer_px)) > 0) & ~inner
    if surround_ok[ring].mean() < _MIN_RING_INSIDE_SHARE or bone[ring].mean() > _MAX_RING_BONE_SHARE:
        return None
    ring &= ~occupied & surround_ok
    if int(ring.sum()) < _MIN_RING_PIXELS:
        return None
    fine = smoothed_window(image, window, blur_pad, settings.smoothing_px)
    plane, spread = ring_plane(fine, ring)
    excess = fine - plane
    peak = float(excess[lesion].max())
    if peak <= 0:
        return None
    near = cv2.dilate(as_uint8, disk_kernel(settings.reach_px)) > 0
    rising = near & (excess >= settings.fraction * peak) & (excess > settings.ring_k * spread)
    rising &= labels == 0  # never into another lesion
    rising |= lesion
    _, components = cv2.connectedComponents(rising.view(np.uint8), connectivity=8)
    touching = np.unique(components[lesion])
    return np.isin(components, touching[touching > 0])


def _uncontested(claims: list[tuple[int, tuple[slice, slice], np.ndarray]]) -> list[np.ndarray]:
    """Each claim's pixels (``taken`` over its window) that no other claim takes: pairs of claims whose windows
    overlap are compared on the overlap, so no full-size count of claimants is needed."""
    free = []
    for index, (_, window, taken) in enumerate(claims):
        contested = np.zeros_like(taken)
        for other, (_, other_window, other_taken) in enumerate(claims):
            overlap = None if other == index else _overlap(window, other_window)
            if overlap is not None:
                contested[_within(overlap, window)] |= other_taken[_within(overlap, other_window)]
        free.append(taken & ~contested)
    return free


def _overlap(a: tuple[slice, slice], b: tuple[slice, slice]) -> tuple[slice, slice] | None:
    """The intersection of two windows (pairs of slices with steps of 1), or None when they do not meet."""
    rows = slice(max(a[0].start, b[0].start), min(a[0].stop, b[0].stop))
    cols = slice(max(a[1].start, b[1].start), min(a[1].stop, b[1].stop))
    return (rows, cols) if rows.start < rows.stop and cols.start < cols.stop else None


def _within(part: tuple[slice, slice], window: tuple[slice, slice]) -> tuple[slice, slice]:
    """``part`` of the image in the coordinates of ``window``, which contains it."""
    return (
        slice(part[0].start - window[0].start, part[0].stop - window[0].start),
        slice(part[1].start - window[1].start, part[1].stop - window[1].start),
    )


def smoothed_window(image: np.ndarray, window: tuple[slice, slice], pad: int, sigma_px: float) -> np.ndarray:
    """The window of the image smoothed with a Gaussian of ``sigma_px`` (float64), as smoothing the whole image
    would give it: the window is smoothed with ``pad`` more pixels on each side where the image has them."""
    rows, cols = window
    padded = (
        slice(max(0, rows.start - pad), min(image.shape[0], rows.stop + pad)),
        slice(max(0, cols.start - pad), min(image.shape[1], cols.stop + pad)),
    )
    block = image[padded]
    if sigma_px >= 0.3:
        block = cv2.GaussianBlur(block, (0, 0), sigma_px)
    return block[_within(window, padded)].astype(np.float64)


def ring_plane(values: np.ndarray, ring: np.ndarray) -> tuple[np.ndarray, float]:
    """A plane fitted by least squares to ``values`` on the ring, refitted without its outliers, over the window;
    and the robust spread (1.4826 x median absolute deviation) of the ring's residuals from it."""
    rows, cols = np.nonzero(ring)
    samples = values[rows, cols]
    design = np.column_stack([np.ones(len(rows)), rows, cols]).astype(np.float64)
    coefficients = np.linalg.lstsq(design, samples, rcond=None)[0]
    residuals = samples - design @ coefficients
    spread = _robust_spread(residuals)
    inliers = np.abs(residuals - np.median(residuals)) <= _OUTLIER_DEVIATIONS * spread
    if inliers.sum() >= _MIN_RING_PIXELS:
        coefficients = np.linalg.lstsq(design[inliers], samples[inliers], rcond=None)[0]
        spread = _robust_spread(samples - design @ coefficients)
    grid_rows, grid_cols = np.indices(values.shape, dtype=np.float64)
    plane = coefficients[0] + coefficients[1] * grid_rows + coefficients[2] * grid_cols
    return plane, spread


def _robust_spread(residuals: np.ndarray) -> float:
    """1.4826 x the median absolute deviation (``scipy.stats.median_abs_deviation`` with ``scale="normal"`` divides
    by 0.67449 instead, which differs in the sixth digit: kept as written so that 0.4.x outlines do not move)."""
    return float(1.4826 * np.median(np.abs(residuals - np.median(residuals))))
