"""Detection thresholds that follow the image's own, signal-dependent noise and texture.

Quantum noise on a radiograph depends on the signal, and bone adds its trabecular texture, so one threshold
cannot serve soft tissue and bone. The response (what rises above the background) is therefore described per
level of the local background: sampled pixels are put into bins of equal population by background level, and in
each bin a high quantile of the response (by default the 90th percentile) measures what noise and texture alone
reach there. Deposits would move it if they covered a tenth of a bin, so each bin must stand for a large enough
part of the film (``min_bin_pixels``; on a small crop, fewer bins are used). A pixel is a seed when its
response exceeds ``seed_k`` times that noise scale at its background level, and belongs to a lesion while it
exceeds ``grow_k`` times it. The quantiles come from exact integer histograms, not sorting.

Only pixels with a non-zero response are counted. The background is an opening, and where the image itself is
open (along a slope, where the opening by a line running down it is the image; in a dip) the response is
exactly zero, noise included. On the phantoms 40 to 80% of the field was such zeros, and counting them shrank the
scale, up to tens of times, in the flat stretches beside them, where noise then reached many "noise scales".
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from calcimg.core import grid
from calcimg.core.measure import padded_window


@dataclass(frozen=True)
class NoiseModel:
    """The response's noise scale as a function of the background level.

    Attributes
    ----------
    levels : numpy.ndarray
        Mean background level of each bin (increasing).
    scale : numpy.ndarray
        The chosen quantile of the response in each bin (at least 1 grey level).
    counts : numpy.ndarray
        Number of pixels sampled in each bin.
    quantile : float
        The quantile used.
    """

    levels: np.ndarray
    scale: np.ndarray
    counts: np.ndarray
    quantile: float

    def threshold_lut(self, k: float, size: int) -> np.ndarray:
        """Threshold ``k * scale`` for every background level ``0 .. size-1`` (linear between bins)."""
        return np.interp(np.arange(size, dtype=np.float64), self.levels, k * self.scale)

    def scale_at(self, level: np.ndarray | float) -> np.ndarray:
        """Noise scale at the given background level(s)."""
        return np.interp(level, self.levels, self.scale)

    def to_dict(self) -> dict[str, object]:
        """JSON-safe description (the per-image record of the thresholds used)."""
        return {
            "quantile": self.quantile,
            "levels": [round(float(v), 3) for v in self.levels],
            "scale": [round(float(v), 3) for v in self.scale],
            "counts": [int(v) for v in self.counts],
        }


def _quantile_from_hist(hist: np.ndarray, q: float) -> np.ndarray:
    """Per-row quantile (lowest value whose cumulative count reaches q of the row) of integer histograms."""
    cumulative = np.cumsum(hist, axis=1)
    target = q * cumulative[:, -1:]
    return (cumulative < target).sum(axis=1).astype(np.float64)


def estimate_noise(
    response: np.ndarray,
    background: np.ndarray,
    mask: np.ndarray,
    quantile: float = 0.9,
    n_bins: int = 12,
    stride: int = 2,
    min_count: int = 500,
    min_bin_pixels: int = 0,
) -> NoiseModel:
    """Fit the response's noise scale as a function of the background level.

    Parameters
    ----------
    response : numpy.ndarray
        Non-negative integer response (uint8 or uint16).
    background : numpy.ndarray
        Background level of each pixel (same shape, integer).
    mask : numpy.ndarray
        Pixels to learn from (the field of view).
    quantile : float
        Quantile of the non-zero response that measures noise and texture.
    n_bins : int
        Number of background-level bins of equal population.
    stride : int
        Sample every ``stride``-th row and column, counted from both edges (:func:`calcimg.core.grid.centred_indices`;
        the statistics need far fewer pixels than an image has, and a mirrored image gives the same sample).
    min_count : int
        Fewest sampled pixels per bin; fewer bins are used on small images.
    min_bin_pixels : int
        Fewest image pixels a bin must stand for (a sampled pixel stands for ``stride**2``): a cluster of
        deposits at one background level then cannot make a tenth of its bin, unless it covers a tenth of that
        area.

    Returns
    -------
    NoiseModel

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> background = np.repeat(np.array([[100], [1000]], np.uint16), 200, axis=0).repeat(400, axis=1)
    >>> noise = np.where(background > 500, 40, 10) * np.abs(rng.standard_normal(background.shape))
    >>> model = estimate_noise(noise.astype(np.uint16), background, np.ones(background.shape, bool), n_bins=2)
    >>> [round(float(s) / 1.645) for s in model.scale]  # the 90th percentile of |N(0, s)| is 1.645 s
    [10, 40]
    """
    values = grid.centred_masked_sample(response, mask, stride)
    levels = grid.centred_masked_sample(background, mask, stride)
    pixels_per_sample = stride**2
    if values.size < min_count:  # tiny or almost fully masked image: learn from every pixel given
        values = response[mask] if mask.any() else response.ravel()
        levels = background[mask] if mask.any() else background.ravel()
        pixels_per_sample = 1
    if values.size == 0:
        return NoiseModel(np.zeros(1), np.ones(1), np.zeros(1, np.int64), quantile)
    responding = values > 0  # a zero response says nothing about the noise (see the module's docstring)
    values = values[responding].astype(np.int64)
    levels = levels[responding].astype(np.int64)
    if values.size == 0:
        return NoiseModel(np.zeros(1), np.ones(1), np.zeros(1, np.int64), quantile)
    per_bin = max(min_count, -(-int(min_bin_pixels) // pixels_per_sample), 1)
    n_bins = max(1, min(n_bins, values.size // per_bin))
    edges = np.unique(np.quantile(levels, np.linspace(0, 1, n_bins + 1)[1:-1]))
    bins = np.searchsorted(edges, levels, side="right")
    n_bins = len(edges) + 1
    top = int(values.max()) + 1
    hist = np.bincount(bins * top + values, minlength=n_bins * top).reshape(n_bins, top)
    counts = hist.sum(axis=1)
    keep = counts > 0
    centres = np.bincount(bins, weights=levels, minlength=n_bins)[keep] / counts[keep]
    scale = np.maximum(_quantile_from_hist(hist[keep], quantile), 1.0)
    return NoiseModel(levels=centres, scale=scale, counts=counts[keep], quantile=quantile)


def threshold_image(model: NoiseModel, background: np.ndarray, k: float) -> np.ndarray:
    """Per-pixel integer threshold at each pixel's background level.

    Returns ``floor(k * scale)`` as uint16, so that for an integer response ``response > threshold`` is exactly
    ``response > k * scale``. Uses a look-up table over the integer background levels: one gather per pixel.
    """
    return _threshold_lut(model, int(background.max()), k)[background]


def _threshold_lut(model: NoiseModel, max_level: int, k: float) -> np.ndarray:
    """uint16 ``floor(k * scale)`` for every background level ``0 .. max_level``."""
    return np.clip(np.floor(model.threshold_lut(k, max_level + 1)), 0, np.iinfo(np.uint16).max).astype(np.uint16)


def clip_image(model: NoiseModel, background: np.ndarray, clip_k: float = 2.0) -> np.ndarray:
    """The clip of :func:`local_noise_scale` at each pixel: ``clip_k`` times the noise scale of its background level
    (``threshold_image(model, background, 1.0)``), rounded to uint16, with the product taken on the look-up table
    (one gather per pixel, and no intermediate image).

    Examples
    --------
    >>> model = NoiseModel(np.array([0.0, 100.0]), np.array([2.5, 6.5]), np.array([1, 1]), 0.9)
    >>> background = np.array([[0, 50, 100]], np.uint16)
    >>> clip_image(model, background).tolist(), (2 * threshold_image(model, background, 1.0)).tolist()
    ([[4, 8, 12]], [[4, 8, 12]])
    """
    return clip_lut(model, int(background.max()), clip_k)[background]


def clip_lut(model: NoiseModel, max_level: int, clip_k: float = 2.0) -> np.ndarray:
    """The clip of :func:`clip_image` for every background level ``0 .. max_level`` (uint16, one per level).

    Examples
    --------
    >>> model = NoiseModel(np.array([0.0, 100.0]), np.array([2.5, 6.5]), np.array([1, 1]), 0.9)
    >>> clip_lut(model, 100)[[0, 50, 100]].tolist()
    [4, 8, 12]
    """
    return cv2.multiply(_threshold_lut(model, max_level, 1.0), np.float64(clip_k), dtype=cv2.CV_16U).ravel()


def local_noise_scale(response: np.ndarray, clip: np.ndarray, window_px: int) -> np.ndarray:
    """Noise-and-texture scale of the neighbourhood of every pixel.

    The root-mean-square response over a ``window_px`` square of the pixels whose response is above zero and at
    most ``clip`` (:func:`clip_image`: twice the noise scale of their background level), as a normalised
    convolution. A deposit's own pixels are left out, so a deposit does not raise the threshold of its neighbours,
    while trabecular texture or a noisy region does. Zeros are left out too: they lie where the background follows
    a slope of the image (see the module's docstring), and counting them would dilute the scale of the noisy
    pixels beside them. A window with no pixel kept takes the clip. The result is never below one grey level.
    Bone texture and smooth soft tissue can share a background level, so the level's own scale is only a clip,
    never a floor.

    Parameters
    ----------
    response : numpy.ndarray
        Non-negative integer response.
    clip : numpy.ndarray
        uint16 clip of each pixel (:func:`clip_image`).
    window_px : int
        Side of the averaging window; an even side is made odd (one more), so the window is centred.

    Returns
    -------
    numpy.ndarray
        float32 scale, same shape as ``response``.

    Examples
    --------
    >>> response = np.zeros((50, 50), np.uint16); response[:, 25:] = 3
    >>> scale = local_noise_scale(response, np.full((50, 50), 9, np.uint16), 5)
    >>> round(float(scale[25, 10]), 2), round(float(scale[25, 40]), 2)  # zeros only: the clip
    (9.0, 3.0)
    """
    # Two full-size float arrays at most: the squares (then reused for the window share) and the result. Masks are
    # applied with OpenCV (a numpy masked assignment or gather costs ten times more on a large film).
    response = response.astype(np.uint16, copy=False)
    under = cv2.compare(response, clip, cv2.CMP_LE)  # 255 where kept, 0 left out
    np.multiply(under, response > 0, out=under)  # zeros left out too
    kept = cv2.bitwise_and(response, response, mask=under).astype(np.float32)
    cv2.multiply(kept, kept, dst=kept)
    side = int(window_px) | 1
    local = cv2.blur(kept, (side, side), borderType=cv2.BORDER_REFLECT)  # mean square of the kept pixels x share
    # Share of each window that was kept (exact: sums of whole numbers), and the mean over the kept pixels only;
    # written over the squares, which are used up (one full-size float array less at the peak).
    share = cv2.boxFilter(under, cv2.CV_32F, (side, side), dst=kept, borderType=cv2.BORDER_REFLECT)
    del under
    np.multiply(share, np.float32(1.0 / 255.0), out=share)
    none_kept = share < np.float32(1e-3)  # no pixel of the window was kept
    # Where none was kept the quotient is replaced below, so the divisor may be clamped there.
    np.divide(local, np.maximum(share, np.float32(1e-3), out=share), out=local)
    del share, kept
    # A window with nothing at or under the clip (inside a large bright region) takes the clip itself.
    if none_kept.any():
        clip_square = clip.astype(np.float32)
        cv2.multiply(clip_square, clip_square, dst=clip_square)
        cv2.copyTo(clip_square, none_kept.view(np.uint8), local)
        del clip_square
    np.sqrt(local, out=local)
    return np.maximum(local, np.float32(1.0), out=local)


def local_noise_scale_rows(
    response: np.ndarray, background: np.ndarray, model: NoiseModel, window_px: int, rows: slice, clip_k: float = 2.0
) -> np.ndarray:
    """The rows ``rows`` of ``local_noise_scale(response, clip_image(model, background, clip_k), window_px)``,
    computed from those rows padded by half the window (cut at the image's edges, where the same reflection
    applies), so that a strip of the film costs what its size does and no full-size array is made.

    The values are exactly those of the whole film's (the tests compare them): the strip holds every row the window
    reaches, and whole rows are filtered as on the whole film. A block cut in columns too is not exact: OpenCV's
    float box filter then gave values a unit in the last place apart (its sums along a row start elsewhere).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> response = rng.integers(0, 30, (60, 70)).astype(np.uint16)
    >>> background = rng.integers(100, 200, (60, 70)).astype(np.uint16)
    >>> model = NoiseModel(np.array([100.0, 200.0]), np.array([8.0, 12.0]), np.array([1, 1]), 0.9)
    >>> whole = local_noise_scale(response, clip_image(model, background), 9)
    >>> bool(np.array_equal(local_noise_scale_rows(response, background, model, 9, slice(10, 13)), whole[10:13]))
    True
    """
    start, stop, _ = rows.indices(response.shape[0])
    padded = padded_window((start, stop), (0, response.shape[1]), (int(window_px) | 1) // 2, response.shape)
    scale = local_noise_scale(response[padded], clip_image(model, background[padded], clip_k), window_px)
    return scale[start - padded[0].start : stop - padded[0].start]


def strip_rows(shape: tuple[int, int], window_px: int) -> int:
    """Rows per strip of :func:`local_noise_scale_strips`, :func:`exceeds_local_scale` and
    :func:`local_noise_scale_at`: an eighth of the image, at least four times the window's half side (so the
    overlap of the padded strips stays small) and at least 64."""
    return max(shape[0] // 8, 4 * ((int(window_px) | 1) // 2), 64)


def _strips(shape: tuple[int, int], window_px: int) -> list[slice]:
    """The image's rows cut into consecutive strips of :func:`strip_rows` rows (the last one shorter)."""
    step = strip_rows(shape, window_px)
    return [slice(start, min(start + step, shape[0])) for start in range(0, shape[0], step)]


def local_noise_scale_strips(
    response: np.ndarray, background: np.ndarray, model: NoiseModel, window_px: int
) -> np.ndarray:
    """``local_noise_scale(response, clip_image(model, background), window_px)`` made in strips of rows
    (:func:`local_noise_scale_rows`): identical, with the temporaries of one strip instead of the whole film's.

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> response = rng.integers(0, 40, (200, 30)).astype(np.uint16)
    >>> background = np.full((200, 30), 150, np.uint16)
    >>> model = NoiseModel(np.array([150.0]), np.array([10.0]), np.array([1]), 0.9)
    >>> whole = local_noise_scale(response, clip_image(model, background), 7)
    >>> bool(np.array_equal(local_noise_scale_strips(response, background, model, 7), whole))
    True
    """
    result = np.empty(response.shape, np.float32)
    for rows in _strips(response.shape, window_px):
        result[rows] = local_noise_scale_rows(response, background, model, window_px, rows)
    return result


def exceeds_local_scale(
    values: np.ndarray, background: np.ndarray, model: NoiseModel, window_px: int, k: float, mask: np.ndarray
) -> np.ndarray:
    """``values > k * local_noise_scale(values, clip_image(model, background), window_px)`` inside ``mask``,
    computed in strips of rows (:func:`local_noise_scale_rows`), so that the full-size float scale and its
    temporaries are never made; identical to the whole-film computation.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> values = rng.integers(0, 40, (50, 30)).astype(np.uint16)
    >>> background = np.full((50, 30), 150, np.uint16)
    >>> model = NoiseModel(np.array([150.0]), np.array([10.0]), np.array([1]), 0.9)
    >>> scale = local_noise_scale(values, clip_image(model, background), 7)
    >>> whole = (values > 2.0 * scale) & (values > 0)
    >>> bool(np.array_equal(exceeds_local_scale(values, background, model, 7, 2.0, values > 0), whole))
    True
    """
    result = np.zeros(values.shape, bool)
    for rows in _strips(values.shape, window_px):
        scale = local_noise_scale_rows(values, background, model, window_px, rows)
        np.greater(values[rows], np.multiply(scale, k, out=scale), out=result[rows])
        result[rows] &= mask[rows]
    return result


def local_noise_scale_at(
    response: np.ndarray, background: np.ndarray, model: NoiseModel, window_px: int, flat: np.ndarray
) -> np.ndarray:
    """:func:`local_noise_scale` (clipped by :func:`clip_image`) at the raveled positions ``flat`` only; float32, in
    the order of ``flat``.

    The scale is computed only on the rows the positions lie on (:func:`local_noise_scale_rows`, exact): runs of
    such rows closer than the window are taken together, in strips of at most :func:`strip_rows` rows. A few
    lesions cost their own rows, thousands of candidates at most about one pass over the film.

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> response = rng.integers(0, 30, (40, 40)).astype(np.uint16)
    >>> background = np.full((40, 40), 100, np.uint16)
    >>> model = NoiseModel(np.array([100.0]), np.array([9.0]), np.array([1]), 0.9)
    >>> whole = local_noise_scale(response, clip_image(model, background), 5)
    >>> flat = np.array([5, 1210, 7, 1599])
    >>> bool(np.array_equal(local_noise_scale_at(response, background, model, 5, flat), whole.ravel()[flat]))
    True
    """
    result = np.empty(len(flat), np.float32)
    if not len(flat):
        return result
    row_of, col_of = np.divmod(np.asarray(flat, np.int64), response.shape[1])
    order = np.argsort(row_of, kind="stable")
    sorted_rows = row_of[order]
    for rows in _row_runs(np.unique(sorted_rows), window_px, strip_rows(response.shape, window_px)):
        first, last = np.searchsorted(sorted_rows, [rows.start, rows.stop])
        chosen = order[first:last]
        block = local_noise_scale_rows(response, background, model, window_px, rows)
        result[chosen] = block[row_of[chosen] - rows.start, col_of[chosen]]
    return result


def _row_runs(rows: np.ndarray, window_px: int, max_rows: int) -> list[slice]:
    """The increasing ``rows`` as runs of rows to compute together: a gap shorter than the window joins two runs (their
    padded strips would overlap), and no run is longer than ``max_rows``."""
    runs: list[slice] = []
    start = previous = int(rows[0])
    for row in rows[1:].tolist():
        if row - previous > int(window_px) or row - start >= max_rows:
            runs.append(slice(start, previous + 1))
            start = row
        previous = row
    runs.append(slice(start, previous + 1))
    return runs
