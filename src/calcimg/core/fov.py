"""The field of view: where on the film anatomy was exposed and measurable.

Excluded are flat regions (software shutters and saturated areas, which carry no noise), collimation bands
(unexposed strips along the image edges, brighter than any tissue) and what lies beyond the straight edge of a
bright shutter that is not a band (a collimator blade set at an angle, or one whose shadow fades into a ramp of
scatter, so that no row is uniformly bright). Lead markers are left to the candidate classification, since they are
small bright objects like the lesions themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from calcimg.core import grid
from calcimg.core.measure import padded_window
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
    flat_pixel_share : float
        Share of the field's pixels equal to all 8 of their neighbours: about 0 on a film that carries its noise,
        a tenth or more on an 8-bit export flattened by lossy compression.
    bands : dict
        Depth in pixels of the collimation band found on each side (``top``, ``bottom``, ``left``, ``right``).
    shutters : dict
        The straight shutter edge found on each side (:func:`shutter_edges`), as its depth in pixels from that
        side at the edge's two ends (first and last row, or column, along the side).
    """

    mask: np.ndarray
    flat_fraction: float
    flat_pixel_share: float = 0.0
    bands: dict[str, int] = field(default_factory=dict)
    shutters: dict[str, tuple[int, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (without the mask)."""
        return {
            "fraction_inside": round(float(self.mask.mean()), 6),
            "flat_fraction": round(self.flat_fraction, 6),
            "flat_pixel_share": round(self.flat_pixel_share, 6),
            "collimation_bands_px": dict(self.bands),
            "shutter_edges_px": {side: list(depths) for side, depths in self.shutters.items()},
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
    return _flat_components(flat_pixels(image), min_area)


def flat_pixels(image: np.ndarray) -> np.ndarray:
    """uint8 0/1: the pixels equal to all 8 of their neighbours (the image's edge repeated beyond it)."""
    kernel = np.ones((3, 3), np.uint8)
    return (cv2.erode(image, kernel) == cv2.dilate(image, kernel)).astype(np.uint8)


def _flat_components(flat: np.ndarray, min_area: int) -> np.ndarray:
    """The components of ``min_area`` or more of a :func:`flat_pixels` map, grown by a pixel."""
    big = large_components(flat, min_area)
    # Flat pixels next to a flat region but on its blurred edge are part of the shutter too.
    return cv2.dilate(big, np.ones((3, 3), np.uint8)).astype(bool)


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
        row_low = _row_percentiles(block, usable_row, 10.0)  # rows with no usable pixel stay NaN, handled below
        in_band = np.nan_to_num(row_low, nan=bright) >= bright
        depth = int(np.argmin(in_band)) if not in_band.all() else depth_limit
        if depth > 0 and not np.isnan(row_low[:depth]).all():
            bands[side] = depth * step
    return bands


def _row_percentiles(block: np.ndarray, usable_row: np.ndarray, q: float) -> np.ndarray:
    """``np.nanpercentile(block[usable_row], q, axis=1)`` in place in a full-length array (NaN where not usable),
    vectorised (``nanpercentile`` works row by row in Python), with the same values bit for bit.

    numpy's default (linear) method, in the same arithmetic as ``nanpercentile`` applies to each row's values:
    the sorted values at ``floor(v)`` and the next, where ``v = (n - 1) q / 100`` for a row of ``n`` values,
    interpolated in the rows' dtype from the side of the nearer one.
    """
    row_low = np.full(len(block), np.nan)
    if not usable_row.any():
        return row_low
    rows = block[usable_row]
    ordered = np.sort(rows, axis=1)  # NaN sort last: each row's n values come first
    counts = (~np.isnan(rows)).sum(axis=1)
    virtual = (counts - 1) * (q / 100.0)
    below = np.floor(virtual)
    gamma = virtual - below
    last = virtual >= counts - 1  # the largest value, as numpy takes it
    below_index = np.where(last, counts - 1, below).astype(np.intp)
    above_index = np.where(last, counts - 1, below + 1).astype(np.intp)
    lower = np.take_along_axis(ordered, below_index[:, None], axis=1)[:, 0]
    upper = np.take_along_axis(ordered, above_index[:, None], axis=1)[:, 0]
    difference = upper - lower
    from_lower = lower + difference * gamma.astype(ordered.dtype)
    from_upper = upper - difference * (1.0 - gamma).astype(ordered.dtype)
    row_low[usable_row] = np.where(gamma >= 0.5, from_upper, from_lower)
    return row_low


#: Distance (reduced-grid pixels) on each side of a pixel over which :func:`shutter_edges` measures the rise.
_SHUTTER_STEP_PX = 3


def _toward_side(array: np.ndarray, side: str) -> np.ndarray:
    """A view of ``array`` turned so that ``side`` is its right-hand edge (writing to the view writes ``array``)."""
    return {"right": array, "left": array[:, ::-1], "bottom": array.T, "top": array.T[:, ::-1]}[side]


def _straight_edge(
    edges: np.ndarray, max_depth: int, max_tilt_deg: float, min_support: float = 0.0, tilt_step_deg: float = 0.25
) -> tuple[float, int, float]:
    """The straight, near-vertical line through most ``edges`` pixels within ``max_depth`` of the right-hand side.

    Each tilt shears the edge map so that its lines become columns (one affine warp), and a column's share of rows
    holding an edge pixel (within one pixel across) is that line's support. Of the tilts whose best line has the
    most support, the one nearest their middle is taken (the least tilted of two), so that a flipped or turned film
    gives the flipped or turned line. When fewer than ``min_support`` of the rows hold an edge pixel where a line
    can run, no line can reach it, and that share is returned without a search.

    Returns
    -------
    tuple
        ``(support, column, tilt)``: the line's column at the middle row and its tilt in radians (the column grows
        by ``tan(tilt)`` per row).
    """
    rows, cols = edges.shape
    first = max(cols - max_depth, 0)
    # only the columns that a line starting at ``first`` or beyond can reach are sheared
    reach = int(math.ceil((rows - 1) / 2 * math.tan(math.radians(max_tilt_deg)))) + 1
    offset = max(first - reach, 0)
    near = cv2.dilate(edges[:, offset:].view(np.uint8), np.ones((1, 3), np.uint8))
    rows_with_edges = float(np.count_nonzero(near.any(axis=1))) / rows
    if rows_with_edges < min_support:  # an upper bound of every line's support
        return rows_with_edges, cols - 1, 0.0
    width = cols - offset
    lines = []  # (support, column, tilt in degrees) of the best line of each tilt
    for tilt_deg in np.arange(-max_tilt_deg, max_tilt_deg + tilt_step_deg / 2, tilt_step_deg):
        slope = math.tan(math.radians(tilt_deg))
        shear = np.array([[1.0, slope, -slope * (rows - 1) / 2], [0.0, 1.0, 0.0]])
        sheared = cv2.warpAffine(
            near, shear, (width, rows), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0
        )
        support = cv2.reduce(sheared[:, first - offset :], 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[0]
        start = int(np.argmax(support))
        end = start  # lines of equal support side by side: the middle one
        while end + 1 < len(support) and support[end + 1] == support[start]:
            end += 1
        lines.append((int(support[start]), first + (start + end) // 2, float(tilt_deg)))
    most = max(line[0] for line in lines)
    tied = [line for line in lines if line[0] == most]
    middle = float(np.mean([line[2] for line in tied]))
    support, column, tilt_deg = min(tied, key=lambda line: (abs(line[2] - middle), abs(line[2])))
    return support / rows, column, math.radians(tilt_deg)


def shutter_edges(
    image: np.ndarray,
    usable: np.ndarray,
    max_depth_fraction: float = 0.35,
    max_tilt_deg: float = 10.0,
    min_support: float = 0.7,
    max_busy_fraction: float = 0.02,
) -> dict[str, tuple[int, int]]:
    """Straight edges of bright shutters along the image's sides that the bands of :func:`collimation_bands` miss.

    A collimator blade leaves a straight edge across the whole film, brighter on the blade's side; where the blade is
    set at an angle, or its shadow fades into a ramp of scatter, no row beyond it is uniformly bright and it is no
    band. On a reduced copy, an edge pixel is where the image rises towards the side by a tenth of its range over a
    few pixels, or where a flat region (air) ends against brighter pixels. An edge counts when a straight line
    within ``max_depth_fraction`` of the side, tilted at most ``max_tilt_deg``, runs through edge pixels on at least
    ``min_support`` of its length, and the film beyond it is smooth: at most ``max_busy_fraction`` of its usable
    pixels have a gradient of half that rise (anatomy beyond a straight skin line is not smooth).

    Parameters
    ----------
    image : numpy.ndarray
        2-D image, bright = dense.
    usable : numpy.ndarray
        Pixels to consider (flat regions excluded).
    max_depth_fraction, max_tilt_deg, min_support, max_busy_fraction : float
        See above.

    Returns
    -------
    dict of str to (int, int)
        For each side with an edge, its depth in pixels from that side at the edge's two ends (the first and last
        row for ``left``/``right``, column for ``top``/``bottom``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> img = rng.normal(1000, 30, (200, 200)).astype(np.uint16)
    >>> img[:, 160:] = 3000 + np.arange(40, dtype=np.uint16) * 20  # a blade's shadow: a bright ramp, no band
    >>> shutter_edges(img, np.ones(img.shape, bool))  # at its steepest rise, 2 pixels into the ramp
    {'right': (38, 38)}
    """
    step = max(1, min(image.shape) // 512)
    small = cv2.blur(grid.centred_sample(image, step).astype(np.float32), (3, 3))
    small_usable = grid.centred_sample(usable, step)
    values = small[small_usable]
    if values.size < 100 or min(small.shape) < 4 * _SHUTTER_STEP_PX:  # too small a film to hold a straight edge
        return {}
    low, high = np.percentile(values, [0.5, 99.5])
    rise = 0.1 * float(high - low)
    if rise <= 0:
        return {}
    slope = np.hypot(*np.gradient(small))  # the same turned any way, so computed once
    found: dict[str, tuple[int, int]] = {}
    for side in ("top", "bottom", "left", "right"):
        view, view_usable = _toward_side(small, side), _toward_side(small_usable, side)
        rows, cols = view.shape
        support, column, tilt = _straight_edge(
            _shutter_edge_pixels(view, view_usable, rise), int(cols * max_depth_fraction), max_tilt_deg, min_support
        )
        if support < min_support:
            continue
        line = column + (np.arange(rows) - (rows - 1) / 2) * math.tan(tilt)
        # smooth beyond the edge's own rise (the edge pixels span 2 x _SHUTTER_STEP_PX + 1 across)
        beyond = (np.arange(cols)[None, :] > line[:, None] + 2 * _SHUTTER_STEP_PX + 2) & view_usable
        busy = (_toward_side(slope, side) > rise / 2) & beyond
        if not beyond.any() or busy.sum() > max_busy_fraction * beyond.sum():
            continue
        depths = (cols - 1 - line[0]) * step, (cols - 1 - line[-1]) * step
        found[side] = (max(int(round(depths[0])), 0), max(int(round(depths[1])), 0))
    return found


def _shutter_edge_pixels(view: np.ndarray, usable: np.ndarray, rise: float) -> np.ndarray:
    """Where ``view`` rises most, by at least ``rise``, towards its right-hand side, or a flat region ends against
    brighter pixels."""
    k = _SHUTTER_STEP_PX
    step = np.zeros(view.shape, np.float32)
    step[:, k:-k] = np.where(usable[:, 2 * k :] & usable[:, : -2 * k], view[:, 2 * k :] - view[:, : -2 * k], 0)
    # one pixel per row and step: where the rise is largest along the row
    edges = step > rise
    edges[:, 1:-1] &= (step[:, 1:-1] >= step[:, :-2]) & (step[:, 1:-1] > step[:, 2:])
    flat_end = ~usable[:, : -1 - k] & usable[:, 1:-k] & (view[:, 1 + k :] > view[:, : -1 - k] + rise / 2)
    edges[:, 1:-k] |= flat_end
    return edges


def _exclude_beyond(mask: np.ndarray, side: str, depths: tuple[int, int]) -> None:
    """Set ``mask`` False beyond the straight edge at ``depths`` from ``side`` (in place)."""
    view = _toward_side(mask, side)
    rows, cols = view.shape
    depth = np.ceil(np.linspace(depths[0], depths[1], rows)).astype(int)
    view[np.arange(cols)[None, :] >= cols - depth[:, None]] = False


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
    flat_px = flat_pixels(image)
    flat = _flat_components(flat_px, min_area=max(64, rows * cols // 2000))
    usable = ~flat
    bands = collimation_bands(image, usable)
    mask = usable.copy()
    depth = {side: bands.get(side, 0) for side in ("top", "bottom", "left", "right")}
    mask[: depth["top"], :] = False
    mask[rows - depth["bottom"] :, :] = False
    mask[:, : depth["left"]] = False
    mask[:, cols - depth["right"] :] = False
    shutters = shutter_edges(image, usable)
    for side, depths in shutters.items():
        _exclude_beyond(mask, side, depths)
    if margin_px > 0:
        size = 2 * margin_px + 1
        mask = cv2.erode(mask.view(np.uint8), np.ones((size, size), np.uint8), borderValue=0).astype(bool)
    inside = int(cv2.countNonZero(mask.view(np.uint8)))
    share = cv2.countNonZero(cv2.bitwise_and(flat_px, mask.view(np.uint8))) / inside if inside else 0.0
    return FieldOfView(
        mask=mask, flat_fraction=float(flat.mean()), flat_pixel_share=float(share), bands=bands, shutters=shutters
    )


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
    cost does not grow with the margin) covers the square plate of a marker. Only the bounding box of the mask,
    grown by the margin, is dilated (a lead letter is a small part of a film); the result is the same.

    Examples
    --------
    >>> mask = np.zeros((9, 9), np.uint8); mask[0, 4] = 1
    >>> grow_square(mask, 2).astype(int)[:4, 1:8].tolist()
    [[0, 1, 1, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0, 0]]
    """
    grown = mask.astype(bool)
    if margin_px <= 0 or not grown.any():
        return grown
    col, row, width, height = cv2.boundingRect(mask)
    window = padded_window((row, row + height), (col, col + width), margin_px, mask.shape)
    square = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * margin_px + 1, 2 * margin_px + 1))
    grown[window] = cv2.dilate(np.ascontiguousarray(mask[window]), square).astype(bool)
    return grown
