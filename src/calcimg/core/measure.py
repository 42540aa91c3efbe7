"""Labelling and per-object measurement, vectorised over all objects at once.

Sums over objects use :func:`numpy.bincount` on the label image, so the cost is a few passes over the pixels
whatever the number of objects. Lengths are in pixels here; :mod:`calcimg.pipeline` converts to mm.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi


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


def object_moments(labels: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Area, centroid, bounding box and second-moment shape of objects 1..n.

    Returns
    -------
    dict of numpy.ndarray, each of length n
        ``area_px``, ``centroid_row``, ``centroid_col``, ``bbox_row0``, ``bbox_col0``, ``bbox_row1``,
        ``bbox_col1`` (exclusive), ``major_axis_px``, ``minor_axis_px`` (of the ellipse with the same second
        moments, as scikit-image defines them), ``orientation_deg`` (angle of the major axis from the row axis,
        counter-clockwise, in (-90, 90]), ``eccentricity``.
    """
    r_idx, c_idx = np.nonzero(labels)
    index = labels[r_idx, c_idx]
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
    boxes = ndi.find_objects(labels, max_label=n)
    row0 = np.array([b[0].start if b else 0 for b in boxes], np.int64)
    row1 = np.array([b[0].stop if b else 0 for b in boxes], np.int64)
    col0 = np.array([b[1].start if b else 0 for b in boxes], np.int64)
    col1 = np.array([b[1].stop if b else 0 for b in boxes], np.int64)
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
    """Mean of ``values`` over each object 1..n."""
    flat = labels.ravel()
    inside = flat > 0
    sums = np.bincount(flat[inside], values.ravel()[inside].astype(np.float64), n + 1)[1:]
    counts = np.bincount(flat[inside], minlength=n + 1)[1:]
    return sums / np.maximum(counts, 1)


def object_maxima(labels: np.ndarray, n: int, values: np.ndarray) -> np.ndarray:
    """Maximum of ``values`` over each object 1..n (only object pixels are visited)."""
    inside = labels > 0
    result = np.full(n + 1, -np.inf)
    np.maximum.at(result, labels[inside], values[inside].astype(np.float64))
    return result[1:]


def object_widths(labels: np.ndarray, n: int) -> np.ndarray:
    """Largest inscribed-disk diameter of each object, in pixels (twice its maximal distance to the outside).

    A ridge (cortical edge, skin fold) is long and has a small width whatever its curvature.
    """
    if n == 0:
        return np.zeros(0)
    inside = (labels > 0).astype(np.uint8)
    distance = cv2.distanceTransform(np.pad(inside, 1), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    # A single pixel is 1 wide: the distance transform gives 1 for it, so width = 2*d - 1.
    return 2 * object_maxima(labels, n, distance) - 1


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
