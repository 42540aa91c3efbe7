"""Coarse anatomy: where bone lies, for the bone-overlap measurement and the ridge decision.

Bone is found on the background image (lesions already removed): it is the part of the background that rises
well above a soft-tissue baseline, the grey opening by a disk wider than any bone of interest. The work is done on
a reduced copy of the image, since bone outlines only need to be known to a fraction of a millimetre.
"""

from __future__ import annotations

import cv2
import numpy as np

from calcimg.core import grid
from calcimg.core.morphology import grey_opening_disk


def bone_mask(
    background: np.ndarray,
    fov_mask: np.ndarray,
    px_per_mm: float,
    baseline_radius_mm: float = 25.0,
    min_excess_fraction: float = 0.2,
) -> np.ndarray:
    """Estimate the bone mask of a radiograph from its background.

    Parameters
    ----------
    background : numpy.ndarray
        The background image (bright = dense, lesions removed).
    fov_mask : numpy.ndarray
        Field of view; the tissue range is learnt inside it.
    px_per_mm : float
        Pixels per mm of ``background``.
    baseline_radius_mm : float
        Disk radius of the soft-tissue baseline: bones narrower than twice this rise above it.
    min_excess_fraction : float
        Bone rises above the baseline by at least this fraction of the field's tissue range.

    Returns
    -------
    numpy.ndarray
        Boolean mask, the shape of ``background``.
    """
    # Work at about 0.5 mm per pixel, on a grid centred on the image (a mirrored film gives the mirrored mask).
    factor = max(1, int(px_per_mm * 0.5))
    small = grid.shrink(background, factor)
    small_fov = grid.shrink_mask(fov_mask, factor)
    baseline = grey_opening_disk(small, baseline_radius_mm * px_per_mm / factor, max_rectangles=6)
    excess = cv2.subtract(small, baseline)
    values = small[small_fov] if small_fov.any() else small.ravel()
    low, high = np.percentile(values, [5.0, 99.5])
    bone_small = (excess > min_excess_fraction * max(high - low, 1.0)) & small_fov
    return grid.grow_mask(bone_small, background.shape)
