"""Where the detection's full-size pixel steps run: on the CPU with OpenCV (the reference), or on a CUDA GPU.

:func:`calcimg.pipeline.detect_candidates` does its full-size pixel work (Gaussian smoothing, the response, the
local noise scale, the seed and extent thresholds, hysteresis and the trim to a fraction of each region's peak)
through one of these objects, in one order, so both backends follow the same steps:

- :class:`OpenCVOps` runs them on the CPU with OpenCV: the reference, and the default (the local noise scales in
  strips of rows, so that their temporaries are never full-size, and the extent's scale is never made at all);
- :class:`ArrayModuleOps` runs the same steps on an array module: CuPy with ``cupyx.scipy.ndimage`` on a CUDA GPU
  (``backend="cupy"``), or numpy with ``scipy.ndimage`` (``backend="numpy"``: the same code without a GPU, slow,
  for the tests of a machine that has none).

The reduced-grid steps (the background's openings, the mass channel, the noise model from a sample of the
response) and everything after the candidate mask (labelling, measurement, decisions) stay on the CPU for both:
they cost little, or work object by object.

The array-module steps are not bit-identical to OpenCV's: its Gaussian blur of uint16 images rounds a fixed-point
kernel, and its box filters sum in another order, so a pixel at a threshold can fall the other way.
``benchmarks/gpu.py`` measures how far the label maps differ, and how much faster the GPU is.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import cv2
import numpy as np

from calcimg.core import measure, morphology, threshold

#: The backends :func:`ops_for` knows.
BACKENDS = ("cpu", "cupy", "numpy")


def ops_for(backend: str) -> OpenCVOps | ArrayModuleOps:
    """The pixel operations of ``backend`` ("cpu", "cupy" or "numpy").

    Raises
    ------
    ValueError
        An unknown backend name.
    ImportError
        ``"cupy"`` where CuPy is not installed, or no CUDA device can be used.
    """
    if backend == "cpu":
        return OpenCVOps()
    if backend in ("cupy", "numpy"):
        return ArrayModuleOps(backend)
    raise ValueError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")


class OpenCVOps:
    """The detection's pixel steps on the CPU with OpenCV, on host numpy arrays (the reference implementation)."""

    name = "cpu"

    def to_device(self, array: np.ndarray) -> np.ndarray:
        """The array where the steps run (here, itself)."""
        return array

    def to_host(self, array: np.ndarray) -> np.ndarray:
        """A numpy array (here, itself)."""
        return array

    def gaussian(self, image: np.ndarray, sigma_px: float) -> np.ndarray:
        """Gaussian smoothing of standard deviation ``sigma_px``; below 0.3 pixel the image itself."""
        return cv2.GaussianBlur(image, (0, 0), sigma_px) if sigma_px >= 0.3 else image

    def subtract(self, image: np.ndarray, background: np.ndarray) -> np.ndarray:
        """``image - background``, saturated at 0 (what rises above the background)."""
        return cv2.subtract(image, background)

    def clip(self, noise: threshold.NoiseModel, background: np.ndarray) -> np.ndarray:
        """The local noise scale's clip at each pixel (:func:`calcimg.core.threshold.clip_image`)."""
        return threshold.clip_image(noise, background)

    def local_noise_scale(self, response: np.ndarray, clip: np.ndarray, window_px: int) -> np.ndarray:
        """:func:`calcimg.core.threshold.local_noise_scale`."""
        return threshold.local_noise_scale(response, clip, window_px)

    def local_scale(
        self, response: np.ndarray, background: np.ndarray, noise: threshold.NoiseModel, window_px: int
    ) -> np.ndarray:
        """The local noise scale of ``response`` clipped by ``noise`` at ``background``'s levels, made in strips of
        rows so that only the result is full-size (:func:`calcimg.core.threshold.local_noise_scale_strips`)."""
        return threshold.local_noise_scale_strips(response, background, noise, window_px)

    def exceeds_local_scale(
        self,
        values: np.ndarray,
        background: np.ndarray,
        noise: threshold.NoiseModel,
        window_px: int,
        k: float,
        mask: np.ndarray,
    ) -> np.ndarray:
        """``values > k *`` their local noise scale inside ``mask``, in strips of rows, never making the full-size
        scale (:func:`calcimg.core.threshold.exceeds_local_scale`)."""
        return threshold.exceeds_local_scale(values, background, noise, window_px, k, mask)

    def above(self, values: np.ndarray, scale: np.ndarray, k: float, mask: np.ndarray, consume: bool) -> np.ndarray:
        """``values > k * scale`` inside ``mask``; with ``consume``, ``scale`` is overwritten (one array less)."""
        product = np.multiply(scale, k, out=scale) if consume else k * scale
        result = values > product
        result &= mask
        return result

    def hysteresis(self, extent: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """The 8-connected regions of ``extent`` holding a seed (:func:`calcimg.core.morphology.hysteresis`)."""
        return morphology.hysteresis(extent, seeds)

    def trim_to_peak_fraction(self, mask: np.ndarray, response: np.ndarray, fraction: float) -> np.ndarray:
        """Each region of ``mask`` where ``response`` reaches ``fraction`` of its peak
        (:func:`calcimg.core.measure.trim_to_peak_fraction`)."""
        return measure.trim_to_peak_fraction(mask, response, fraction)

    def hysteresis_trimmed(
        self, extent: np.ndarray, seeds: np.ndarray, response: Callable[[], np.ndarray], fraction: float
    ) -> np.ndarray:
        """:meth:`hysteresis` then :meth:`trim_to_peak_fraction` against ``response()``, with one labelling, the
        response made only once the regions' labels are dropped (:func:`calcimg.core.measure.hysteresis_trimmed`)."""
        return measure.hysteresis_trimmed(extent, seeds, response, fraction)


class ArrayModuleOps:
    """The detection's pixel steps on an array module: CuPy on a CUDA GPU, or numpy (the same code, for tests).

    Parameters
    ----------
    module : {"cupy", "numpy"}
        ``"cupy"`` imports CuPy and ``cupyx.scipy.ndimage`` and checks that a CUDA device answers.
    """

    def __init__(self, module: str = "cupy") -> None:
        self.name = module
        self.xp, self.ndi = _array_modules(module)

    def to_device(self, array: np.ndarray) -> Any:
        """A copy of a host array on the module's device (for numpy, the array itself)."""
        return self.xp.asarray(array)

    def to_host(self, array: Any) -> np.ndarray:
        """A numpy copy of a device array (for numpy, the array itself)."""
        return array.get() if hasattr(array, "get") else np.asarray(array)

    def gaussian(self, image: Any, sigma_px: float) -> Any:
        """Gaussian smoothing of a uint16 image with OpenCV's kernel and border (reflect-101), rounded to uint16."""
        if sigma_px < 0.3:
            return image
        kernel = self.xp.asarray(opencv_gaussian_kernel(sigma_px), dtype=self.xp.float32)
        smoothed = image.astype(self.xp.float32)
        for axis in (0, 1):
            smoothed = self.ndi.correlate1d(smoothed, kernel, axis=axis, mode="mirror")
        return _round_to_uint16(self.xp, smoothed)

    def subtract(self, image: Any, background: Any) -> Any:
        """``image - background``, saturated at 0."""
        xp = self.xp
        return xp.where(image > background, image - background, xp.uint16(0)).astype(xp.uint16, copy=False)

    def clip(self, noise: threshold.NoiseModel, background: Any) -> Any:
        """The local noise scale's clip at each pixel, from the host's look-up table."""
        lut = threshold.clip_lut(noise, int(background.max()))
        return self.xp.asarray(lut)[background]

    def local_noise_scale(self, response: Any, clip: Any, window_px: int) -> Any:
        """:func:`calcimg.core.threshold.local_noise_scale`, written with the module's arrays and filters."""
        xp, ndi = self.xp, self.ndi
        kept = (response <= clip) & (response > 0)
        squares = xp.where(kept, response.astype(xp.float32), xp.float32(0))
        squares *= squares
        side = int(window_px) | 1
        local = ndi.uniform_filter(squares, side, mode="reflect")
        share = ndi.uniform_filter(kept.astype(xp.float32), side, mode="reflect")
        none_kept = share < xp.float32(1e-3)
        local /= xp.maximum(share, xp.float32(1e-3))
        clip_square = clip.astype(xp.float32)
        clip_square *= clip_square
        local = xp.where(none_kept, clip_square, local)
        return xp.maximum(xp.sqrt(local), xp.float32(1.0))

    def local_scale(self, response: Any, background: Any, noise: threshold.NoiseModel, window_px: int) -> Any:
        """The local noise scale of ``response`` clipped by ``noise`` at ``background``'s levels (whole film)."""
        return self.local_noise_scale(response, self.clip(noise, background), window_px)

    def hysteresis_trimmed(self, extent: Any, seeds: Any, response: Callable[[], Any], fraction: float) -> Any:
        """:meth:`hysteresis` then :meth:`trim_to_peak_fraction` against ``response()``."""
        return self.trim_to_peak_fraction(self.hysteresis(extent, seeds), response(), fraction)

    def exceeds_local_scale(
        self, values: Any, background: Any, noise: threshold.NoiseModel, window_px: int, k: float, mask: Any
    ) -> Any:
        """``values > k *`` their local noise scale inside ``mask`` (the whole film at once: device memory)."""
        scale = self.local_noise_scale(values, self.clip(noise, background), window_px)
        return self.above(values, scale, k, mask, consume=True)

    def above(self, values: Any, scale: Any, k: float, mask: Any, consume: bool) -> Any:
        """``values > k * scale`` inside ``mask`` (``consume`` is accepted for the same call as the CPU's)."""
        return (values > scale * self.xp.float32(k)) & mask

    def hysteresis(self, extent: Any, seeds: Any) -> Any:
        """The 8-connected regions of ``extent`` holding a seed: one labelling and two gathers."""
        xp = self.xp
        labels, count = self._label(extent)
        keep = xp.zeros(count + 1, bool)
        keep[labels[seeds & extent]] = True
        keep[0] = False
        return keep[labels]

    def trim_to_peak_fraction(self, mask: Any, response: Any, fraction: float) -> Any:
        """Each 8-connected region of ``mask`` where ``response`` reaches ``fraction`` of its peak: one labelling, a
        per-label maximum (atomic on the GPU) and a gather."""
        if fraction <= 0:
            return mask
        xp = self.xp
        labels, count = self._label(mask)
        # Only the labelled pixels are scattered: the background's many zeros would all wait on one atomic maximum.
        inside = xp.flatnonzero(labels)
        peaks = xp.zeros(count + 1, xp.int32)
        _scatter_max(xp, peaks, labels.ravel()[inside], response.ravel()[inside])
        return mask & (response >= fraction * peaks[labels])

    def _label(self, mask: Any) -> tuple[Any, int]:
        """8-connected labels of ``mask`` (int32, 0 background) and their number."""
        labels, count = self.ndi.label(mask, structure=np.ones((3, 3), bool), output=self.xp.int32)
        return labels, int(count)


def opencv_gaussian_kernel(sigma_px: float) -> np.ndarray:
    """The 1-D kernel OpenCV's ``GaussianBlur`` takes for ``sigma_px`` on uint16 (``2 round(4 sigma) + 1`` taps).

    Examples
    --------
    >>> kernel = opencv_gaussian_kernel(1.0)
    >>> len(kernel), round(float(kernel.sum()), 6)
    (9, 1.0)
    """
    size = int(round(sigma_px * 4 * 2 + 1)) | 1
    return cv2.getGaussianKernel(size, sigma_px, ktype=cv2.CV_64F).ravel()


def _round_to_uint16(xp: ModuleType, values: Any) -> Any:
    """Round to the nearest integer and saturate to uint16, as OpenCV's conversion does."""
    return xp.clip(xp.rint(values), 0, 65535).astype(xp.uint16)


def _scatter_max(xp: ModuleType, out: Any, index: Any, values: Any) -> None:
    """``out[i] = max(out[i], values[j])`` for every ``j`` with ``index[j] == i``, in ``out``'s integer type."""
    xp.maximum.at(out, index, values.astype(out.dtype))


def _array_modules(module: str) -> tuple[ModuleType, ModuleType]:
    """The array module and its ``ndimage`` for ``module`` ("cupy" or "numpy")."""
    if module == "numpy":
        import scipy.ndimage

        return np, scipy.ndimage
    if module != "cupy":
        raise ValueError(f"unknown array module {module!r}: expected 'cupy' or 'numpy'")
    try:
        import cupy
        import cupyx.scipy.ndimage

        cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CuPy missing, or its CUDA runtime finds no driver or device
        raise ImportError(
            f"the cupy backend needs CuPy and a CUDA GPU (pip install cupy-cuda12x or cupy-cuda13x): {error}"
        ) from error
    return cupy, cupyx.scipy.ndimage
