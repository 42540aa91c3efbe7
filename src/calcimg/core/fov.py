"""The field of view: where on the film anatomy was exposed and measurable.

Excluded are flat regions (software shutters and saturated areas, which carry no noise) and collimation bands
(unexposed strips along the image edges, brighter than any tissue). Lead markers are left to the candidate
classification, since they are small bright objects like the lesions themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from calcimg.core import grid
from calcimg.core.morphology import large_components


@dataclass
class FieldOfView:
    """The field-of-view mask and how it was found.

    Attributes
    ----------
    mask : numpy.ndarray
        True where the image is usable.
    flat_fraction : float
        Fraction of the image excluded as flat (no noise: shutter or saturation).
    bands : dict
        Depth in pixels of the collimation band found on each side (``top``, ``bottom``, ``left``, ``right``).
    """

    mask: np.ndarray
    flat_fraction: float
    bands: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (without the mask)."""
        return {
            "fraction_inside": round(float(self.mask.mean()), 6),
            "flat_fraction": round(self.flat_fraction, 6),
            "collimation_bands_px": dict(self.bands),
        }


def flat_regions(image: np.ndarray, min_area: int) -> np.ndarray:
    """Regions with no noise at all: every pixel equals its 3x3 neighbours, in components of ``min_area`` or more.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> img = rng.integers(100, 200, (20, 20)).astype(np.uint16); img[:, :6] = 0
    >>> flat = flat_regions(img, min_area=10)
    >>> bool(flat[:, :5].all()), bool(flat[:, 7:].any())
    (True, False)
    """
    kernel = np.ones((3, 3), np.uint8)
    flat = (cv2.erode(image, kernel) == cv2.dilate(image, kernel)).astype(np.uint8)
    big = large_components(flat, min_area)
    # Flat pixels next to a flat region but on its blurred edge are part of the shutter too.
    return cv2.dilate(big, kernel).astype(bool)


def collimation_bands(image: np.ndarray, usable: np.ndarray, max_depth_fraction: float = 0.35) -> dict[str, int]:
    """Depth of the bright, unexposed band along each image edge.

    A row (or column) belongs to a band when even its darker pixels (10th percentile of the usable ones) are as
    bright as the brightest tissue: no row through anatomy is uniformly that bright. Bands must start at the edge.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image, bright = dense.
    usable : numpy.ndarray
        Pixels to consider (flat regions already excluded).
    max_depth_fraction : float
        A band is at most this fraction of the image deep.

    Returns
    -------
    dict of str to int
        Band depth in pixels for each side that has one.
    """
    step = max(1, min(image.shape) // 512)
    small = grid.centred_sample(image, step).astype(np.float32)
    small_usable = grid.centred_sample(usable, step)
    values = small[small_usable]
    if values.size < 100:
        return {}
    low, high = np.percentile(values, [50.0, 99.5])
    bright = low + 0.8 * (high - low)
    masked = np.where(small_usable, small, np.nan)
    bands: dict[str, int] = {}
    profiles = {
        "top": masked,
        "bottom": masked[::-1],
        "left": masked.T,
        "right": masked.T[::-1],
    }
    for side, rows in profiles.items():
        depth_limit = int(len(rows) * max_depth_fraction)
        block = rows[:depth_limit]
        usable_row = ~np.isnan(block).all(axis=1)
        row_low = np.full(len(block), np.nan)  # rows with no usable pixel stay NaN, handled below
        if usable_row.any():
            row_low[usable_row] = np.nanpercentile(block[usable_row], 10.0, axis=1)
        in_band = np.nan_to_num(row_low, nan=bright) >= bright
        depth = int(np.argmin(in_band)) if not in_band.all() else depth_limit
        if depth > 0 and not np.isnan(row_low[:depth]).all():
            bands[side] = depth * step
    return bands


def field_of_view(image: np.ndarray, margin_px: int = 0) -> FieldOfView:
    """Find the usable field of view of a radiograph.

    Parameters
    ----------
    image : numpy.ndarray
        2-D integer image, bright = dense.
    margin_px : int
        Shrink the field by this many pixels (edges of shutters and bands are blurred).

    Returns
    -------
    FieldOfView
    """
    rows, cols = image.shape
    flat = flat_regions(image, min_area=max(64, rows * cols // 2000))
    usable = ~flat
    bands = collimation_bands(image, usable)
    mask = usable.copy()
    depth = {side: bands.get(side, 0) for side in ("top", "bottom", "left", "right")}
    mask[: depth["top"], :] = False
    mask[rows - depth["bottom"] :, :] = False
    mask[:, : depth["left"]] = False
    mask[:, cols - depth["right"] :] = False
    if margin_px > 0:
        size = 2 * margin_px + 1
        mask = cv2.erode(mask.view(np.uint8), np.ones((size, size), np.uint8), borderValue=0).astype(bool)
    return FieldOfView(mask=mask, flat_fraction=float(flat.mean()), bands=bands)


def marker_regions(image: np.ndarray, level: float, min_area_px: int) -> np.ndarray:
    """Lead markers: the 8-connected regions at or above ``level`` (brighter than any tissue) of at least
    ``min_area_px`` pixels (single hot pixels are not markers), as a uint8 0/1 mask. :func:`grow_square` grows
    them into the zones around them (blurred edge, halo and plate), once per margin.

    Examples
    --------
    >>> img = np.zeros((40, 40), np.uint16); img[10:20, 10:14] = 1000; img[30, 30] = 1000
    >>> zone = grow_square(marker_regions(img, 900, min_area_px=10), 2)
    >>> bool(zone[9, 9]), bool(zone[30, 30])
    (True, False)
    """
    return large_components((image >= level).astype(np.uint8), min_area_px)


def grow_square(mask: np.ndarray, margin_px: int) -> np.ndarray:
    """A uint8 0/1 ``mask`` grown by a square of half-side ``margin_px``, as bool. A square margin (separable, so its
    cost does not grow with the margin) covers the square plate of a marker."""
    if margin_px > 0 and mask.any():
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * margin_px + 1, 2 * margin_px + 1)))
    return mask.astype(bool)
