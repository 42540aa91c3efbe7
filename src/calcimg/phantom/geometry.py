"""Coordinates, transforms and projected 3-D primitives of the phantom.

Conventions
-----------
* Physical coordinates are ``(x, y)`` in mm with x to the right (columns) and y down (rows).
* The *anatomy* frame is the patient's own frame, in anatomical mm. A visit maps it to the *detector* plane with a
  3x3 homogeneous similarity matrix (magnification, rotation, shift, optional mirror).
* On a :class:`Grid` the detector origin is the centre of the image and pixel ``(row, col)`` has its centre at
  ``x = (col + 0.5 - cols / 2) * spacing``, ``y = (row + 0.5 - rows / 2) * spacing``.
* Rotation angles follow OpenCV: positive turns counter-clockwise as displayed.

Every primitive is the parallel projection of a simple solid: it returns the chord lengths (mm of material crossed
by the ray through a point) that the acquisition model turns into attenuation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BBox = tuple[float, float, float, float]  # xmin, ymin, xmax, ymax in anatomy mm


def similarity(
    scale: float = 1.0, rotation_deg: float = 0.0, shift: tuple[float, float] = (0.0, 0.0), mirror: bool = False
) -> np.ndarray:
    """Homogeneous 3x3 matrix of ``x' = scale * R(rotation) @ M @ x + shift``.

    Parameters
    ----------
    scale : float
        Magnification.
    rotation_deg : float
        Counter-clockwise as displayed (y down), as ``cv2.getRotationMatrix2D``.
    shift : tuple of float
        (dx, dy) in mm.
    mirror : bool
        Flip x before rotating (the other side of the body).

    Returns
    -------
    numpy.ndarray
        float64 (3, 3).

    Examples
    --------
    >>> np.round(apply(similarity(rotation_deg=90), np.array([1.0, 0.0])), 6)
    array([ 0., -1.])
    """
    a = np.deg2rad(rotation_deg)
    c, s = np.cos(a), np.sin(a)
    rot = np.array([[c, s], [-s, c]])
    flip = np.diag([-1.0 if mirror else 1.0, 1.0])
    out = np.eye(3)
    out[:2, :2] = scale * rot @ flip
    out[:2, 2] = shift
    return out


def apply(matrix: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Apply a 3x3 homogeneous transform to points of shape (..., 2)."""
    xy = np.asarray(xy, dtype=np.float64)
    return xy @ matrix[:2, :2].T + matrix[:2, 2]


@dataclass(frozen=True)
class Grid:
    """The pixel grid of one visit.

    Attributes
    ----------
    rows, cols : int
        Image shape.
    spacing_mm : float
        Square pixel spacing at the detector.
    """

    rows: int
    cols: int
    spacing_mm: float

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return (self.rows, self.cols)

    @property
    def extent_mm(self) -> tuple[float, float]:
        """(height, width) of the detector field in mm."""
        return (self.rows * self.spacing_mm, self.cols * self.spacing_mm)

    def mm_to_px(self) -> np.ndarray:
        """3x3 matrix from detector ``(x, y)`` mm to ``(col, row)`` pixel coordinates (pixel centres at integers)."""
        s = self.spacing_mm
        return np.array([[1 / s, 0, self.cols / 2 - 0.5], [0, 1 / s, self.rows / 2 - 0.5], [0, 0, 1.0]])


@dataclass(frozen=True)
class View:
    """A grid and the transform that brings the anatomy onto it.

    Attributes
    ----------
    grid : Grid
    anat_to_det : numpy.ndarray
        3x3 matrix from anatomy mm to detector mm.
    """

    grid: Grid
    anat_to_det: np.ndarray

    @property
    def anat_to_px(self) -> np.ndarray:
        """3x3 matrix from anatomy mm to ``(col, row)`` pixel coordinates."""
        return self.grid.mm_to_px() @ self.anat_to_det

    @property
    def px_to_anat(self) -> np.ndarray:
        """3x3 matrix from ``(col, row)`` pixel coordinates to anatomy mm."""
        return np.linalg.inv(self.anat_to_px)

    @property
    def anat_mm_per_px(self) -> float:
        """Anatomical mm covered by one pixel."""
        return float(self.grid.spacing_mm / np.sqrt(abs(np.linalg.det(self.anat_to_det[:2, :2]))))

    def window(self, bbox: BBox, margin_px: int = 2) -> tuple[slice, slice] | None:
        """The (row, col) slices of the pixels covering an anatomy bounding box, or None when off the grid."""
        xs = np.array([bbox[0], bbox[2], bbox[2], bbox[0]])
        ys = np.array([bbox[1], bbox[1], bbox[3], bbox[3]])
        cr = apply(self.anat_to_px, np.stack([xs, ys], axis=-1))
        c0 = max(int(np.floor(cr[:, 0].min())) - margin_px, 0)
        c1 = min(int(np.ceil(cr[:, 0].max())) + margin_px + 1, self.grid.cols)
        r0 = max(int(np.floor(cr[:, 1].min())) - margin_px, 0)
        r1 = min(int(np.ceil(cr[:, 1].max())) + margin_px + 1, self.grid.rows)
        if c0 >= c1 or r0 >= r1:
            return None
        return (slice(r0, r1), slice(c0, c1))

    def coords(
        self, window: tuple[slice, slice], sub: int = 1, dtype: type = np.float64
    ) -> tuple[np.ndarray, np.ndarray]:
        """Anatomy coordinates (u, v) of the pixel centres in a window.

        Parameters
        ----------
        window : tuple of slice
            (rows, cols) slices.
        sub : int
            Supersampling: each pixel gives ``sub x sub`` evenly spaced sample points.
        dtype : type
            Output dtype.

        Returns
        -------
        u, v : numpy.ndarray
            Arrays of shape ``(n_rows * sub, n_cols * sub)``.
        """
        offs = (np.arange(sub) + 0.5) / sub - 0.5
        rr = (np.arange(window[0].start, window[0].stop)[:, None] + offs[None, :]).ravel()
        cc = (np.arange(window[1].start, window[1].stop)[:, None] + offs[None, :]).ravel()
        m = self.px_to_anat
        u = (m[0, 0] * cc[None, :] + m[0, 1] * rr[:, None] + m[0, 2]).astype(dtype, copy=False)
        v = (m[1, 0] * cc[None, :] + m[1, 1] * rr[:, None] + m[1, 2]).astype(dtype, copy=False)
        return u, v


def _local(u: np.ndarray, v: np.ndarray, centre: tuple[float, float], angle_deg: float) -> tuple:
    """Coordinates relative to ``centre`` in a frame turned by ``angle_deg`` (same sense as :func:`similarity`)."""
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    du, dv = u - centre[0], v - centre[1]
    # inverse of the rotation in similarity(): R^T
    return c * du - s * dv, s * du + c * dv


def _chord(radius: np.ndarray | float, dist: np.ndarray) -> np.ndarray:
    """Chord length through a circle of ``radius`` at distance ``dist`` from its centre (0 outside)."""
    return 2.0 * np.sqrt(np.maximum(np.square(radius) - np.square(dist), 0.0))


@dataclass(frozen=True)
class Tube:
    """A long bone: a hollow body of revolution about the segment p0-p1, with flared, rounded ends.

    Attributes
    ----------
    p0, p1 : tuple of float
        Axis end points (anatomy mm).
    r0, r_mid, r1 : float
        Outer radius at p0, along the shaft and at p1.
    k_mid, k_end : float
        Inner (medullary) radius as a fraction of the outer radius along the shaft and at the ends; a thick cortex
        has a small k.
    flare : float
        Fraction of the length over which each end widens.
    density : float
        Multiplier of the bone attenuation coefficients.
    cap : float
        Length of the rounded end caps as a fraction of the end radius (1 = hemisphere, smaller = flatter).
    """

    p0: tuple[float, float]
    p1: tuple[float, float]
    r0: float
    r_mid: float
    r1: float
    k_mid: float = 0.6
    k_end: float = 0.85
    flare: float = 0.22
    density: float = 1.0
    cap: float = 0.6

    def bbox(self) -> BBox:
        r = max(self.r0, self.r_mid, self.r1)
        return (
            min(self.p0[0], self.p1[0]) - r,
            min(self.p0[1], self.p1[1]) - r,
            max(self.p0[0], self.p1[0]) + r,
            max(self.p0[1], self.p1[1]) + r,
        )

    def _geometry(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        dx, dy = self.p1[0] - self.p0[0], self.p1[1] - self.p0[1]
        length = float(np.hypot(dx, dy))
        ex, ey = dx / length, dy / length
        du, dv = u - self.p0[0], v - self.p0[1]
        along = du * ex + dv * ey
        perp = du * ey - dv * ex
        t = np.clip(along / length, 0.0, 1.0)
        # beyond an end the body closes with a half-ellipsoid cap of length cap * radius
        over = (np.maximum(-along, 0.0) + np.maximum(along - length, 0.0)) / self.cap
        dist = np.hypot(perp, over)
        w0 = np.square(np.clip(1.0 - t / self.flare, 0.0, 1.0))
        w1 = np.square(np.clip(1.0 - (1.0 - t) / self.flare, 0.0, 1.0))
        radius = self.r_mid + (self.r0 - self.r_mid) * w0 + (self.r1 - self.r_mid) * w1
        k = self.k_mid + (self.k_end - self.k_mid) * np.maximum(w0, w1)
        return dist, radius, k

    def rho(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Normalised distance from the axis: below 1 inside the projected outline."""
        dist, radius, _ = self._geometry(u, v)
        return dist / radius

    def chords(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(outer, inner) chord lengths in mm: the cortex is ``outer - inner``, the medulla ``inner``."""
        dist, radius, k = self._geometry(u, v)
        return _chord(radius, dist), _chord(k * radius, dist)


@dataclass(frozen=True)
class Ellipsoid:
    """A (super)ellipsoid seen along its depth axis, optionally hollow (a shell of cortex around cancellous bone).

    Attributes
    ----------
    centre : tuple of float
    a, b : float
        In-plane semi-axes before rotation (a along x).
    depth : float
        Half-depth (semi-axis along the beam).
    angle_deg : float
    k : float
        Inner surface as a fraction of the outer one (1 gives a solid body: no cortex).
    n : float
        Superellipse exponent of the outline (2 = ellipse, larger = boxier).
    density : float
        Multiplier of the attenuation coefficients.
    """

    centre: tuple[float, float]
    a: float
    b: float
    depth: float
    angle_deg: float = 0.0
    k: float = 0.85
    n: float = 2.0
    density: float = 1.0

    def bbox(self) -> BBox:
        r = float(np.hypot(self.a, self.b)) if self.n > 2 else max(self.a, self.b)
        return (self.centre[0] - r, self.centre[1] - r, self.centre[0] + r, self.centre[1] + r)

    def rho(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Normalised (super)elliptic radius: below 1 inside."""
        x, y = _local(u, v, self.centre, self.angle_deg)
        if self.n == 2.0:
            return np.sqrt(np.square(x / self.a) + np.square(y / self.b))
        return (np.abs(x / self.a) ** self.n + np.abs(y / self.b) ** self.n) ** (1.0 / self.n)

    def chords(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(outer, inner) chord lengths in mm."""
        rho = self.rho(u, v)
        outer = _chord(1.0, rho) * self.depth
        inner = _chord(self.k, rho) * self.depth
        return outer, inner

    def thickness(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Total chord (soft-tissue use)."""
        return _chord(1.0, self.rho(u, v)) * self.depth


@dataclass(frozen=True)
class Ring:
    """A bony ring (such as the pubic and ischial rami around the obturator foramen): a tube bent along an ellipse.

    Attributes
    ----------
    centre : tuple of float
    a, b : float
        Semi-axes of the ring's centre line.
    tube : float
        Tube radius.
    angle_deg : float
    k : float
        Inner/outer radius ratio of the tube.
    density : float
    """

    centre: tuple[float, float]
    a: float
    b: float
    tube: float
    angle_deg: float = 0.0
    k: float = 0.7
    density: float = 1.0

    def bbox(self) -> BBox:
        r = max(self.a, self.b) + self.tube
        return (self.centre[0] - r, self.centre[1] - r, self.centre[0] + r, self.centre[1] + r)

    def _dist(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        x, y = _local(u, v, self.centre, self.angle_deg)
        s = np.sqrt(np.square(x / self.a) + np.square(y / self.b))
        return np.abs(s - 1.0) * (0.5 * (self.a + self.b))

    def rho(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Normalised distance from the centre line: below 1 inside."""
        return self._dist(u, v) / self.tube

    def chords(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(outer, inner) chord lengths in mm."""
        d = self._dist(u, v)
        return _chord(self.tube, d), _chord(self.k * self.tube, d)


@dataclass(frozen=True)
class SoftTube:
    """A limb segment: elliptical cross-section of half-width tapering from w0 (at p0) to w1 (at p1).

    Attributes
    ----------
    p0, p1 : tuple of float
    w0, w1 : float
        In-plane half-widths.
    depth_ratio : float
        Half-depth / half-width of the cross-section.
    """

    p0: tuple[float, float]
    p1: tuple[float, float]
    w0: float
    w1: float
    depth_ratio: float = 0.9

    def bbox(self) -> BBox:
        r = max(self.w0, self.w1)
        return (
            min(self.p0[0], self.p1[0]) - r,
            min(self.p0[1], self.p1[1]) - r,
            max(self.p0[0], self.p1[0]) + r,
            max(self.p0[1], self.p1[1]) + r,
        )

    def thickness(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Tissue crossed by the ray (mm)."""
        dx, dy = self.p1[0] - self.p0[0], self.p1[1] - self.p0[1]
        t = np.clip(((u - self.p0[0]) * dx + (v - self.p0[1]) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        dist = np.hypot(u - (self.p0[0] + t * dx), v - (self.p0[1] + t * dy))
        return self.depth_ratio * _chord(self.w0 + (self.w1 - self.w0) * t, dist)
