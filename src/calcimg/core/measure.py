"""Labelling and per-object measurement, vectorised over all objects at once.

The pixels of the objects are gathered once (:class:`ObjectPixels`: their positions, sorted by label); every
per-object statistic then visits only them, with :func:`numpy.bincount` for sums and
:func:`numpy.maximum.reduceat` for maxima, so the cost follows the objects' area, not the image's, whatever the
number of objects. Lengths are in pixels here; :mod:`calcimg.pipeline` converts to mm.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from calcimg.core import grid
from calcimg.core.morphology import connected_components_compact, seeded_components


def label_objects(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected labelling of a binary mask.

    Returns
    -------
    labels : numpy.ndarray
        int32 labels, 0 background, objects 1..n in raster order of their first pixel.
    n : int
        Number of objects.

    Examples
    --------
    >>> labels, n = label_objects(np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0], [1, 1, 0]], bool))
    >>> n, labels.tolist()
    (2, [[1, 0, 0], [0, 1, 0], [0, 0, 0], [2, 2, 0]])
    """
    count, labels = cv2.connectedComponents(mask.astype(np.uint8, copy=False), connectivity=8, ltype=cv2.CV_32S)
    return labels, count - 1


def label_objects_compact(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """:func:`label_objects` in uint16 when the objects are fewer than 65,536 (half the bytes of int32), in int32
    otherwise; the same numbering either way.

    Examples
    --------
    >>> labels, n = label_objects_compact(np.array([[1, 0, 1]], bool))
    >>> n, labels.dtype.name, labels.tolist()
    (2, 'uint16', [[1, 0, 2]])
    """
    count, labels, _ = connected_components_compact(mask.astype(np.uint8, copy=False))
    return labels, count - 1


def padded_window(
    rows: tuple[int, int], cols: tuple[int, int], pad: int, shape: tuple[int, ...]
) -> tuple[slice, slice]:
    """The box ``rows`` x ``cols`` (start, stop) grown by ``pad`` pixels on every side and clipped to ``shape``.

    Examples
    --------
    >>> padded_window((1, 2), (4, 6), 2, (5, 7))
    (slice(0, 4, None), slice(2, 7, None))
    """
    return (
        slice(max(0, rows[0] - pad), min(shape[0], rows[1] + pad)),
        slice(max(0, cols[0] - pad), min(shape[1], cols[1] + pad)),
    )


def object_windows(labels: np.ndarray, pad: int) -> Iterator[tuple[int, tuple[slice, slice]]]:
    """Each object present in a label image, with its bounding box grown by ``pad`` pixels on every side and
    clipped to the image (:func:`padded_window`), by increasing label.

    Examples
    --------
    >>> labels = np.zeros((6, 6), np.int32); labels[1, 1] = 1; labels[4, 3:5] = 3
    >>> [(label, (rows.start, rows.stop, cols.start, cols.stop)) for label, (rows, cols) in object_windows(labels, 1)]
    [(1, (0, 3, 0, 3)), (3, (3, 6, 2, 6))]
    """
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is not None:
            rows, cols = box
            yield label, padded_window((rows.start, rows.stop), (cols.start, cols.stop), pad, labels.shape)


@dataclass(frozen=True)
class ObjectPixels:
    """The pixels of objects 1..n of a label image, gathered once.

    Attributes
    ----------
    shape : tuple of int
        The label image's shape.
    n : int
        Number of objects.
    flat : numpy.ndarray
        Raveled positions of the object pixels, grouped by label (raster order within a label).
    label : numpy.ndarray
        The label of each of those pixels (non-decreasing).
    counts : numpy.ndarray
        Pixels per object (length n).

    Examples
    --------
    >>> labels = np.array([[0, 2, 2], [1, 0, 2]], np.int32)
    >>> pixels = ObjectPixels.of(labels, 2)
    >>> pixels.counts.tolist(), pixels.means(np.arange(6).reshape(2, 3)).tolist()
    ([1, 3], [3.0, 2.6666666666666665])
    >>> pixels.positions(2).tolist()
    [1, 2, 5]
    """

    shape: tuple[int, int]
    n: int
    flat: np.ndarray
    label: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, labels: np.ndarray, n: int) -> ObjectPixels:
        """Gather the pixels of objects 1..n of ``labels`` (values above n are ignored)."""
        return cls.at(labels, np.flatnonzero(labels), n)

    @classmethod
    def at(cls, labels: np.ndarray, flat: np.ndarray, n: int) -> ObjectPixels:
        """Gather the object pixels of ``labels`` among the raveled positions ``flat`` (increasing; background and
        values above n are ignored): the objects made of those positions only."""
        label = labels.ravel()[flat]
        if n < int(label.max(initial=0)) or not label.all():
            keep = (label > 0) & (label <= n)
            flat, label = flat[keep], label[keep]
        order = np.argsort(label, kind="stable")
        flat, label = flat[order], label[order]
        counts = np.bincount(label, minlength=n + 1)[1:]
        return cls((int(labels.shape[0]), int(labels.shape[1])), int(n), flat, label, counts)

    def positions(self, label: int) -> np.ndarray:
        """Raveled positions of the pixels of object ``label`` (1..n), in raster order."""
        start = int(self.counts[: label - 1].sum())
        return self.flat[start : start + int(self.counts[label - 1])]

    def values(self, image: np.ndarray) -> np.ndarray:
        """The values of ``image`` at the object pixels (same order as :attr:`flat`)."""
        return image.ravel()[self.flat]

    def sums(self, image: np.ndarray) -> np.ndarray:
        """Sum of ``image`` over each object."""
        return self.sums_of(self.values(image))

    def means(self, image: np.ndarray) -> np.ndarray:
        """Mean of ``image`` over each object (0 for an empty one)."""
        return self.means_of(self.values(image))

    def sums_of(self, values: np.ndarray) -> np.ndarray:
        """Sum over each object of per-pixel ``values`` (aligned with :attr:`flat`)."""
        return np.bincount(self.label, values.astype(np.float64), self.n + 1)[1:]

    def means_of(self, values: np.ndarray) -> np.ndarray:
        """Mean over each object of per-pixel ``values`` (aligned with :attr:`flat`; 0 for an empty object)."""
        return self.sums_of(values) / np.maximum(self.counts, 1)

    def maxima(self, image: np.ndarray) -> np.ndarray:
        """Maximum of ``image`` over each object (-inf for an empty one)."""
        return self.maxima_of(self.values(image))

    def maxima_of(self, values: np.ndarray) -> np.ndarray:
        """Maximum over each object of per-pixel ``values`` (aligned with :attr:`flat`; -inf for an empty one)."""
        return self._reduce(np.maximum, values.astype(np.float64), -np.inf)

    def on_rim(self, labels: np.ndarray) -> np.ndarray:
        """Whether each object pixel (aligned with :attr:`flat`) has a background pixel of ``labels`` among its 8
        neighbours, the image's edge counting as background: what a 3 x 3 erosion of ``labels > 0`` clears, read
        from the neighbours of the object pixels alone (no full-size image is made).

        Examples
        --------
        >>> labels = np.zeros((5, 5), np.int32); labels[1:4, 1:4] = 1; labels[0, 4] = 2
        >>> ObjectPixels.of(labels, 2).on_rim(labels).astype(int).tolist()
        [1, 1, 1, 1, 0, 1, 1, 1, 1, 1]
        """
        rows, cols = self.shape
        row, col = np.divmod(self.flat, cols)
        rim = (row == 0) | (row == rows - 1) | (col == 0) | (col == cols - 1)
        inner = self.flat[~rim]
        touches = np.zeros(len(inner), bool)
        raveled = labels.ravel()
        for step in (-cols - 1, -cols, -cols + 1, -1, 1, cols - 1, cols, cols + 1):
            touches |= raveled[inner + step] == 0
        rim[~rim] = touches
        return rim

    def minima(self, positions: np.ndarray) -> np.ndarray:
        """Minimum of a per-pixel array (aligned with :attr:`flat`) over each object (0 for an empty one)."""
        return self._reduce(np.minimum, positions, 0)

    def _reduce(self, ufunc: np.ufunc, values: np.ndarray, empty: float) -> np.ndarray:
        result = np.full(self.n, empty, dtype=np.result_type(values.dtype, type(empty)))
        present = self.counts > 0
        if present.any():
            starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])[present]
            result[present] = ufunc.reduceat(values, starts)
        return result


def flat_fractions(pixels: ObjectPixels, image: np.ndarray) -> np.ndarray:
    """Fraction of each object's pixels that equal all 8 of their neighbours (beyond the image's edge, the edge).

    A radiograph carries quantum noise everywhere it was exposed, so no stretch of anatomy is flat; a graphic
    burned into the pixels (a laterality letter, a ruler, text) is, unless saturated. Only the objects' own pixels
    and their neighbours are read.

    Examples
    --------
    >>> image = np.array([[5, 5, 5, 1], [5, 5, 5, 2], [5, 5, 5, 3]], np.uint16)
    >>> labels = np.array([[1, 1, 1, 2], [1, 1, 1, 2], [1, 1, 1, 2]], np.int32)
    >>> flat_fractions(ObjectPixels.of(labels, 2), image).round(3).tolist()
    [0.667, 0.0]
    """
    rows, cols = pixels.shape
    row, col = np.divmod(pixels.flat, cols)
    values = image.ravel()[pixels.flat]
    flat = np.ones(len(values), bool)
    for d_row in (-1, 0, 1):
        for d_col in (-1, 0, 1):
            if d_row or d_col:
                neighbour = np.clip(row + d_row, 0, rows - 1) * cols + np.clip(col + d_col, 0, cols - 1)
                flat &= image.ravel()[neighbour] == values
    return np.bincount(pixels.label, flat, pixels.n + 1)[1:] / np.maximum(pixels.counts, 1)


def object_moments(labels: np.ndarray, n: int, pixels: ObjectPixels | None = None) -> dict[str, np.ndarray]:
    """Area, centroid, bounding box and second-moment shape of objects 1..n.

    Returns
    -------
    dict of numpy.ndarray, each of length n
        ``area_px``, ``centroid_row``, ``centroid_col``, ``bbox_row0``, ``bbox_col0``, ``bbox_row1``,
        ``bbox_col1`` (exclusive), ``major_axis_px``, ``minor_axis_px`` (of the ellipse with the same second
        moments, as scikit-image defines them), ``orientation_deg`` (angle of the major axis from the row axis,
        counter-clockwise, in (-90, 90]), ``eccentricity``.
    """
    pixels = pixels or ObjectPixels.of(labels, n)
    r_idx, c_idx = np.divmod(pixels.flat, labels.shape[1])
    index = pixels.label
    r, c = r_idx.astype(np.float64), c_idx.astype(np.float64)
    area = np.bincount(index, minlength=n + 1)[1:].astype(np.float64)
    safe = np.maximum(area, 1)
    mean_r = np.bincount(index, r, n + 1)[1:] / safe
    mean_c = np.bincount(index, c, n + 1)[1:] / safe
    dr, dc = r - mean_r[index - 1], c - mean_c[index - 1]
    # Central moments of the pixel centres, as scikit-image's inertia tensor uses them.
    mu_rr = np.bincount(index, dr * dr, n + 1)[1:] / safe
    mu_cc = np.bincount(index, dc * dc, n + 1)[1:] / safe
    mu_rc = np.bincount(index, dr * dc, n + 1)[1:] / safe
    spread = np.sqrt(((mu_rr - mu_cc) / 2) ** 2 + mu_rc**2)
    eig_major = (mu_rr + mu_cc) / 2 + spread
    eig_minor = np.maximum((mu_rr + mu_cc) / 2 - spread, 0)
    # scikit-image: angle between the row axis and the major axis, counter-clockwise.
    orientation = np.degrees(0.5 * np.arctan2(2 * mu_rc, mu_rr - mu_cc))
    orientation = np.where(orientation <= -90, orientation + 180, orientation) + 0.0  # no negative zero
    with np.errstate(invalid="ignore", divide="ignore"):
        eccentricity = np.where(eig_major > 0, np.sqrt(1 - eig_minor / eig_major), 0.0)
    present = pixels.counts > 0
    row0, col0 = pixels.minima(r_idx), pixels.minima(c_idx)
    row1 = np.where(present, pixels._reduce(np.maximum, r_idx, 0) + 1, 0)
    col1 = np.where(present, pixels._reduce(np.maximum, c_idx, 0) + 1, 0)
    return {
        "area_px": area.astype(np.int64),
        "centroid_row": mean_r,
        "centroid_col": mean_c,
        "bbox_row0": row0,
        "bbox_col0": col0,
        "bbox_row1": row1,
        "bbox_col1": col1,
        "major_axis_px": 4 * np.sqrt(eig_major),
        "minor_axis_px": 4 * np.sqrt(eig_minor),
        "orientation_deg": orientation,
        "eccentricity": eccentricity,
    }


def object_means(labels: np.ndarray, n: int, values: np.ndarray) -> np.ndarray:
    """Mean of ``values`` over each object 1..n (see :meth:`ObjectPixels.means` to measure many images)."""
    return ObjectPixels.of(labels, n).means(values)


def object_maxima(labels: np.ndarray, n: int, values: np.ndarray) -> np.ndarray:
    """Maximum of ``values`` over each object 1..n (only object pixels are visited)."""
    return ObjectPixels.of(labels, n).maxima(values)


def object_widths(labels: np.ndarray, n: int, bboxes: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Largest inscribed-disk diameter of each object, in pixels (twice its maximal distance to the outside).

    A ridge (cortical edge, skin fold) is long and has a small width whatever its curvature. Each object's
    distance transform is taken on its own bounding box grown by one pixel (8-connected objects never touch, so
    the nearest outside pixel always lies there): the cost follows the objects' area.
    """
    if n == 0:
        return np.zeros(0)
    bboxes = bboxes or object_moments(labels, n)
    widths = np.zeros(n)
    rows, cols = labels.shape
    for k in range(n):
        r0, c0 = max(int(bboxes["bbox_row0"][k]) - 1, 0), max(int(bboxes["bbox_col0"][k]) - 1, 0)
        r1, c1 = min(int(bboxes["bbox_row1"][k]) + 1, rows), min(int(bboxes["bbox_col1"][k]) + 1, cols)
        crop = (labels[r0:r1, c0:c1] == k + 1).view(np.uint8)
        if not crop.any():
            continue
        distance = cv2.distanceTransform(np.pad(crop, 1), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        # A single pixel is 1 wide: the distance transform gives 1 for it, so width = 2*d - 1. The exact distance
        # is the root of a whole number of squared pixels: taken again in float64 from that number, it does not
        # depend on the float32 rounding of the transform (which differs between a mirrored object and itself).
        widths[k] = 2 * np.sqrt(np.round(float(distance.max()) ** 2)) - 1
    return widths


def object_solidity(labels: np.ndarray, n: int, bboxes: dict[str, np.ndarray]) -> np.ndarray:
    """Area over convex-hull area of each object (pixel squares, not centres), in (0, 1]."""
    solidity = np.ones(n)
    for k in range(n):
        r0, c0 = int(bboxes["bbox_row0"][k]), int(bboxes["bbox_col0"][k])
        r1, c1 = int(bboxes["bbox_row1"][k]), int(bboxes["bbox_col1"][k])
        crop = labels[r0:r1, c0:c1] == k + 1
        area = int(crop.sum())
        if area < 3:
            continue
        points = np.column_stack(np.nonzero(crop)[::-1]).astype(np.int32)
        hull = cv2.convexHull(points)[:, 0, :]
        # Hull of the pixel squares = hull of the centres grown by half a pixel: its area adds half the
        # city-block perimeter of the centre hull plus one (the four corner quarter-squares).
        steps = np.abs(np.diff(np.vstack([hull, hull[:1]]), axis=0)).sum()
        hull_area = cv2.contourArea(hull.reshape(-1, 1, 2)) + steps / 2 + 1
        solidity[k] = min(1.0, area / hull_area)
    return solidity


def neighbour_fraction(mask: np.ndarray, centroids: np.ndarray, areas: np.ndarray, window_px: float) -> np.ndarray:
    """Fraction of a ``window_px`` square around each object's centroid covered by *other* objects of ``mask``.

    Trabecular texture and noisy regions breed many candidates side by side; a deposit in clean tissue stands
    alone. Computed on a grid of about ``window_px / 8`` pixel cells centred on the image (:mod:`.grid`), with a
    window of an odd number of cells, read between cells at the centroid, so it costs little on large films and a
    mirrored film gives the same fractions.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean mask of all objects.
    centroids : numpy.ndarray
        (n, 2) centroid (row, col) of each object.
    areas : numpy.ndarray
        (n,) pixel count of each object (its own share of the window is subtracted).
    window_px : float
        Side of the window in pixels.

    Returns
    -------
    numpy.ndarray
        (n,) fractions in [0, 1].

    Examples
    --------
    >>> mask = np.zeros((40, 40), bool); mask[4:6, 4:6] = True; mask[20:40:3, 20:40:3] = True
    >>> neighbour_fraction(mask, np.array([[4.5, 4.5], [29.0, 29.0]]), np.array([4, 1]), 16.0).round(2).tolist()
    [0.0, 0.11]
    """
    if not len(centroids):
        return np.zeros(0)
    cell = grid.symmetric_factor(mask.shape, int(window_px / 8))
    rows, cols = mask.shape
    small = grid.block_mean(np.multiply(mask.view(np.uint8), 255, dtype=np.uint8), cell)
    side = max(1, int(round(window_px / cell))) | 1  # odd: centred on its cell
    covered = cv2.boxFilter(small.astype(np.float32) / 255.0, -1, (side, side), borderType=cv2.BORDER_CONSTANT)
    # Read between cells (bilinear) at each centroid, so that a mirrored film reads the mirrored value.
    where = [grid.block_coordinates(centroids[:, 0], rows, cell), grid.block_coordinates(centroids[:, 1], cols, cell)]
    at_centroid = ndimage.map_coordinates(covered.astype(np.float64), where, order=1, mode="nearest")
    own = np.asarray(areas, float) / float(side * cell) ** 2
    return np.clip(at_centroid - own, 0.0, 1.0)


def hysteresis_trimmed(
    low: np.ndarray, high: np.ndarray, values: Callable[[], np.ndarray], fraction: float
) -> np.ndarray:
    """The 8-connected regions of ``low`` holding a pixel of ``high`` (hysteresis), each trimmed to its pixels where
    ``values`` reaches ``fraction`` of the region's peak: the same mask as ``trim_to_peak_fraction(hysteresis(low,
    high), values(), fraction)``, with one labelling instead of two (a region kept by the hysteresis is a region of
    ``low``). ``values`` is called only once the regions are found and their labels dropped, so a caller can make
    the values then (the film's raw response) rather than hold them meanwhile.

    Examples
    --------
    >>> values = np.array([[0, 2, 10, 4, 0, 3, 1, 0, 9]], np.uint16)
    >>> low, high = values > 0, values >= 9
    >>> hysteresis_trimmed(low, high, lambda: values, 0.3).astype(int).tolist()
    [[0, 0, 1, 1, 0, 0, 0, 0, 1]]
    """
    labels, keep = seeded_components(low, high)
    if fraction <= 0:
        return keep[labels]
    pixels = ObjectPixels.at(labels, np.flatnonzero(keep[labels]), len(keep) - 1)
    del labels
    values_at = pixels.values(values())
    peaks = pixels.maxima_of(values_at)
    trimmed = np.zeros(pixels.shape, bool)
    trimmed.ravel()[pixels.flat[values_at >= fraction * peaks[pixels.label - 1]]] = True
    return trimmed


def trim_to_peak_fraction(mask: np.ndarray, response: np.ndarray, fraction: float) -> np.ndarray:
    """Keep the pixels of each 8-connected region of ``mask`` whose response reaches ``fraction`` of its peak.

    A lesion's edge is blurred by the detector; the noise-based threshold alone would take in its whole blurred
    skirt. A fraction of the peak puts the edge near the outline for both sharp and tapering deposits.

    Examples
    --------
    >>> response = np.array([[0, 2, 10, 4, 0, 3, 1]], np.uint16)
    >>> trim_to_peak_fraction(response > 0, response, 0.3).astype(int).tolist()
    [[0, 0, 1, 1, 0, 1, 1]]
    """
    if fraction <= 0:
        return mask
    # Every region of the mask holds a pixel of the mask: the hysteresis keeps them all, and only the trim is left.
    return hysteresis_trimmed(mask, mask, lambda: response, fraction)
