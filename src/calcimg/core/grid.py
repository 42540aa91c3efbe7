"""Coarser copies and samples of an image that mirror with it.

Several steps work on a reduced copy of the film (the background, the bone mask, the crowding of candidates) or on
a sample of its pixels (the noise model). A grid anchored at the top-left corner gives a mirrored film a different
grid, and so slightly different lesions. Here every grid and sample is centred on the image instead, so that
flipping, transposing or turning the film flips, transposes or turns every intermediate result exactly, and the
lesions found do not depend on how the film was put on the scanner:

- :func:`shrink` and :func:`grow` resample with OpenCV's bit-exact bilinear interpolation (``INTER_LINEAR_EXACT``),
  whose grid is centred (pixel centres at ``(i + 0.5) * scale - 0.5``) and whose fixed-point weights mirror
  exactly (``INTER_LINEAR`` differs by a grey level in a few cases in a thousand, and ``INTER_AREA`` and
  ``INTER_NEAREST`` at fractional scales are not symmetric). Fit for images already smoothed at the scale of the
  reduction: bilinear sampling does not average.
- :func:`block_mean` averages whole blocks on a grid padded equally on both sides, for masks whose coverage counts.
- :func:`centred_sample` takes every ``stride``-th row and column counted from both edges.
"""

from __future__ import annotations

import cv2
import numpy as np


def _shrunk_shape(shape: tuple[int, ...], factor: float) -> tuple[int, int]:
    """(rows, cols) of :func:`shrink`: each side divided by ``factor``, rounded half up, at least 1."""
    return tuple(max(1, int(side / factor + 0.5)) for side in shape[:2])  # type: ignore[return-value]


def shrink(image: np.ndarray, factor: float) -> np.ndarray:
    """The image resampled to ``_shrunk_shape`` (bilinear on a centred grid; the image itself for a factor <= 1).

    Examples
    --------
    >>> image = np.arange(16, dtype=np.uint16).reshape(4, 4) * 10
    >>> shrink(image, 2).tolist()  # a factor of 2 on even sides: the means of 2 x 2 blocks
    [[25, 45], [105, 125]]
    """
    if factor <= 1:
        return image
    rows, cols = _shrunk_shape(image.shape, factor)
    return cv2.resize(image, (cols, rows), interpolation=cv2.INTER_LINEAR_EXACT)


def grow(small: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``small`` resampled back to ``shape`` (bilinear on the same centred grid as :func:`shrink`)."""
    if small.shape[:2] == tuple(shape):
        return small
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR_EXACT)


def _mask_values(mask: np.ndarray) -> np.ndarray:
    """A boolean mask as uint8 0 / 254, so that one half of it, 127, is a whole grey level."""
    return np.ascontiguousarray(mask).view(np.uint8) * np.uint8(254)


def shrink_mask(mask: np.ndarray, factor: float) -> np.ndarray:
    """A boolean mask on the :func:`shrink` grid: a cell is inside when the bilinear value of the mask there is
    at least one half."""
    return shrink(_mask_values(mask), factor) >= 127


def grow_mask(small: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A boolean mask on the :func:`shrink` grid brought back to ``shape``: a pixel is inside when the bilinear
    value of the mask there is at least one half."""
    return grow(_mask_values(small), shape) >= 127


def symmetric_factor(shape: tuple[int, ...], factor: int) -> int:
    """The block side used by :func:`block_mean` for ``factor``: ``factor`` itself, or ``factor - 1`` when
    ``factor`` is even and a side has an odd length (an even block cannot tile an odd side symmetrically).

    Examples
    --------
    >>> symmetric_factor((100, 80), 4), symmetric_factor((101, 80), 4), symmetric_factor((101, 80), 3)
    (4, 3, 3)
    """
    factor = max(1, int(factor))
    if factor % 2 == 0 and any(side % 2 for side in shape):
        factor -= 1
    return factor


def _padding(side: int, factor: int) -> int:
    """Total padding (even) that makes ``side`` a multiple of ``factor`` (odd, or even with ``side`` even)."""
    pad = (-side) % factor
    return pad + factor if pad % 2 else pad


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Means of ``factor`` x ``factor`` blocks on a grid centred on the image (mirrored padding at the edges).

    Parameters
    ----------
    image : numpy.ndarray
        2-D image (uint8, uint16 or float32).
    factor : int
        Block side; must be :func:`symmetric_factor` of the image's shape.

    Returns
    -------
    numpy.ndarray
        The reduced image, same dtype.

    Examples
    --------
    >>> image = np.arange(25, dtype=np.uint16).reshape(5, 5)
    >>> block_mean(image, 3).tolist()  # 5 padded to 9 (2 mirrored each side; 6 would need 1 and 0): 3 blocks
    [[2, 4, 5], [10, 12, 14], [19, 20, 22]]
    """
    if factor == 1:
        return image
    if factor != symmetric_factor(image.shape, factor):
        raise ValueError(f"factor {factor} cannot tile an image of shape {image.shape} symmetrically")
    rows, cols = image.shape
    pad_rows, pad_cols = _padding(rows, factor), _padding(cols, factor)
    padded = cv2.copyMakeBorder(image, pad_rows // 2, pad_rows // 2, pad_cols // 2, pad_cols // 2, cv2.BORDER_REFLECT)
    return cv2.resize(padded, (padded.shape[1] // factor, padded.shape[0] // factor), interpolation=cv2.INTER_AREA)


def block_coordinates(coordinates: np.ndarray, side: int, factor: int) -> np.ndarray:
    """Pixel coordinates along a side of ``side`` pixels, in blocks of :func:`block_mean` (pixel and block centres
    at whole numbers).

    Examples
    --------
    >>> block_coordinates(np.array([0.0, 2.0, 4.0]), 5, 3).round(4).tolist()  # 2 mirrored pixels before
    [0.3333, 1.0, 1.6667]
    """
    return (np.asarray(coordinates, float) + _padding(side, factor) // 2 + 0.5) / factor - 0.5


def centred_indices(side: int, stride: int) -> np.ndarray:
    """Indices ``i`` of ``0 .. side-1`` whose distance to the nearer end, ``min(i, side - 1 - i)``, is a multiple
    of ``stride``: every ``stride``-th index, counted from both ends.

    Examples
    --------
    >>> centred_indices(10, 2).tolist(), centred_indices(9, 2).tolist()
    ([0, 2, 4, 5, 7, 9], [0, 2, 4, 6, 8])
    """
    index = np.arange(side)
    return index[np.minimum(index, side - 1 - index) % max(1, stride) == 0]


def _centred_slices(side: int, stride: int) -> list[slice]:
    """:func:`centred_indices` as (at most) two slices: the steps from the start and those from the end."""
    index = centred_indices(side, stride)
    first = index[index <= (side - 1) / 2]
    second = index[index > (side - 1) / 2]
    return [slice(int(part[0]), int(part[-1]) + 1, stride) for part in (first, second) if len(part)]


def centred_views(image: np.ndarray, stride: int) -> list[np.ndarray]:
    """The pixels of :func:`centred_sample` as (at most) four strided views, no copy: the blocks of rows from the
    top and from the bottom by columns from the left and from the right."""
    rows, cols = image.shape
    return [image[r, c] for r in _centred_slices(rows, stride) for c in _centred_slices(cols, stride)]


def centred_masked_sample(image: np.ndarray, mask: np.ndarray, stride: int) -> np.ndarray:
    """The pixels of :func:`centred_sample` where ``mask`` is set, as a 1-D array (in the same order for every
    image of the same shape and mask).

    Examples
    --------
    >>> image = np.arange(25).reshape(5, 5)
    >>> sorted(centred_masked_sample(image, image % 2 == 0, 2).tolist())
    [0, 2, 4, 10, 12, 14, 20, 22, 24]
    """
    views = zip(centred_views(image, stride), centred_views(mask, stride), strict=True)
    return np.concatenate([view[inside] for view, inside in views])


def centred_sample(image: np.ndarray, stride: int) -> np.ndarray:
    """The pixels at :func:`centred_indices` rows and columns (a 2-D copy; the image itself for a stride of 1).

    Examples
    --------
    >>> centred_sample(np.arange(25).reshape(5, 5), 2).tolist()
    [[0, 2, 4], [10, 12, 14], [20, 22, 24]]
    """
    if stride <= 1:
        return image
    rows, cols = image.shape
    row_slices, col_slices = _centred_slices(rows, stride), _centred_slices(cols, stride)
    return np.block([[image[r, c] for c in col_slices] for r in row_slices])
