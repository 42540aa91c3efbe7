"""Register a follow-up radiograph onto its baseline: :func:`register`.

The two films of a pair differ by repositioning (a few degrees, a few mm), magnification, pixel spacing, exposure
and processing (kVp, mAs, tone curve, edge enhancement), collimation and lead markers, and by the lesions
themselves. The method is built to ignore all but the first three:

1. each image is reduced to a common working spacing (0.5 mm) and to a usable field (the given mask, minus
   saturated plateaus, flat shutters and bright collimation bands, minus a 3 mm margin against blurred edges and
   edge-enhancement halos);
2. intensities are equalised over the usable field (contrast-limited histogram equalisation, after a 3x3 median
   against noise spikes), so that any monotone change of exposure, tone curve or bit depth cancels, then
   normalised locally (3 mm): what survives of edge enhancement, heel effect and scatter cancels too, while
   regions of pure noise stay dim and are marked as carrying no structure;
3. a coarse similarity comes from ORB features matched between the local-contrast images (ratio test) and
   :func:`cv2.estimateAffinePartial2D` with RANSAC; without it, the image centres are superposed;
4. the refinement tracks corners of the baseline's structured field into the aligned follow-up with pyramidal
   Lucas-Kanade (forward and backward), and fits the model to the tracked pairs with RANSAC (0.5 mm) and a final
   least-squares refinement, three times. Changed lesions, moved markers and collimation edges are outliers of
   this fit. (Intensity-based ECC was tried: its affine mode stretches along long bones, where the image
   constrains little, and it has no similarity mode.)
5. the result is judged (:class:`Registration` ``ok`` and ``reasons``) rather than trusted: too few consistent
   pairs, little of the baseline's detail found again, low correlation of the aligned images, small overlap,
   implausible rotation, magnification or shear, or a fit whose standard error reaches 0.25 mm all mark it
   doubtful.

Every step is a library routine (OpenCV); nothing here iterates at full resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from calcimg.core.fov import flat_regions
from calcimg.core.morphology import disk_kernel
from calcimg.errors import ParameterError
from calcimg.model import NOMINAL_SPACING_MM

#: The spacing both images are reduced to before they are compared.
WORKING_SPACING_MM = 0.5
#: Models :func:`register` fits.
MODELS = ("similarity", "affine")

# Features of the coarse stage.
_ORB_FEATURES = 3000
# Margin cut from the usable field against blurred collimation edges and edge-enhancement halos.
_FIELD_MARGIN_MM = 3.0
# Global equalisation: histogram bins and the clip limit of a bin, in multiples of the mean count.
_EQ_BINS = 1024
_EQ_CLIP = 4.0
# Local contrast normalisation: Gaussian window and the floor of the local standard deviation (rank units).
_LCN_SIGMA_MM = 3.0
_LCN_FLOOR = 0.02
_NOISE_WEIGHT = 3.0
# Local variance over fine-scale (noise) variance above which a region holds structure worth tracking.
_STRUCTURE_SNR = 6.0
# Lucas-Kanade tracking on the working grid.
_LK_WINDOW_PX = 21
_LK_LEVELS = 2
_LK_ROUNDS = 3
_MAX_CORNERS = 1000
_CORNER_DISTANCE_PX = 5
_CORNER_QUALITY = 0.003
_CORNER_MARGIN_PX = 3
_FORWARD_BACKWARD_PX = 0.5
_FIT_TOLERANCE_MM = 0.5
_COARSE_TOLERANCE_MM = 3.0
_RATIO_TEST = 0.8
_MIN_COARSE_INLIERS = 6
# Gradient smoothing of the quality measure.
_QUALITY_SIGMA_MM = 1.0


@dataclass
class Registration:
    """A follow-up image aligned on its baseline, and how far to trust it.

    Attributes
    ----------
    matrix : numpy.ndarray
        float64 (2, 3): moving (follow-up) pixel ``(x=col, y=row)`` to fixed (baseline) pixel, the OpenCV
        convention, so ``cv2.warpAffine(moving, matrix, (fixed_cols, fixed_rows))`` shows the follow-up in the
        baseline frame.
    rotation_deg : float
        Rotation of the follow-up relative to the baseline, counter-clockwise as displayed.
    scale : float
        Magnification of the follow-up relative to the baseline in mm (pixel spacings taken into account): 1.03
        means the anatomy appears 3% larger on the follow-up.
    shift_mm : tuple of float
        ``(dx, dy)``, x right and y down: with both images' coordinates in mm from their own centres,
        ``follow-up = scale * R(rotation_deg) @ baseline + shift_mm`` (for the affine model, its similarity part).
    model : str
        "similarity" or "affine".
    quality : float
        Pearson correlation, clipped to 0..1, of the gradient magnitudes (Gaussian 1 mm, rank-normalised images,
        0.5 mm grid) of the baseline and the aligned follow-up over their common usable field. Aligned phantom
        pairs score 0.75 to 1; films of different sites under 0.35.
    overlap_fraction : float
        Common usable field of the baseline and the aligned follow-up as a fraction of the smaller of the two
        (1 when one film shows a part of the other; a film that includes air on one visit and masks it as a flat
        shutter on the other stays near 1).
    ok : bool
        True when nothing below makes the alignment doubtful.
    reasons : list of str
        Why the alignment is doubtful (empty when ``ok``).
    n_matches : int
        Tracked point pairs consistent with the final fit.
    match_fraction : float
        ``n_matches`` over the baseline corners inside the aligned follow-up's field: the share of the
        baseline's detail found again (0.3 to 0.95 on phantom pairs; under 0.15 between different sites or most
        phantoms of different seeds).
    residual_mm : float
        Root mean square distance of those pairs after the fit (baseline mm).
    uncertainty_mm : float
        Largest standard error of the fitted mapping over the common field, from the pairs' scatter and layout
        (baseline mm); NaN when no fit was made.
    spacing_mm : tuple of float
        (baseline, follow-up) spacing used, mm per pixel.
    spacing_assumed : bool
        True when an image was uncalibrated and a spacing was assumed (see ``notes``).
    notes : list of str
        Facts about the run that do not make it doubtful.
    """

    matrix: np.ndarray
    rotation_deg: float
    scale: float
    shift_mm: tuple[float, float]
    model: str
    quality: float
    overlap_fraction: float
    ok: bool
    reasons: list[str] = field(default_factory=list)
    n_matches: int = 0
    match_fraction: float = 0.0
    residual_mm: float = float("nan")
    uncertainty_mm: float = float("nan")
    spacing_mm: tuple[float, float] = (NOMINAL_SPACING_MM, NOMINAL_SPACING_MM)
    spacing_assumed: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe record (NaN becomes None)."""

        def num(value: float) -> float | None:
            return float(value) if np.isfinite(value) else None

        return {
            "matrix": [[float(v) for v in row] for row in np.asarray(self.matrix, dtype=np.float64)],
            "rotation_deg": num(self.rotation_deg),
            "scale": num(self.scale),
            "shift_mm": [num(v) for v in self.shift_mm],
            "model": self.model,
            "quality": num(self.quality),
            "overlap_fraction": num(self.overlap_fraction),
            "ok": bool(self.ok),
            "reasons": list(self.reasons),
            "n_matches": int(self.n_matches),
            "match_fraction": num(self.match_fraction),
            "residual_mm": num(self.residual_mm),
            "uncertainty_mm": num(self.uncertainty_mm),
            "spacing_mm": [float(v) for v in self.spacing_mm],
            "spacing_assumed": bool(self.spacing_assumed),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Registration:
        """Rebuild a registration from its :meth:`to_dict` record (as stored in summary.json).

        Examples
        --------
        >>> reg = Registration.from_dict({"matrix": [[1, 0, 2], [0, 1, 3]], "rotation_deg": 0, "scale": 1,
        ...                               "shift_mm": [0, 0], "model": "similarity", "quality": 0.9,
        ...                               "overlap_fraction": 1, "ok": True})
        >>> reg.matrix.tolist(), reg.ok
        ([[1.0, 0.0, 2.0], [0.0, 1.0, 3.0]], True)
        """

        def num(key: str, default: float = float("nan")) -> float:
            value = record.get(key)
            return default if value is None else float(value)

        spacing = record.get("spacing_mm") or [NOMINAL_SPACING_MM, NOMINAL_SPACING_MM]
        return cls(
            matrix=np.asarray(record["matrix"], dtype=np.float64),
            rotation_deg=num("rotation_deg", 0.0),
            scale=num("scale", 1.0),
            shift_mm=tuple(float("nan") if v is None else float(v) for v in record.get("shift_mm", [0.0, 0.0])),
            model=str(record.get("model", "similarity")),
            quality=num("quality"),
            overlap_fraction=num("overlap_fraction"),
            ok=bool(record.get("ok", False)),
            reasons=list(record.get("reasons", [])),
            n_matches=int(record.get("n_matches", 0) or 0),
            match_fraction=num("match_fraction", 0.0),
            residual_mm=num("residual_mm"),
            uncertainty_mm=num("uncertainty_mm"),
            spacing_mm=(float(spacing[0]), float(spacing[1])),
            spacing_assumed=bool(record.get("spacing_assumed", False)),
            notes=list(record.get("notes", [])),
        )


# ----------------------------------------------------------------------------------------------------------------
# preparation


@dataclass
class _Prepared:
    """One image on the working grid."""

    rank: np.ndarray  # float32 0..1, equalised over the usable field
    valid: np.ndarray  # bool, usable field
    detail: np.ndarray  # uint8, local contrast of ``rank``
    structured: np.ndarray  # bool, usable and holding structure rather than noise
    to_work: np.ndarray  # 3x3, full-resolution pixel (x, y) -> working pixel


def _spacing_pair(value: Any, name: str) -> tuple[float, float] | None:
    """(row, col) spacing in mm from a float, a pair or None."""
    if value is None:
        return None
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64)).ravel()
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ParameterError(f"{name}: a pixel spacing must be a positive number of mm (or a (row, col) pair)")
    return float(arr[0]), float(arr[1])


def _check_image(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2 or min(image.shape) < 16:
        raise ParameterError(f"{name}: expected a 2-D image of at least 16 x 16 pixels, got shape {image.shape}")
    return image


def _check_mask(mask: np.ndarray | None, shape: tuple[int, ...], name: str) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ParameterError(f"{name}: mask shape {mask.shape} differs from the image shape {shape}")
    return mask.astype(bool, copy=False)


def _prepare(
    image: np.ndarray, spacing: tuple[float, float], mask: np.ndarray | None, work_mm: float
) -> _Prepared | None:
    """Reduce an image to the working grid, find its usable field and normalise it; None when nothing is
    usable."""
    rows, cols = image.shape
    out_rows = max(8, round(rows * spacing[0] / work_mm))
    out_cols = max(8, round(cols * spacing[1] / work_mm))
    pixels = image.astype(np.float32, copy=False)
    finite = None
    if image.dtype.kind == "f" and not np.isfinite(pixels).all():
        finite = np.isfinite(pixels)
        pixels = np.where(finite, pixels, 0).astype(np.float32)
    # float output keeps averaged values distinct, so only truly flat regions stay flat
    small = cv2.resize(pixels, (out_cols, out_rows), interpolation=cv2.INTER_AREA)
    kx, ky = out_cols / cols, out_rows / rows
    to_work = np.array([[kx, 0.0, 0.5 * kx - 0.5], [0.0, ky, 0.5 * ky - 0.5], [0.0, 0.0, 1.0]])
    valid = _usable(small)
    for extra in (mask, finite):
        if extra is not None:
            cover = cv2.resize(extra.view(np.uint8) * np.uint8(255), (out_cols, out_rows), interpolation=cv2.INTER_AREA)
            valid &= cover >= 128  # the margin below removes the rest of the edge
    margin = max(1, round(_FIELD_MARGIN_MM / work_mm))
    valid = cv2.erode(valid.view(np.uint8), disk_kernel(margin), borderValue=0).astype(bool)
    if valid.sum() < 100:
        return None
    # a 3x3 median removes isolated noise spikes (clipped air), which would otherwise pass for corners
    rank = _equalise(cv2.medianBlur(small, 3), valid)
    detail, structured = _local_contrast(rank, valid, _LCN_SIGMA_MM / work_mm)
    return _Prepared(rank, valid, _to_uint8(detail, valid), structured, to_work)


def _usable(small: np.ndarray) -> np.ndarray:
    """Working-grid pixels off flat shutters (:func:`calcimg.core.fov.flat_regions`), saturated plateaus
    (unexposed bands, lead) and bright collimation bands."""
    rows, cols = small.shape
    usable = ~flat_regions(small, min_area=max(64, rows * cols // 2000))
    usable &= small < float(small.max())
    values = small[usable]
    if values.size < 100:
        return usable
    low, high = np.percentile(values, [50.0, 99.5])
    bright = low + 0.8 * (high - low)
    for side in range(4):
        view = np.rot90(usable, side)  # a view: writing to it writes to ``usable``
        depth = _band_depth(np.rot90(small, side), view, bright)
        view[:depth] = False
    return usable


def _band_depth(image: np.ndarray, usable: np.ndarray, bright: float, max_fraction: float = 0.35) -> int:
    """Rows from the top whose darker usable pixels (10th percentile) are all as bright as dense tissue: an
    unexposed collimation band, as in :func:`calcimg.core.fov.collimation_bands` (vectorised)."""
    limit = max(1, int(image.shape[0] * max_fraction))
    block = np.where(usable[:limit], image[:limit], np.inf)
    count = usable[:limit].sum(axis=1)
    order = np.sort(block, axis=1)
    pick = np.clip(np.floor(0.1 * (count - 1)).astype(np.intp), 0, None)
    low = np.take_along_axis(order, pick[:, None], axis=1)[:, 0]
    in_band = (count == 0) | (low >= bright)
    return int(np.argmin(in_band)) if not in_band.all() else limit


def _equalise(image: np.ndarray, valid: np.ndarray, bins: int = _EQ_BINS, clip: float = _EQ_CLIP) -> np.ndarray:
    """Contrast-limited histogram equalisation (global) to 0..1 over the usable pixels.

    Any monotone change of the tone curve cancels; the clip keeps a populous flat level (air, soft tissue of
    uniform thickness) from spreading its noise over much of the output range.
    """
    values = image[valid]
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(image.shape, np.float32)
    hist, _ = np.histogram(values, bins=bins, range=(low, high))
    hist = hist.astype(np.float64)
    limit = clip * values.size / bins
    excess = np.maximum(hist - limit, 0).sum()
    hist = np.minimum(hist, limit) + excess / bins
    cdf = np.concatenate([[0.0], np.cumsum(hist)]) / (hist.sum())
    position = (image - np.float32(low)) * np.float32(bins / (high - low))
    index = np.clip(position, 0, bins - 1).astype(np.intp)
    frac = np.clip(position - index.astype(np.float32), 0, 1)
    lut_low, lut_step = cdf[:-1].astype(np.float32), np.diff(cdf).astype(np.float32)
    return (lut_low[index] + frac * lut_step[index]).astype(np.float32, copy=False)


def _local_contrast(rank: np.ndarray, valid: np.ndarray, sigma_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Rank image minus its local mean over its local standard deviation, inside the field; and where that
    local variation is structure rather than noise.

    The deviation is floored by a constant and by ``_NOISE_WEIGHT`` times the local noise (the finest scale of
    the image), so that regions of pure noise (air, flat soft tissue) stay dim instead of being stretched into
    false corners; they are also left out of the returned ``structured`` mask.
    """
    weight = valid.astype(np.float32)
    norm = np.maximum(cv2.GaussianBlur(weight, (0, 0), sigma_px), 1e-3)
    mean = cv2.GaussianBlur(rank * weight, (0, 0), sigma_px) / norm
    detail = (rank - mean) * weight
    var = cv2.GaussianBlur(detail * detail, (0, 0), sigma_px) / norm
    fine = (rank - cv2.GaussianBlur(rank, (0, 0), 1.0)) * weight
    noise = cv2.GaussianBlur(fine * fine, (0, 0), sigma_px) / norm
    floor = np.float32(_LCN_FLOOR**2) + np.float32(_NOISE_WEIGHT**2) * noise
    structured = valid & (var > np.float32(_STRUCTURE_SNR) * noise) & (var > np.float32(_LCN_FLOOR**2))
    return (detail / np.sqrt(var + floor)).astype(np.float32), structured


def _to_uint8(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    low, high = np.percentile(image[valid], [0.5, 99.5])
    scaled = (image - low) * (255.0 / max(float(high - low), 1e-6))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _gradient(rank: np.ndarray, sigma_px: float) -> np.ndarray:
    smooth = cv2.GaussianBlur(rank, (0, 0), sigma_px)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy)


# ----------------------------------------------------------------------------------------------------------------
# estimation


def _affine3(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([np.asarray(matrix, dtype=np.float64)[:2], [0.0, 0.0, 1.0]])


def _apply(matrix: np.ndarray, xy: np.ndarray) -> np.ndarray:
    return xy @ matrix[:2, :2].T + matrix[:2, 2]


def _fit(src: np.ndarray, dst: np.ndarray, model: str, tolerance_px: float) -> tuple[np.ndarray | None, np.ndarray]:
    """Robust fit of ``dst ~ model(src)``: RANSAC, then least squares on the inliers (OpenCV)."""
    estimate = cv2.estimateAffinePartial2D if model == "similarity" else cv2.estimateAffine2D
    matrix, inliers = estimate(
        src.astype(np.float32),
        dst.astype(np.float32),
        method=cv2.RANSAC,
        ransacReprojThreshold=float(tolerance_px),
        maxIters=4000,
        confidence=0.999,
        refineIters=20,
    )
    if matrix is None or inliers is None:
        return None, np.zeros(len(src), bool)
    return matrix.astype(np.float64), inliers.ravel().astype(bool)


def _coarse(fixed: _Prepared, moving: _Prepared, work_mm: float) -> tuple[np.ndarray | None, int]:
    """Similarity from ORB features matched between the local-contrast images (ratio test, RANSAC); working-grid
    matrix (moving -> fixed) and its number of distinct inliers (None and 0 when no sane similarity is found)."""
    orb = cv2.ORB_create(nfeatures=_ORB_FEATURES, scaleFactor=1.3, nlevels=4, edgeThreshold=15, patchSize=31)
    xy, desc = [], []
    for prep in (fixed, moving):
        keypoints, descriptors = orb.detectAndCompute(prep.detail, prep.valid.view(np.uint8))
        xy.append(np.array([k.pt for k in keypoints], np.float64).reshape(-1, 2))
        desc.append(descriptors)
    if desc[0] is None or desc[1] is None or len(desc[0]) < 2 or len(desc[1]) < 2:
        return None, 0
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(desc[1], desc[0], k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < _RATIO_TEST * p[1].distance]
    if len(good) < 3:
        return None, 0
    src = xy[1][[g.queryIdx for g in good]]
    dst = xy[0][[g.trainIdx for g in good]]
    matrix, inliers = _fit(src, dst, "similarity", _COARSE_TOLERANCE_MM / work_mm)
    # both grids are in the same mm, so a sane match is near scale 1; a collapse onto one point is not
    if matrix is None or not 0.5 <= np.sqrt(abs(np.linalg.det(matrix[:, :2]))) <= 2.0:
        return None, 0
    distinct = len(np.unique(np.round(dst[inliers]), axis=0))
    return matrix, min(int(inliers.sum()), distinct)


@dataclass
class _Track:
    matrix: np.ndarray  # working-grid moving -> fixed
    src: np.ndarray  # moving working-grid points of the final pairs (inliers)
    dst: np.ndarray  # fixed working-grid points
    residual_px: float
    candidates: int  # baseline corners inside the aligned follow-up's field


def _refine(fixed: _Prepared, moving: _Prepared, matrix: np.ndarray, model: str, tolerance_px: float) -> _Track | None:
    """Track baseline corners into the aligned follow-up and refit, a few rounds; None when too few pairs."""
    fixed_u8, fixed_valid, moving_u8, moving_valid = fixed.detail, fixed.valid, moving.detail, moving.valid
    rows, cols = fixed_u8.shape
    # corners keep a few pixels from the field's edge; their windows may reach past it, where both detail images
    # are zero (masked) or dim (noise-floored air), which the tracking tolerates
    window = np.ones((2 * _CORNER_MARGIN_PX + 1, 2 * _CORNER_MARGIN_PX + 1), np.uint8)
    corner_zone = cv2.erode(fixed_valid.view(np.uint8), window, borderValue=0) & fixed.structured.view(np.uint8)
    lk = {
        "winSize": (_LK_WINDOW_PX, _LK_WINDOW_PX),
        "maxLevel": _LK_LEVELS,
        "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01),
    }
    track = None
    corners = None
    for _ in range(_LK_ROUNDS):
        warped = cv2.warpAffine(moving_u8, matrix, (cols, rows), flags=cv2.INTER_LINEAR)
        seen = cv2.warpAffine(moving_valid.view(np.uint8), matrix, (cols, rows), flags=cv2.INTER_NEAREST)
        seen = cv2.erode(seen, window, borderValue=0)
        if corners is None:  # corners of the common field, kept for the later rounds
            found = cv2.goodFeaturesToTrack(
                fixed_u8, _MAX_CORNERS, _CORNER_QUALITY, _CORNER_DISTANCE_PX, mask=corner_zone & seen, blockSize=9
            )
            if found is None or len(found) < 10:
                return None
            corners = found.reshape(-1, 2)
        ahead, status, _ = cv2.calcOpticalFlowPyrLK(fixed_u8, warped, corners, None, **lk)
        back, status_back, _ = cv2.calcOpticalFlowPyrLK(warped, fixed_u8, ahead, None, **lk)
        good = (status.ravel() == 1) & (status_back.ravel() == 1)
        good &= np.linalg.norm(back - corners, axis=1) < _FORWARD_BACKWARD_PX
        inside = (ahead[:, 0] >= 0) & (ahead[:, 0] <= cols - 1) & (ahead[:, 1] >= 0) & (ahead[:, 1] <= rows - 1)
        good &= inside
        at = np.round(ahead[inside]).astype(int)
        good[inside] &= seen[at[:, 1], at[:, 0]] > 0
        home = np.round(corners).astype(int)
        candidates = int((seen[home[:, 1], home[:, 0]] > 0).sum())
        if good.sum() < 10:
            return track
        src = _apply(_affine3(cv2.invertAffineTransform(matrix)), ahead[good].astype(np.float64))
        dst = corners[good].astype(np.float64)
        fitted, inliers = _fit(src, dst, model, tolerance_px)
        if fitted is None or inliers.sum() < 10:
            return track
        matrix = fitted
        residual = np.linalg.norm(_apply(matrix, src[inliers]) - dst[inliers], axis=1)
        track = _Track(matrix, src[inliers], dst[inliers], float(np.sqrt(np.mean(residual**2))), candidates)
    return track


def _uncertainty_px(track: _Track, model: str, points: np.ndarray) -> float:
    """Largest standard error of the fitted mapping at ``points`` (fixed working grid), from the pairs' scatter
    and layout (linear least squares on the inliers)."""
    x, y = track.src[:, 0], track.src[:, 1]
    n = len(x)
    ones, zeros = np.ones(n), np.zeros(n)
    if model == "similarity":
        jx = np.stack([x, -y, ones, zeros], axis=1)
        jy = np.stack([y, x, zeros, ones], axis=1)
    else:
        jx = np.stack([x, y, ones, zeros, zeros, zeros], axis=1)
        jy = np.stack([zeros, zeros, zeros, x, y, ones], axis=1)
    design = np.vstack([jx, jy])
    dof = max(2 * n - design.shape[1], 1)
    variance = track.residual_px**2 * n / dof  # per coordinate
    cov = variance * np.linalg.pinv(design.T @ design)
    # points are in the fixed frame; the fit is evaluated at the corresponding moving points
    src_pts = _apply(_affine3(cv2.invertAffineTransform(track.matrix)), points)
    px, py = src_pts[:, 0], src_pts[:, 1]
    m = len(px)
    o1, o0 = np.ones(m), np.zeros(m)
    if model == "similarity":
        gx = np.stack([px, -py, o1, o0], axis=1)
        gy = np.stack([py, px, o0, o1], axis=1)
    else:
        gx = np.stack([px, py, o1, o0, o0, o0], axis=1)
        gy = np.stack([o0, o0, o0, px, py, o1], axis=1)
    var_pts = np.einsum("ij,jk,ik->i", gx, cov, gx) + np.einsum("ij,jk,ik->i", gy, cov, gy)
    return float(np.sqrt(var_pts.max()))


def _quality(fixed: _Prepared, moving: _Prepared, matrix: np.ndarray, sigma_px: float) -> tuple[float, float]:
    """(gradient correlation over the common field, overlap fraction) on the working grid."""
    rows, cols = fixed.rank.shape
    warped = cv2.warpAffine(moving.rank, matrix, (cols, rows), flags=cv2.INTER_LINEAR)
    seen = cv2.warpAffine(moving.valid.view(np.uint8), matrix, (cols, rows), flags=cv2.INTER_NEAREST) > 0
    common = fixed.valid & seen
    overlap = float(common.sum() / max(min(int(fixed.valid.sum()), int(seen.sum())), 1))
    if common.sum() < 100:
        return 0.0, overlap
    a = _gradient(fixed.rank, sigma_px)[common].astype(np.float64)
    b = _gradient(warped, sigma_px)[common].astype(np.float64)
    a -= a.mean()
    b -= b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    corr = float((a * b).sum() / denom) if denom > 0 else 0.0
    return max(corr, 0.0), overlap


# ----------------------------------------------------------------------------------------------------------------
# public API


def _describe(
    matrix: np.ndarray,
    fixed_shape: tuple[int, int],
    moving_shape: tuple[int, int],
    fixed_spacing: tuple[float, float],
    moving_spacing: tuple[float, float],
) -> tuple[float, float, tuple[float, float]]:
    """Rotation, relative magnification and shift (mm about the image centres) of a full-resolution matrix."""

    def centred_mm(shape: tuple[int, int], spacing: tuple[float, float]) -> np.ndarray:
        rows, cols = shape
        return np.array(
            [[1 / spacing[1], 0, cols / 2 - 0.5], [0, 1 / spacing[0], rows / 2 - 0.5], [0, 0, 1.0]]
        )  # mm -> px

    # follow-up mm = F_m^-1 @ A^-1 @ F_f (baseline mm)
    fm, ff = centred_mm(moving_shape, moving_spacing), centred_mm(fixed_shape, fixed_spacing)
    if not np.all(np.isfinite(matrix)) or abs(np.linalg.det(np.asarray(matrix)[:, :2])) < 1e-12:
        return float("nan"), float("nan"), (float("nan"), float("nan"))
    forward = np.linalg.inv(fm) @ np.linalg.inv(_affine3(matrix)) @ ff
    lin = forward[:2, :2]
    # nearest similarity [[a, b], [-b, a]] of the linear part
    a = (lin[0, 0] + lin[1, 1]) / 2
    b = (lin[0, 1] - lin[1, 0]) / 2
    scale = float(np.hypot(a, b)) if np.isfinite(a) and np.isfinite(b) else float("nan")
    rotation = float(np.degrees(np.arctan2(b, a)))
    return rotation, scale, (float(forward[0, 2]), float(forward[1, 2]))


def register(
    fixed: np.ndarray,
    moving: np.ndarray,
    fixed_spacing_mm: float | tuple[float, float] | None,
    moving_spacing_mm: float | tuple[float, float] | None,
    fixed_mask: np.ndarray | None = None,
    moving_mask: np.ndarray | None = None,
    model: str = "similarity",
    *,
    working_spacing_mm: float = WORKING_SPACING_MM,
    max_rotation_deg: float = 20.0,
    max_scale_change: float = 0.15,
    min_quality: float = 0.4,
    min_matches: int = 30,
    min_match_fraction: float = 0.2,
    min_overlap: float = 0.5,
    max_uncertainty_mm: float = 0.25,
) -> Registration:
    """Align a follow-up radiograph (moving) on its baseline (fixed).

    Parameters
    ----------
    fixed, moving : numpy.ndarray
        2-D images, bright = dense (uint16 usually; any real dtype). Shapes may differ.
    fixed_spacing_mm, moving_spacing_mm : float or (float, float) or None
        Pixel spacing of each image in mm (one value, or (row, col)); None when uncalibrated: an uncalibrated
        image is then assumed to share the other's spacing (or both :data:`NOMINAL_SPACING_MM`), and the result
        says so.
    fixed_mask, moving_mask : numpy.ndarray, optional
        bool fields of view, True where the image is usable (inside the collimation, off shutters and markers).
        Saturated plateaus, flat shutters and bright collimation bands are excluded in any case.
    model : {"similarity", "affine"}
        Rotation, isotropic scale and shift; or a general affine map.
    working_spacing_mm : float
        Grid the images are compared on (never finer than the images themselves).
    max_rotation_deg, max_scale_change : float
        Beyond these (degrees; relative magnification change, 0.15 = 15%) the result is implausible for a
        repeated film and flagged.
    min_quality : float
        Smallest acceptable ``quality``.
    min_matches : int
        Smallest acceptable number of consistent tracked pairs.
    min_match_fraction : float
        Smallest acceptable ``match_fraction``.
    min_overlap : float
        Smallest acceptable ``overlap_fraction``.
    max_uncertainty_mm : float
        Largest acceptable standard error of the mapping over the common field.

    Returns
    -------
    Registration
        Always returned; ``ok`` is False, with ``reasons``, when the alignment is doubtful (the matrix is then
        the best estimate found, or the one that superposes the image centres at equal mm).

    Raises
    ------
    calcimg.errors.ParameterError
        For an image that is not 2-D, a mask of the wrong shape, a non-positive spacing or an unknown model.

    Examples
    --------
    >>> import cv2
    >>> rng = np.random.default_rng(0)
    >>> noise = cv2.GaussianBlur(rng.random((400, 400)).astype(np.float32), (0, 0), 4)
    >>> fixed = (noise * 60000).astype(np.uint16)
    >>> turn = cv2.getRotationMatrix2D((200.0, 200.0), 3.0, 1.0)
    >>> moving = cv2.warpAffine(fixed, turn, (400, 400), borderMode=cv2.BORDER_REFLECT)
    >>> reg = register(fixed, moving, 0.2, 0.2)
    >>> reg.ok, round(reg.rotation_deg, 1)
    (True, 3.0)
    """
    if model not in MODELS:
        raise ParameterError(f"unknown registration model {model!r}; choose one of {', '.join(MODELS)}")
    fixed = _check_image(fixed, "fixed")
    moving = _check_image(moving, "moving")
    fixed_mask = _check_mask(fixed_mask, fixed.shape, "fixed_mask")
    moving_mask = _check_mask(moving_mask, moving.shape, "moving_mask")
    sp_f = _spacing_pair(fixed_spacing_mm, "fixed_spacing_mm")
    sp_m = _spacing_pair(moving_spacing_mm, "moving_spacing_mm")
    notes: list[str] = []
    assumed = sp_f is None or sp_m is None
    if sp_f is None and sp_m is None:
        sp_f = sp_m = (NOMINAL_SPACING_MM, NOMINAL_SPACING_MM)
        notes.append(f"both images uncalibrated: both assumed {NOMINAL_SPACING_MM} mm per pixel")
    elif sp_f is None:
        sp_f = sp_m
        notes.append("baseline uncalibrated: assumed the follow-up's spacing")
    elif sp_m is None:
        sp_m = sp_f
        notes.append("follow-up uncalibrated: assumed the baseline's spacing")
    assert sp_f is not None and sp_m is not None
    work_mm = max(float(working_spacing_mm), *sp_f, *sp_m)

    def result(matrix: np.ndarray, reasons: list[str], **extra: Any) -> Registration:
        rotation, scale, shift = _describe(matrix, fixed.shape, moving.shape, sp_f, sp_m)
        extra.setdefault("quality", 0.0)
        extra.setdefault("overlap_fraction", 0.0)
        return Registration(
            matrix=np.asarray(matrix, dtype=np.float64),
            rotation_deg=rotation,
            scale=scale,
            shift_mm=shift,
            model=model,
            ok=not reasons,
            reasons=reasons,
            spacing_mm=(float(np.mean(sp_f)), float(np.mean(sp_m))),
            spacing_assumed=assumed,
            notes=notes,
            **extra,
        )

    # fallback: superpose the image centres at equal mm
    ratio = np.array([sp_m[1] / sp_f[1], sp_m[0] / sp_f[0]])
    centre_f = np.array([fixed.shape[1], fixed.shape[0]]) / 2 - 0.5
    centre_m = np.array([moving.shape[1], moving.shape[0]]) / 2 - 0.5
    centred = np.array([[ratio[0], 0, centre_f[0] - ratio[0] * centre_m[0]], [0, ratio[1], 0.0]])
    centred[1, 2] = centre_f[1] - ratio[1] * centre_m[1]

    prep_f = _prepare(fixed, sp_f, fixed_mask, work_mm)
    prep_m = _prepare(moving, sp_m, moving_mask, work_mm)
    if prep_f is None or prep_m is None:
        return result(centred, ["no usable field of view"])

    def to_full(work_matrix: np.ndarray) -> np.ndarray:
        return (np.linalg.inv(prep_f.to_work) @ _affine3(work_matrix) @ prep_m.to_work)[:2]

    def to_work(full_matrix: np.ndarray) -> np.ndarray:
        return (prep_f.to_work @ _affine3(full_matrix) @ np.linalg.inv(prep_m.to_work))[:2]

    coarse, n_coarse = _coarse(prep_f, prep_m, work_mm)
    reasons: list[str] = []
    if coarse is None or n_coarse < _MIN_COARSE_INLIERS:
        notes.append(f"feature matching failed ({n_coarse} consistent matches): started from the image centres")
        coarse = to_work(centred)
    track = _refine(prep_f, prep_m, coarse, model, _FIT_TOLERANCE_MM / work_mm)
    work_matrix = coarse if track is None else track.matrix
    quality, overlap = _quality(prep_f, prep_m, work_matrix, _QUALITY_SIGMA_MM / work_mm)
    n_matches = 0 if track is None else len(track.src)
    match_fraction = 0.0 if track is None else n_matches / max(track.candidates, 1)
    residual = float("nan") if track is None else track.residual_px * work_mm
    uncertainty = float("nan")
    if track is not None:
        rows, cols = prep_f.rank.shape
        seen = cv2.warpAffine(prep_m.valid.view(np.uint8), work_matrix, (cols, rows), flags=cv2.INTER_NEAREST)
        yy, xx = np.nonzero((prep_f.valid & (seen > 0))[::4, ::4])
        if len(xx):
            uncertainty = _uncertainty_px(track, model, np.stack([xx * 4, yy * 4], axis=1).astype(np.float64))
            uncertainty *= work_mm
    if n_matches < min_matches:
        reasons.append(f"too few consistent point pairs ({n_matches} < {min_matches})")
    elif match_fraction < min_match_fraction:
        reasons.append(f"little of the baseline's detail found ({match_fraction:.0%} < {min_match_fraction:.0%})")
    if quality < min_quality:
        reasons.append(f"low quality ({quality:.2f} < {min_quality})")
    if overlap < min_overlap:
        reasons.append(f"small overlap ({overlap:.2f} < {min_overlap})")
    if track is not None and not uncertainty <= max_uncertainty_mm:
        reasons.append(f"uncertain fit ({uncertainty:.2f} mm > {max_uncertainty_mm} mm)")
    matrix = to_full(work_matrix)
    rotation, scale, _ = _describe(matrix, fixed.shape, moving.shape, sp_f, sp_m)
    if not abs(rotation) <= max_rotation_deg:
        reasons.append(f"implausible rotation ({rotation:.1f} deg, limit {max_rotation_deg})")
    if not (1 / (1 + max_scale_change) <= scale <= 1 + max_scale_change):
        reasons.append(f"implausible magnification change (x{scale:.3f}, limit {max_scale_change:.0%})")
    if model == "affine":
        lin = matrix[:, :2] * np.array([sp_f[1], sp_f[0]])[:, None] / np.array([sp_m[1], sp_m[0]])[None, :]
        singular = np.linalg.svd(lin, compute_uv=False)
        if singular[0] / max(singular[1], 1e-12) > 1 + max_scale_change:
            reasons.append(f"implausible shear or stretch (axis ratio {singular[0] / singular[1]:.3f})")
    return result(
        matrix,
        reasons,
        quality=quality,
        overlap_fraction=overlap,
        n_matches=n_matches,
        match_fraction=match_fraction,
        residual_mm=residual,
        uncertainty_mm=uncertainty,
    )


def transform_points(points_rc: np.ndarray, registration: Registration) -> np.ndarray:
    """Map (row, col) points of the follow-up into the baseline frame.

    Parameters
    ----------
    points_rc : array_like
        (N, 2) row, col coordinates in the follow-up image (pixel centres at integers).
    registration : Registration

    Returns
    -------
    numpy.ndarray
        float64 (N, 2) row, col coordinates in the baseline image.

    Examples
    --------
    >>> reg = Registration(np.array([[1.0, 0, 5], [0, 1, -2]]), 0.0, 1.0, (0.0, 0.0), "similarity", 1.0, 1.0, True)
    >>> transform_points([[10, 20]], reg)
    array([[ 8., 25.]])
    """
    pts = np.asarray(points_rc, dtype=np.float64).reshape(-1, 2)
    matrix = np.asarray(registration.matrix, dtype=np.float64)
    xy = _apply(matrix, pts[:, ::-1])
    return xy[:, ::-1].copy()


def warp_labels(
    labels: np.ndarray, registration: Registration, fixed_shape: tuple[int, int], inverse: bool = False
) -> np.ndarray:
    """Bring a follow-up label map into the baseline frame (nearest neighbour).

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label map of the follow-up (0 = background).
    registration : Registration
    fixed_shape : tuple of int
        (rows, cols) of the baseline (with ``inverse``: of the follow-up).
    inverse : bool
        Carry a baseline label map into the follow-up frame instead.

    Returns
    -------
    numpy.ndarray
        int32 label map of shape ``fixed_shape``; 0 outside the source image.

    Examples
    --------
    >>> lab = np.zeros((4, 4), np.int32); lab[1, 1] = 7
    >>> reg = Registration(np.array([[1.0, 0, 1], [0, 1, 2]]), 0.0, 1.0, (0.0, 0.0), "similarity", 1.0, 1.0, True)
    >>> np.argwhere(warp_labels(lab, reg, (5, 5)) == 7).tolist()
    [[3, 2]]
    """
    rows, cols = int(fixed_shape[0]), int(fixed_shape[1])
    matrix = np.asarray(registration.matrix, dtype=np.float64)
    source = np.ascontiguousarray(labels, dtype=np.int32)
    flags = cv2.INTER_NEAREST | (cv2.WARP_INVERSE_MAP if inverse else 0)
    try:
        out = cv2.warpAffine(source, matrix, (cols, rows), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    except cv2.error:  # OpenCV builds without int32 warping: float64 holds every int32 label exactly
        out = cv2.warpAffine(source.astype(np.float64), matrix, (cols, rows), flags=flags, borderValue=0)
    return np.asarray(out, dtype=np.int32)
