"""Scoring a segmentation against ground truth (phantoms): detection, false positives, area and overlap.

Definitions (those of the accuracy benchmark):

- a truth lesion is *found* when at least ``found_fraction`` (20%) of its pixels are predicted;
- a predicted lesion is a *false positive* when it touches no truth lesion dilated by ``fp_tolerance_px``
  (1 mm in the benchmark);
- the total-area error is ``(predicted - true) / true`` of the summed areas;
- Dice is computed on the pixel masks;
- the outline ratio of a truth lesion is the area of the predicted lesions that overlap it over its own area:
  about 1 when a found lesion is outlined where it is, below 1 when it is outlined inside its edge.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np


def score_segmentation(
    truth: np.ndarray,
    predicted: np.ndarray,
    fp_tolerance_px: float,
    found_fraction: float = 0.2,
) -> dict[str, Any]:
    """Compare a predicted label image with a truth label image.

    Parameters
    ----------
    truth : numpy.ndarray
        Truth labels (one id per lesion, 0 background).
    predicted : numpy.ndarray
        Predicted labels (one id per lesion, 0 background).
    fp_tolerance_px : float
        A prediction within this distance of a truth lesion is not a false positive.
    found_fraction : float
        Fraction of a truth lesion's pixels that must be predicted for it to count as found.

    Returns
    -------
    dict
        ``found`` (dict truth id -> bool), ``truth_area_px`` (dict truth id -> int), ``outline_ratio`` (dict truth
        id -> float, 0 when nothing overlaps it), ``false_positives``, ``n_predicted``, ``truth_total_px``,
        ``predicted_total_px``, ``dice``.

    Examples
    --------
    >>> truth = np.zeros((10, 10), int); truth[2:4, 2:4] = 1; truth[7, 7] = 2
    >>> pred = np.zeros((10, 10), int); pred[2:4, 2:5] = 1; pred[0, 9] = 2
    >>> s = score_segmentation(truth, pred, fp_tolerance_px=1)
    >>> s["found"], s["false_positives"], round(s["dice"], 3), s["outline_ratio"]
    ({1: True, 2: False}, 1, 0.667, {1: 1.5, 2: 0.0})
    """
    truth_mask = truth > 0
    pred_mask = predicted > 0
    ids, areas = np.unique(truth[truth_mask], return_counts=True)
    covered = np.bincount(truth[truth_mask & pred_mask].ravel(), minlength=int(truth.max()) + 1)
    found = {int(i): bool(covered[i] >= found_fraction * a) for i, a in zip(ids, areas, strict=True)}
    near = truth_mask
    if fp_tolerance_px > 0 and truth_mask.any():
        distance = cv2.distanceTransform((~truth_mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        near = distance <= fp_tolerance_px
    both = truth_mask & pred_mask
    pred_area = np.bincount(predicted[pred_mask].ravel(), minlength=int(predicted.max()) + 1)
    shared = np.unique(np.stack([truth[both].ravel(), predicted[both].ravel()]).astype(np.int64), axis=1)
    outline_px = np.bincount(shared[0], weights=pred_area[shared[1]], minlength=int(truth.max()) + 1)
    pred_ids = np.unique(predicted[pred_mask])
    touching = np.unique(predicted[pred_mask & near])
    overlap = int(both.sum())
    total = int(truth_mask.sum()) + int(pred_mask.sum())
    return {
        "found": found,
        "truth_area_px": {int(i): int(a) for i, a in zip(ids, areas, strict=True)},
        "outline_ratio": {int(i): float(outline_px[i] / a) for i, a in zip(ids, areas, strict=True)},
        "false_positives": int(len(np.setdiff1d(pred_ids, touching))),
        "n_predicted": int(len(pred_ids)),
        "truth_total_px": int(truth_mask.sum()),
        "predicted_total_px": int(pred_mask.sum()),
        "dice": 2 * overlap / total if total else 1.0,
    }
