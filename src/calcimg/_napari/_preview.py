"""Live preview of a segmentation on the part of a film in view, fast enough to follow a parameter change.

The preview segments the visible region (with a margin of one background line, so the background estimate there
is the full image's), reduced to at most :data:`PREVIEW_MAX_PIXELS` pixels: on a whole 3000 x 2500 film in view it
works at a coarser spacing than Run does, so punctate deposits may be missed or merged, and the field of view and
tissue levels are those of the region. Run always measures the full-resolution image.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import cv2
import numpy as np

from calcimg.model import Params, Radiograph
from calcimg.pipeline import NOMINAL_SPACING_MM, segment_image

#: Largest region segmented by a preview (pixels after reduction): about 0.25 s on a 2024 laptop core.
PREVIEW_MAX_PIXELS = 400_000


@dataclass
class Preview:
    """A preview's labels and where they lie on the image.

    Attributes
    ----------
    labels : numpy.ndarray
        int32 accepted lesions of the region (reduced grid).
    rejected : numpy.ndarray
        int32 rejected candidates of the region (reduced grid), their ids those of ``reasons``.
    reasons : dict of int to str
        Rejection reason of each rejected candidate.
    origin : tuple of int
        (row, col) of the region's first pixel on the image.
    factor : tuple of float
        Image pixels per preview pixel along rows and columns (1 = full resolution).
    seconds : float
        Time taken.
    n_lesions : int
    """

    labels: np.ndarray
    rejected: np.ndarray
    reasons: dict[int, str]
    origin: tuple[int, int]
    factor: tuple[float, float]
    seconds: float
    n_lesions: int


def view_region(corners_rc: np.ndarray, shape: tuple[int, int], margin_px: float = 0.0) -> tuple[slice, slice] | None:
    """The image region (row and col slices) covering view corners given in the image's pixel coordinates.

    Parameters
    ----------
    corners_rc : numpy.ndarray
        (k, 2) points (row, col) of the view's corners in image pixels.
    shape : tuple of int
        Image shape.
    margin_px : float
        Margin added on every side.

    Returns
    -------
    tuple of slice or None
        None when the view does not meet the image.

    Examples
    --------
    >>> view_region(np.array([[-10, 5], [20, 30]]), (100, 100), margin_px=2)
    (slice(0, 23, None), slice(3, 33, None))
    """
    corners = np.asarray(corners_rc, dtype=np.float64)
    low = np.floor(corners.min(axis=0) - margin_px).astype(int)
    high = np.ceil(corners.max(axis=0) + margin_px).astype(int) + 1
    r0, c0 = max(0, low[0]), max(0, low[1])
    r1, c1 = min(shape[0], high[0]), min(shape[1], high[1])
    if r1 - r0 < 8 or c1 - c0 < 8:
        return None
    return slice(int(r0), int(r1)), slice(int(c0), int(c1))


def preview_segmentation(
    radiograph: Radiograph,
    params: Params,
    region: tuple[slice, slice] | None = None,
    max_pixels: int = PREVIEW_MAX_PIXELS,
) -> Preview:
    """Segment a region of a radiograph, reduced to at most ``max_pixels`` pixels.

    Parameters
    ----------
    radiograph : Radiograph
    params : Params
    region : tuple of slice, optional
        Rows and columns to segment (default: the whole image).
    max_pixels : int
        Largest number of pixels segmented; a larger region is reduced by area averaging and segmented at the
        coarser spacing.

    Returns
    -------
    Preview
    """
    start = time.perf_counter()
    rows, cols = region if region is not None else (slice(0, radiograph.shape[0]), slice(0, radiograph.shape[1]))
    crop = radiograph.pixels[rows, cols]
    full_shape = crop.shape
    reduction = max(1.0, float(np.sqrt(crop.size / max_pixels)))
    if reduction > 1.0:
        size = (max(8, int(round(crop.shape[1] / reduction))), max(8, int(round(crop.shape[0] / reduction))))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    factor = (full_shape[0] / crop.shape[0], full_shape[1] / crop.shape[1])
    reduced = replace(radiograph, pixels=np.ascontiguousarray(crop))
    if reduction > 1.0:
        # The filters are sized in mm: they must see the coarser spacing (an uncalibrated film its nominal one).
        spacing = radiograph.spacing_mm or (NOMINAL_SPACING_MM, NOMINAL_SPACING_MM)
        source = radiograph.spacing_source if radiograph.spacing_mm else "user"
        reduced = replace(reduced, spacing_mm=(spacing[0] * factor[0], spacing[1] * factor[1]), spacing_source=source)
    result = segment_image(reduced, params)
    reasons = {int(c): str(r) for c, r in zip(result.rejected["candidate_id"], result.rejected["reason"], strict=True)}
    return Preview(
        labels=result.labels,
        rejected=result.rejected_labels(),
        reasons=reasons,
        origin=(int(rows.start), int(cols.start)),
        factor=(float(factor[0]), float(factor[1])),
        seconds=time.perf_counter() - start,
        n_lesions=int(len(result.lesions)),
    )
