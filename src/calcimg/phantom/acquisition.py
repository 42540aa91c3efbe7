"""From attenuation to stored pixels: exposure, scatter, quantum noise, detector blur, log and vendor processing.

The model, per visit (all arrays float32 on the visit's grid):

1. ``A`` is the line integral of attenuation through the patient (soft tissue + bone + lesions); the lead
   marker lies on the detector and is applied as a filter after scatter.
2. Automatic exposure control: the unattenuated fluence ``I0`` is chosen so that the median pixel under the anatomy
   receives ``aec_quanta`` detected quanta: ``I0 = aec_quanta * exp(median(A))``.
3. Primary ``P = I0 * heel(x, y) * exp(-A) * collimator(x, y)``; the heel effect is a linear ramp of total
   relative amplitude ``heel`` along a random direction; a white (unexposed) collimator band passes a fraction
   ``1e-3`` with a penumbra of about 0.5 mm.
4. Scatter ``S = scatter * lowpass(P * A)`` (Gaussian, sigma 20 mm): a single-scatter estimate, zero in air
   and giving a scatter-to-primary ratio that grows with the patient's thickness. Objects on the detector (the
   lead marker) and the collimator stop primary and scatter alike, so unexposed bands stay white.
5. Quantum noise, Gaussian approximation of Poisson: ``I = (P + S) + sqrt(P + S) * z``, ``z ~ N(0, 1)``, i.e. the
   variance equals the mean in quanta (gain 1).
6. Detector blur: Gaussian of ``blur_px`` pixels applied after the noise, as the light spread of a phosphor, so
   the noise is spatially correlated as on real CR/DX films.
7. Log: ``D = ln(I0) - ln(I)`` (close to ``A``; bright = dense).
8. Display (exposure recognition): ``y = clip((D - D_lo) / (D_hi - D_lo), 0)`` with ``D_lo`` and ``D_hi`` the
   1st and 99.5th percentiles of ``D`` over the anatomy (``D_lo`` at least the air level); tone curve
   ``y ** gamma``; ``v = air_level + (dense_level - air_level) * y``; optional unsharp mask
   ``v += amount * (v - blur(v, usm_sigma))`` (halos); black collimation sets ``v = 0``; stored value
   ``round(v * (2**bits - 1))`` clipped to the range, inverted for MONOCHROME1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from calcimg.phantom.config import PhantomConfig
from calcimg.phantom.geometry import BBox, Grid, View, apply

#: Attenuation (line integral) of the lead letter and of its plastic block.
LEAD_ATTENUATION = 7.0
BLOCK_ATTENUATION = 0.3
#: Fraction of the beam that reaches the detector behind a collimator blade.
COLLIMATOR_TRANSMISSION = 1e-3
SIDES = ("top", "bottom", "left", "right")


# ----------------------------------------------------------------------------------------------------------------
# texture


@dataclass(frozen=True)
class Texture:
    """Band-passed noise on a canvas in anatomy mm (unit standard deviation), sampled bilinearly.

    Attributes
    ----------
    canvas : numpy.ndarray
        float32 (rows, cols).
    origin : tuple of float
        Anatomy (x, y) of the centre of canvas pixel (0, 0).
    cell : float
        Canvas pixel size in anatomy mm.
    """

    canvas: np.ndarray
    origin: tuple[float, float]
    cell: float

    def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        mx = ((u - self.origin[0]) / self.cell).astype(np.float32)
        my = ((v - self.origin[1]) / self.cell).astype(np.float32)
        return cv2.remap(self.canvas, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def make_texture(
    rng: np.random.Generator, bbox: BBox, cell: float, sigma_mm: tuple[float, float], ridges: bool = False
) -> Texture:
    """Difference-of-Gaussians filtered white noise over an anatomy bounding box.

    Parameters
    ----------
    rng : numpy.random.Generator
    bbox : tuple of float
        (xmin, ymin, xmax, ymax) in anatomy mm.
    cell : float
        Canvas pixel size (mm).
    sigma_mm : tuple of float
        (fine, coarse) Gaussian sigmas of the band-pass.
    ridges : bool
        Keep only the zero crossings of the band-passed noise as bright lines: a connected network that looks
        like trabecular bone.

    Returns
    -------
    Texture
    """
    cols = int(np.ceil((bbox[2] - bbox[0]) / cell)) + 2
    rows = int(np.ceil((bbox[3] - bbox[1]) / cell)) + 2
    noise = rng.standard_normal((rows, cols), dtype=np.float32)
    fine = cv2.GaussianBlur(noise, (0, 0), max(sigma_mm[0] / cell, 0.3))
    coarse = cv2.GaussianBlur(noise, (0, 0), sigma_mm[1] / cell)
    band = fine - coarse
    band /= max(float(band.std()), 1e-6)
    if ridges:
        band = np.exp(-np.square(band / np.float32(0.6)))
        band -= np.float32(band.mean())
        band /= max(float(band.std()), 1e-6)
    return Texture(band, (bbox[0] - cell, bbox[1] - cell), cell)


# ----------------------------------------------------------------------------------------------------------------
# lead marker


@dataclass(frozen=True)
class Marker:
    """A lead letter in a plastic block lying on the detector.

    Attributes
    ----------
    letter : str
        "L" or "R".
    centre : tuple of float
        Detector (x, y) mm.
    height_mm : float
        Letter height.
    angle_deg : float
    mirrored : bool
    """

    letter: str
    centre: tuple[float, float]
    height_mm: float
    angle_deg: float
    mirrored: bool

    def radius_mm(self) -> float:
        """Radius of a circle about the centre containing the block."""
        return 0.9 * self.height_mm

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description."""
        return {
            "letter": self.letter,
            "centre_mm": list(self.centre),
            "height_mm": self.height_mm,
            "angle_deg": self.angle_deg,
            "mirrored": self.mirrored,
        }


def _letter_mask(letter: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Block letter in unit coordinates (x in [0, 0.7], y in [0, 1], y down)."""
    w = 0.17
    inside = (x >= 0) & (x <= 0.7) & (y >= 0) & (y <= 1)
    stem = x <= w
    if letter == "L":
        return inside & (stem | (y >= 1 - w))
    top = (x <= 0.42) & (y <= w)
    mid = (x <= 0.42) & (y >= 0.54 - w) & (y <= 0.54)
    r = np.hypot(x - 0.42, y - 0.27)
    bowl = (x >= 0.42) & (r <= 0.27) & (r >= 0.27 - w)
    t = np.clip(((x - 0.36) * 0.34 + (y - 0.54) * 0.46) / (0.34**2 + 0.46**2), 0, 1)
    leg = np.hypot(x - 0.36 - 0.34 * t, y - 0.54 - 0.46 * t) <= 0.55 * w
    return inside & (stem | top | mid | bowl | leg)


def render_marker(marker: Marker, grid: Grid, sub: int = 3) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
    """Attenuation of a marker on a grid.

    Parameters
    ----------
    marker : Marker
    grid : Grid
    sub : int
        Supersampling.

    Returns
    -------
    window : tuple of slice
    attenuation : numpy.ndarray
        float32 line integrals in the window.
    letter : numpy.ndarray
        bool, pixel centres inside the lead letter.
    """
    view = View(grid, np.eye(3))
    r = marker.radius_mm()
    win = view.window((marker.centre[0] - r, marker.centre[1] - r, marker.centre[0] + r, marker.centre[1] + r), 1)
    if win is None:
        raise RuntimeError("marker outside the field")

    def local(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = np.deg2rad(marker.angle_deg)
        dx, dy = xs - marker.centre[0], ys - marker.centre[1]
        lx = (np.cos(a) * dx - np.sin(a) * dy) / marker.height_mm
        ly = (np.sin(a) * dx + np.cos(a) * dy) / marker.height_mm
        lx = -lx if marker.mirrored else lx
        return lx + 0.35, ly + 0.5

    xs, ys = view.coords(win, sub=sub)
    lx, ly = local(xs, ys)
    block = (lx >= -0.25) & (lx <= 0.95) & (ly >= -0.2) & (ly <= 1.2)
    att = BLOCK_ATTENUATION * block + LEAD_ATTENUATION * _letter_mask(marker.letter, lx, ly)
    h, w = win[0].stop - win[0].start, win[1].stop - win[1].start
    att = att.reshape(h, sub, w, sub).mean(axis=(1, 3)).astype(np.float32)
    xc, yc = view.coords(win)
    letter = _letter_mask(marker.letter, *local(xc, yc))
    return win, att, letter


# ----------------------------------------------------------------------------------------------------------------
# collimation


@dataclass(frozen=True)
class Collimation:
    """Collimator bands on some sides of the film.

    Attributes
    ----------
    depth_mm : dict
        side -> depth of the band from the image edge (at the side's middle).
    angle_deg : dict
        side -> tilt of the band's edge.
    black : bool
        Masked to black by software (value 0) instead of white (unexposed).
    """

    depth_mm: dict[str, float]
    angle_deg: dict[str, float]
    black: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description."""
        return {
            "sides": {s: {"depth_mm": self.depth_mm[s], "angle_deg": self.angle_deg[s]} for s in self.depth_mm},
            "kind": "black" if self.black else "white",
        }


def _side_line(side: str, angle_deg: float, grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(point on the image border, inward unit normal of the band edge, unrotated normal), in (col, row) px."""
    rows, cols = grid.rows, grid.cols
    point, normal = {
        "top": ((cols / 2 - 0.5, -0.5), (0.0, 1.0)),
        "bottom": ((cols / 2 - 0.5, rows - 0.5), (0.0, -1.0)),
        "left": ((-0.5, rows / 2 - 0.5), (1.0, 0.0)),
        "right": ((cols - 0.5, rows / 2 - 0.5), (-1.0, 0.0)),
    }[side]
    a = np.deg2rad(angle_deg)
    n = np.array(normal)
    rotated = np.array([n[0] * np.cos(a) - n[1] * np.sin(a), n[0] * np.sin(a) + n[1] * np.cos(a)])
    return np.array(point), rotated, n


def field_distance(coll: Collimation, grid: Grid) -> np.ndarray | None:
    """Signed distance in pixels from each pixel centre to the nearest collimator edge (positive inside the field).

    Returns None when no side is collimated.
    """
    if not coll.depth_mm:
        return None
    rr = np.arange(grid.rows, dtype=np.float32)[:, None]
    cc = np.arange(grid.cols, dtype=np.float32)[None, :]
    out = None
    for side, depth in coll.depth_mm.items():
        point, normal, base = _side_line(side, coll.angle_deg[side], grid)
        edge = point + base * depth / grid.spacing_mm
        d = (cc - np.float32(edge[0])) * np.float32(normal[0]) + (rr - np.float32(edge[1])) * np.float32(normal[1])
        out = d if out is None else np.minimum(out, d)
    return out


def draw_collimation(
    rng: np.random.Generator,
    config: PhantomConfig,
    grid: Grid,
    keep_out: list[tuple[int, int, int, int]],
    margin_mm: float = 3.0,
) -> Collimation:
    """Draw collimator bands that leave every keep-out box (r0, r1, c0, c1 in px) in the exposed field.

    Parameters
    ----------
    rng : numpy.random.Generator
    config : PhantomConfig
    grid : Grid
    keep_out : list of tuple
        Pixel boxes (lesions) the bands must not reach.
    margin_mm : float
        Clearance between a band and a keep-out box.

    Returns
    -------
    Collimation
    """
    w = np.asarray(config.collimation_sides, dtype=np.float64)
    n_sides = int(rng.choice(len(w), p=w / w.sum()))
    sides = [SIDES[i] for i in sorted(rng.choice(4, size=n_sides, replace=False))] if n_sides else []
    black = bool(rng.random() < config.p_black_collimation)
    depth: dict[str, float] = {}
    angle: dict[str, float] = {}
    corners = np.array([(c, r) for r0, r1, c0, c1 in keep_out for r in (r0, r1) for c in (c0, c1)], dtype=np.float64)
    for side in sides:
        a = float(rng.uniform(-config.collimation_angle_deg, config.collimation_angle_deg))
        d = float(rng.uniform(*config.collimation_mm))
        if corners.size:
            point, normal, base = _side_line(side, a, grid)
            s0 = (corners - point) @ normal
            d_max = float((s0.min() - margin_mm / grid.spacing_mm) / (base @ normal)) * grid.spacing_mm
            d = min(d, d_max)
        # a tilted edge must not cut into the opposite corner of its own side
        if d < config.collimation_mm[0] * 0.5:
            continue
        depth[side] = round(d, 3)
        angle[side] = round(a, 3)
    return Collimation(depth, angle, black)


def place_marker(
    rng: np.random.Generator,
    config: PhantomConfig,
    grid: Grid,
    field: np.ndarray | None,
    keep_out: list[tuple[int, int, int, int]],
    letter: str,
) -> Marker | None:
    """Put the lead letter near a corner of the exposed field, clear of the lesions.

    Returns None when no corner has room.
    """
    height = float(rng.uniform(*config.marker_height_mm))
    angle = float(rng.uniform(-12, 12))
    mirrored = bool(rng.random() < config.p_marker_mirrored)
    corners = rng.permutation(4)
    insets = rng.uniform(4.0, 25.0, size=3)
    half_h, half_w = 0.5 * grid.rows * grid.spacing_mm, 0.5 * grid.cols * grid.spacing_mm
    to_px = grid.mm_to_px()
    radius = 0.9 * height
    for corner in corners:
        sx, sy = (-1 if corner in (0, 3) else 1), (-1 if corner in (0, 1) else 1)
        for inset in insets:
            for extra in (0.0, 20.0, 45.0):
                off = inset + extra + radius
                centre = (sx * (half_w - off), sy * (half_h - off))
                c, r = apply(to_px, np.array(centre))
                rpx = radius / grid.spacing_mm
                r0, r1, c0, c1 = r - rpx, r + rpx, c - rpx, c + rpx
                if r0 < 0 or c0 < 0 or r1 >= grid.rows or c1 >= grid.cols:
                    continue
                if (
                    field is not None
                    and min(
                        field[int(r0), int(c0)],
                        field[int(r0), int(c1)],
                        field[int(r1), int(c0)],
                        field[int(r1), int(c1)],
                    )
                    < 2
                ):
                    continue
                clear = 3.0 / grid.spacing_mm
                if any(
                    r0 < b1 + clear and r1 > b0 - clear and c0 < d1 + clear and c1 > d0 - clear
                    for b0, b1, d0, d1 in keep_out
                ):
                    continue
                return Marker(letter, (float(centre[0]), float(centre[1])), height, angle, mirrored)
    return None


# ----------------------------------------------------------------------------------------------------------------
# exposure, detector, display


@dataclass(frozen=True)
class Exposure:
    """Beam and detector of one visit (see the module docstring for the model)."""

    aec_quanta: float
    heel: float
    heel_angle_deg: float
    scatter: float
    blur_px: float
    beam: float


@dataclass(frozen=True)
class Display:
    """Vendor processing and storage of one visit."""

    bits_stored: int
    photometric: str
    gamma: float
    air_level: float
    dense_level: float
    usm_amount: float
    usm_sigma_mm: float


def draw_exposure(rng: np.random.Generator, config: PhantomConfig) -> Exposure:
    """Draw the exposure of a visit."""
    return Exposure(
        aec_quanta=float(np.exp(rng.uniform(*np.log(config.aec_quanta)))),
        heel=float(rng.uniform(*config.heel)),
        heel_angle_deg=float(rng.choice([0.0, 90.0, 180.0, 270.0]) + rng.uniform(-10, 10)),
        scatter=float(rng.uniform(*config.scatter)),
        blur_px=float(rng.uniform(*config.blur_px)),
        beam=float(rng.uniform(*config.beam_hardness)),
    )


def draw_display(rng: np.random.Generator, config: PhantomConfig, bits: int, photometric: str) -> Display:
    """Draw the processing of a visit."""
    usm = bool(rng.random() < config.p_edge_enhancement)
    return Display(
        bits_stored=bits,
        photometric=photometric,
        gamma=float(rng.uniform(*config.gamma)),
        air_level=float(rng.uniform(*config.air_level)),
        dense_level=float(rng.uniform(*config.dense_level)),
        usm_amount=float(rng.uniform(*config.usm_amount)) if usm else 0.0,
        usm_sigma_mm=float(rng.uniform(*config.usm_sigma_mm)) if usm else 0.0,
    )


def _lowpass(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian low-pass; large kernels go through a downsampled copy (same result up to interpolation)."""
    if sigma_px <= 6.0:
        return cv2.GaussianBlur(img, (0, 0), sigma_px)
    k = max(int(sigma_px / 3.0), 1)
    rows, cols = img.shape
    small = cv2.resize(img, (max(cols // k, 1), max(rows // k, 1)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma_px / k)
    return cv2.resize(small, (cols, rows), interpolation=cv2.INTER_LINEAR)


def _heel_map(grid: Grid, exposure: Exposure) -> np.ndarray:
    a = np.deg2rad(exposure.heel_angle_deg)
    x = ((np.arange(grid.cols, dtype=np.float32) + 0.5 - grid.cols / 2) * grid.spacing_mm)[None, :]
    y = ((np.arange(grid.rows, dtype=np.float32) + 0.5 - grid.rows / 2) * grid.spacing_mm)[:, None]
    half = 0.5 * float(np.hypot(*grid.extent_mm))
    ramp = np.float32(np.cos(a)) * x + np.float32(np.sin(a)) * y
    return np.float32(1.0) + np.float32(0.5 * exposure.heel / half) * ramp


def expose(
    attenuation: np.ndarray,
    filter_attenuation: np.ndarray | None,
    anatomy: np.ndarray,
    grid: Grid,
    exposure: Exposure,
    field: np.ndarray | None,
    white: bool,
    rng: np.random.Generator,
) -> tuple[np.ndarray, float]:
    """Detected signal in quanta (steps 2-6 of the model).

    Parameters
    ----------
    attenuation : numpy.ndarray
        float32 line integrals A through the patient (tissue, bone, lesions).
    filter_attenuation : numpy.ndarray or None
        float32 line integrals of objects lying on the detector (the lead marker): they stop primary and scatter.
    anatomy : numpy.ndarray
        bool mask of the pixels under the patient (for the exposure control).
    grid : Grid
    exposure : Exposure
    field : numpy.ndarray or None
        Signed distance into the collimated field (px), from :func:`field_distance`.
    white : bool
        The collimator bands are unexposed (white) rather than masked later.
    rng : numpy.random.Generator

    Returns
    -------
    signal : numpy.ndarray
        float32 detected quanta.
    i0 : float
        Unattenuated fluence at the field centre (quanta per pixel).
    """
    sample = attenuation[::4, ::4][anatomy[::4, ::4]]
    a_ref = float(np.median(sample)) if sample.size else 0.0
    i0 = exposure.aec_quanta * float(np.exp(a_ref))
    primary = np.exp(-attenuation)
    primary *= _heel_map(grid, exposure)
    primary *= np.float32(i0)
    # single-scatter estimate: photons scattered in the patient ~ transmitted primary x attenuation, spread widely
    scatter = _lowpass(primary * attenuation, 20.0 / grid.spacing_mm)
    scatter *= np.float32(exposure.scatter)
    signal = primary
    signal += scatter
    del scatter
    if filter_attenuation is not None:
        signal *= np.exp(-filter_attenuation)
    if field is not None and white:
        penumbra = max(0.5 / grid.spacing_mm, 0.5)
        gate = np.float32(0.5) + np.float32(0.5) * np.tanh(field / np.float32(penumbra))
        gate *= np.float32(1 - COLLIMATOR_TRANSMISSION)
        gate += np.float32(COLLIMATOR_TRANSMISSION)
        signal *= gate
    noise = rng.standard_normal(signal.shape, dtype=np.float32)
    noise *= np.sqrt(signal)
    signal += noise
    if exposure.blur_px > 0:
        signal = cv2.GaussianBlur(signal, (0, 0), exposure.blur_px)
    return signal, i0


def to_display(
    signal: np.ndarray,
    i0: float,
    anatomy: np.ndarray,
    grid: Grid,
    exposure: Exposure,
    display: Display,
    field: np.ndarray | None,
    black: bool,
) -> tuple[np.ndarray, dict[str, float]]:
    """Log transform, tone curve, edge enhancement and quantisation (steps 7-8 of the model).

    Parameters
    ----------
    signal : numpy.ndarray
        Detected quanta.
    i0 : float
    anatomy : numpy.ndarray
        bool mask of the anatomy inside the field, excluding the marker (sets the window).
    grid : Grid
    exposure : Exposure
    display : Display
    field : numpy.ndarray or None
    black : bool
        Mask the collimated bands to 0.

    Returns
    -------
    pixels : numpy.ndarray
        uint16 display values (bright = dense), before any MONOCHROME1 inversion.
    window : dict
        The log-domain window actually used.
    """
    d = np.log(np.maximum(signal, np.float32(0.5)))
    np.subtract(np.float32(np.log(i0)), d, out=d)
    d_air = -float(np.log((1 + exposure.heel / 2) * (1 + exposure.scatter)))
    sample = d[::3, ::3][anatomy[::3, ::3]]
    if sample.size:
        d_lo, d_hi = (float(q) for q in np.quantile(sample, [0.01, 0.995]))
    else:
        d_lo, d_hi = d_air, d_air + 3.0
    d_lo = max(d_lo, d_air)
    d_hi = max(d_hi, d_lo + 0.5)
    y = d
    y -= np.float32(d_lo)
    y *= np.float32(1.0 / (d_hi - d_lo))
    np.maximum(y, 0, out=y)
    if display.gamma != 1.0:
        np.power(y, np.float32(display.gamma), out=y)
    y *= np.float32(display.dense_level - display.air_level)
    y += np.float32(display.air_level)
    if display.usm_amount > 0:
        blurred = _lowpass(y, display.usm_sigma_mm / grid.spacing_mm)
        y += np.float32(display.usm_amount) * (y - blurred)
    if field is not None and black:
        y[field <= 0] = 0
    maxval = float(2**display.bits_stored - 1)
    y *= np.float32(maxval)
    np.clip(y, 0, maxval, out=y)
    return np.rint(y).astype(np.uint16), {"d_air": d_air, "d_low": d_lo, "d_high": d_hi}


def dataclass_dict(obj: Any) -> dict[str, Any]:
    """A frozen dataclass as a JSON-safe dict."""
    return {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in asdict(obj).items()}
