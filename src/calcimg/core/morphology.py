"""Grey and binary morphology on integer images, vectorised with OpenCV.

The background of a radiograph is estimated by a grey opening with a disk. An exact digital disk is a union of
nested centred rectangles (a staircase); erosion by a union is the minimum of the erosions by its parts and
dilation the maximum, and OpenCV erodes by a rectangle with two separable 1-D passes whose cost hardly depends
on the rectangle's size. So the opening costs a few passes per rectangle instead of one pass per kernel pixel.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np


def disk_rectangles(radius: float, max_rectangles: int | None = None) -> list[tuple[int, int]]:
    """Half-sizes ``(half_height, half_width)`` of centred rectangles whose union is a digital disk.

    Parameters
    ----------
    radius : float
        Disk radius in pixels; a pixel (i, j) belongs to the disk when ``i**2 + j**2 <= radius**2``.
    max_rectangles : int, optional
        Keep at most this many rectangles, evenly spread along the staircase; the union is then an inscribed
        polygon-like approximation of the disk (never larger than it).

    Returns
    -------
    list of (int, int)
        Rectangles ordered from the widest-and-flattest to the tallest-and-narrowest.

    Examples
    --------
    >>> disk_rectangles(1)
    [(0, 1), (1, 0)]
    >>> disk_rectangles(2.3)
    [(1, 2), (2, 1)]
    """
    r = max(float(radius), 0.0)
    n = int(math.floor(r))
    half_widths = [int(math.floor(math.sqrt(max(r * r - i * i, 0.0)))) for i in range(n + 1)]
    # A rectangle (i, w(i)) is needed only where the staircase steps: where the next row is narrower.
    rectangles = [(i, half_widths[i]) for i in range(n + 1) if i == n or half_widths[i + 1] < half_widths[i]]
    if max_rectangles is not None and len(rectangles) > max_rectangles:
        picks = np.linspace(0, len(rectangles) - 1, max_rectangles).round().astype(int)
        rectangles = [rectangles[k] for k in sorted(set(picks.tolist()))]
    return rectangles


def disk_mask(radius: float) -> np.ndarray:
    """The digital disk of :func:`disk_rectangles` as a boolean array of shape (2n+1, 2n+1)."""
    n = int(math.floor(max(float(radius), 0.0)))
    rows, cols = np.ogrid[-n : n + 1, -n : n + 1]
    return rows * rows + cols * cols <= float(radius) ** 2


def disk_kernel(radius_px: float) -> np.ndarray:
    """OpenCV's elliptic structuring element of radius ``radius_px`` (rounded, at least 1), as a uint8 array.

    Examples
    --------
    >>> disk_kernel(1.2).tolist()
    [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    """
    radius = max(1, int(round(radius_px)))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _rect_kernel(half_height: int, half_width: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_RECT, (2 * half_width + 1, 2 * half_height + 1))


def grey_opening_disk(image: np.ndarray, radius: float, max_rectangles: int | None = None) -> np.ndarray:
    """Grey opening of ``image`` by a (staircase) disk of ``radius`` pixels.

    Parameters
    ----------
    image : numpy.ndarray
        2-D uint8, uint16 or float32 image.
    radius : float
        Disk radius in pixels.
    max_rectangles : int, optional
        See :func:`disk_rectangles`.

    Returns
    -------
    numpy.ndarray
        The opening, same shape and dtype. Pixels beyond the border are treated as absent (OpenCV's default
        border for erosion is the maximum, for dilation the minimum), so the border does not darken the result.

    Examples
    --------
    >>> img = np.zeros((9, 9), np.uint16); img[4, 6] = 100; img[1:8, 1:4] = 50
    >>> opened = grey_opening_disk(img, 1)
    >>> int(opened[4, 6]), int(opened[4, 1])
    (0, 50)
    """
    rectangles = disk_rectangles(radius, max_rectangles)
    if rectangles == [(0, 0)]:
        return image.copy()
    kernels = [_rect_kernel(h, w) for h, w in rectangles]
    eroded = cv2.erode(image, kernels[0])
    scratch = np.empty_like(image)
    for kernel in kernels[1:]:
        cv2.erode(image, kernel, dst=scratch)
        np.minimum(eroded, scratch, out=eroded)
    opened = cv2.dilate(eroded, kernels[0])
    for kernel in kernels[1:]:
        cv2.dilate(eroded, kernel, dst=scratch)
        np.maximum(opened, scratch, out=opened)
    return opened


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of a binary mask (background regions not connected to the image border).

    Uses a flood fill from the border (4-connected background, the complement of 8-connected objects), which
    gives the same result as :func:`scipy.ndimage.binary_fill_holes` many times faster.

    Examples
    --------
    >>> ring = np.zeros((5, 5), bool); ring[1:4, 1:4] = True; ring[2, 2] = False
    >>> bool(fill_holes(ring)[2, 2])
    True
    """
    rows, cols = mask.shape
    padded = np.zeros((rows + 2, cols + 2), np.uint8)
    padded[1:-1, 1:-1] = mask
    flood_mask = np.zeros((rows + 4, cols + 4), np.uint8)
    cv2.floodFill(padded, flood_mask, (0, 0), 2, flags=4)
    return padded[1:-1, 1:-1] != 2


def hysteresis(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Keep the 8-connected regions of ``low`` that contain at least one pixel of ``high``.

    Examples
    --------
    >>> low = np.array([[1, 1, 0, 1]], bool); high = np.array([[0, 1, 0, 0]], bool)
    >>> hysteresis(low, high).astype(int).tolist()
    [[1, 1, 0, 0]]
    """
    labels, keep = seeded_components(low, high)
    return keep[labels]


def seeded_components(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 8-connected components of ``low`` (labels, uint16 while they fit: :func:`connected_components_compact`)
    and, per label, whether the component holds a pixel of ``high`` (index 0, the background, is False)."""
    count, labels, _ = connected_components_compact(low.view(np.uint8))
    keep = np.zeros(count, bool)
    keep[labels[high & low]] = True
    keep[0] = False
    return labels, keep


def connected_components_compact(mask: np.ndarray, with_stats: bool = False) -> tuple[int, np.ndarray, Any]:
    """``cv2.connectedComponents`` (``with_stats``: ``...WithStats``) of a uint8 ``mask``, 8-connected: ``(count,
    labels, stats or None)``, the labels in uint16 (half the bytes of int32) when they fit, and in int32 when
    OpenCV reports that they do not (it checks before each new label); the same numbering either way."""

    def components(ltype: int) -> tuple[int, np.ndarray, Any]:
        if with_stats:
            count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=ltype)
            return count, labels, stats
        count, labels = cv2.connectedComponents(mask, connectivity=8, ltype=ltype)
        return count, labels, None

    try:
        return components(cv2.CV_16U)
    except cv2.error:  # 65,536 labels or more
        return components(cv2.CV_32S)


def large_components(mask: np.ndarray, min_area: int) -> np.ndarray:
    """The 8-connected components of a uint8 0/1 ``mask`` with at least ``min_area`` pixels, as a uint8 0/1 mask.

    Only the bounding box of the mask's pixels is labelled: flat regions, markers and masses are usually a small part
    of a film, and labelling the whole of it would cost a full pass for nothing.

    Examples
    --------
    >>> mask = np.zeros((6, 8), np.uint8); mask[1:4, 1:4] = 1; mask[5, 6] = 1
    >>> int(large_components(mask, min_area=4).sum()), int(large_components(mask, min_area=1).sum())
    (9, 10)
    """
    big = np.zeros_like(mask)
    if cv2.countNonZero(mask) < max(min_area, 1):
        return big
    col, row, width, height = cv2.boundingRect(mask)
    box = (slice(row, row + height), slice(col, col + width))
    _, labels, stats = connected_components_compact(np.ascontiguousarray(mask[box]), with_stats=True)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False
    small_ids = np.flatnonzero(~keep[1:]) + 1
    if len(small_ids) > _MAX_COMPONENTS_CLEARED:
        big[box] = keep.view(np.uint8)[labels]  # one look-up pass over the box
        return big
    # Usually every component, or all but a few, is large: copy the mask and clear the few small ones within their
    # own bounding boxes, which saves a look-up pass over the whole box (a third of the cost on a large film).
    inside = big[box]
    np.not_equal(mask[box], 0, out=inside.view(bool))
    for small_id in small_ids:
        left, top, width, height = stats[small_id, :4]
        part = (slice(top, top + height), slice(left, left + width))
        inside[part][labels[part] == small_id] = 0
    return big


#: Most small components :func:`large_components` clears one by one; with more, it uses one look-up pass.
_MAX_COMPONENTS_CLEARED = 64


def binary_open(mask: np.ndarray, radius: float) -> np.ndarray:
    """Binary opening by a digital disk of ``radius`` pixels (no change for a radius below 1)."""
    if radius < 1:
        return mask.copy()
    kernel = disk_mask(radius).astype(np.uint8)
    return cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_OPEN, kernel).astype(bool)


def _odd_length(length: float) -> int:
    """The odd number of pixels nearest ``length`` (at least 1, ties upwards): a line centred on its pixel, so that
    opening by it does not shift the image and is the same line when mirrored."""
    return max(1, 2 * int(math.floor(length / 2.0)) + 1)


def _symmetric_round(values: np.ndarray) -> np.ndarray:
    """Round half away from zero: ``-x`` rounds to minus what ``x`` rounds to (numpy's rint rounds halves to even)."""
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


class _ShearedOpenings:
    """Grey openings of one image by digital lines within 45 degrees of the vertical.

    For a line advancing ``slope`` columns per row (``|slope| <= 1``; 0 is vertical), row ``r`` is shifted by
    ``round(slope * (r - centre row))`` columns (half away from zero), so the line becomes vertical; the sheared
    image is opened by a vertical segment of ``length * cos(angle)`` rows (an odd number), whose cost does not
    depend on its length, and shifted back. Shifts are whole pixels taken about the centre, so mirroring the image
    mirrors the result exactly. Pixels beyond the left and right edges repeat the edge, as OpenCV's replicated
    border does above and below. The image is padded once for every slope.
    """

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        rows, _ = image.shape
        self.max_shift = rows // 2  # the largest shift: slope 1 at the first or last row, (rows - 1) / 2 rounded up
        self.padded = cv2.copyMakeBorder(image, 0, 0, 2 * self.max_shift, 2 * self.max_shift, cv2.BORDER_REPLICATE)

    def open(self, slope: float, length: float) -> np.ndarray:
        """The opening by a line of about ``length`` pixels advancing ``slope`` columns per row."""
        rows, cols = self.image.shape
        vertical = np.ones((_odd_length(length / math.sqrt(1.0 + slope * slope)), 1), np.uint8)
        if slope == 0:
            return cv2.morphologyEx(self.image, cv2.MORPH_OPEN, vertical, borderType=cv2.BORDER_REPLICATE)
        shifts = _symmetric_round(slope * (np.arange(rows) - (rows - 1) / 2.0)).astype(np.intp)
        pad = int(np.abs(shifts).max())
        # Sheared canvas of width cols + 2 pad: canvas[r, c] = image[r, c - pad + shifts[r]] (edges repeated).
        windows = np.lib.stride_tricks.sliding_window_view(self.padded, cols + 2 * pad, axis=1)
        canvas = windows[np.arange(rows), 2 * self.max_shift - pad + shifts]
        opened = cv2.morphologyEx(canvas, cv2.MORPH_OPEN, vertical, borderType=cv2.BORDER_REPLICATE)
        return np.lib.stride_tricks.sliding_window_view(opened, cols, axis=1)[np.arange(rows), pad - shifts]


def line_opening_max(image: np.ndarray, length: float, n_orientations: int = 12) -> np.ndarray:
    """Pointwise maximum of grey openings by straight lines of ``length`` pixels in evenly spread orientations.

    The result keeps every bright structure that contains a line of that length in some direction (bones,
    cortical edges, the body outline, anything large) and removes compact structures shorter than the line in
    every direction (lesions). A line within 45 degrees of the vertical is a digital line made vertical by
    shifting each row by whole pixels (:class:`_ShearedOpenings`); a line nearer the horizontal is the
    same on the transposed image. No pixel is interpolated, and when ``n_orientations`` is a multiple of 4 the
    result is exactly equivariant to flips, transposition and quarter turns of the image (the two diagonals,
    which belong to both families, are opened in both and the maximum taken), so that the lesions found do not
    depend on the orientation of the film. Each opening costs a few passes whatever the length.

    Parameters
    ----------
    image : numpy.ndarray
        2-D uint8, uint16 or float32 image.
    length : float
        Line length in pixels (the nearest odd number of pixels along each line's main axis).
    n_orientations : int
        Number of orientations spread over 180 degrees, starting at the horizontal.

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``image``.

    Examples
    --------
    >>> img = np.zeros((41, 41), np.uint16); img[20, 5:36] = 100; img[8:11, 8:11] = 100
    >>> opened = line_opening_max(img, 15, 4)
    >>> int(opened[20, 20]), int(opened[9, 9])
    (100, 0)
    >>> np.array_equal(line_opening_max(img.T, 15, 12), line_opening_max(img, 15, 12).T)
    True
    """
    angles = np.arange(n_orientations) * 180.0 / n_orientations  # from the horizontal
    vertical_family = _ShearedOpenings(image)
    horizontal_family = _ShearedOpenings(np.ascontiguousarray(image.T))
    result = np.zeros_like(image)
    result_transposed = np.zeros_like(horizontal_family.image)
    for angle in angles:
        from_vertical = float(angle) - 90.0  # in [-90, 90)
        if abs(from_vertical) <= 45.0:
            slope = float(np.clip(-math.tan(math.radians(from_vertical)), -1.0, 1.0))
            np.maximum(result, vertical_family.open(slope, length), out=result)
        if abs(from_vertical) >= 45.0:  # opened as a vertical-family line of the transposed image
            from_horizontal = float(angle) if angle < 90 else float(angle) - 180.0
            slope = float(np.clip(-math.tan(math.radians(from_horizontal)), -1.0, 1.0))
            np.maximum(result_transposed, horizontal_family.open(slope, length), out=result_transposed)
    return np.maximum(result, result_transposed.T, out=result)
