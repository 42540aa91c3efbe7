"""Overlay pictures: the radiograph with lesions outlined, rejected candidates coloured by reason."""

from __future__ import annotations

import cv2
import numpy as np

#: BGR colours (OpenCV order) of accepted lesions and of each rejection reason.
COLOURS_BGR: dict[str, tuple[int, int, int]] = {
    "accepted": (0, 215, 255),  # amber
    "truth": (80, 220, 80),  # green
    "outside_field": (128, 128, 128),
    "outside_body": (100, 100, 100),
    "excluded_region": (160, 160, 160),
    "marker": (255, 0, 255),
    "too_small": (255, 191, 0),
    "too_large": (0, 128, 255),
    "ridge": (255, 128, 0),
    "low_contrast": (200, 120, 200),
    "faint": (140, 90, 140),
    "low_score": (180, 140, 100),
    "unconfirmed": (60, 200, 200),  # olive: a comparison's, on a lesion the other film does not show
}


def display_image(pixels: np.ndarray, mask: np.ndarray | None = None, max_side: int = 1600) -> tuple[np.ndarray, float]:
    """An 8-bit BGR picture of a radiograph windowed on its 0.5-99.5 percentiles, at most ``max_side`` pixels.

    Returns
    -------
    picture : numpy.ndarray
        (rows, cols, 3) uint8.
    scale : float
        Picture pixels per image pixel.
    """
    scale = min(1.0, max_side / max(pixels.shape))
    size = (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale)))
    small = cv2.resize(pixels.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    sample = small if mask is None else small[cv2.resize(mask.astype(np.uint8), size, cv2.INTER_NEAREST) > 0]
    if sample.size == 0:
        sample = small
    low, high = np.percentile(sample, [0.5, 99.5])
    grey = np.clip((small - low) / max(high - low, 1e-6) * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), scale


def draw_outlines(picture: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], thickness: int = 1) -> None:
    """Draw the outlines of a full-resolution binary ``mask`` onto ``picture`` (resized to it) in place."""
    if not mask.any():
        return
    size = (picture.shape[1], picture.shape[0])
    small = mask.astype(np.uint8)
    if small.shape != picture.shape[:2]:
        # Max-pooling keeps lesions of one pixel visible on a reduced picture.
        factor = max(1, int(np.floor(mask.shape[0] / picture.shape[0])))
        if factor > 1:
            small = cv2.dilate(small, np.ones((factor, factor), np.uint8))
        small = cv2.resize(small, size, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(small, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(picture, contours, -1, colour, thickness, lineType=cv2.LINE_AA)


def draw_legend(picture: np.ndarray, entries: list[tuple[str, tuple[int, int, int]]]) -> None:
    """Write a colour legend in the top-left corner of ``picture`` in place."""
    scale = max(0.4, picture.shape[1] / 1600)
    line = int(22 * scale)
    width = int(max((len(label) for label, _ in entries), default=0) * 11 * scale) + int(40 * scale)
    cv2.rectangle(picture, (0, 0), (width, line * len(entries) + int(8 * scale)), (0, 0, 0), -1)
    for k, (label, colour) in enumerate(entries):
        y = int(8 * scale) + line * k
        cv2.rectangle(picture, (int(6 * scale), y + 3), (int(24 * scale), y + line - 5), colour, -1)
        cv2.putText(
            picture,
            label,
            (int(30 * scale), y + line - 7),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5 * scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )


def segmentation_overlay(
    pixels: np.ndarray,
    labels: np.ndarray,
    candidates: np.ndarray,
    reasons: dict[int, str],
    fov_mask: np.ndarray | None = None,
    truth: np.ndarray | None = None,
    max_side: int = 1600,
) -> np.ndarray:
    """Picture of one segmentation: accepted lesions in amber, rejected candidates in their reason's colour.

    Parameters
    ----------
    pixels : numpy.ndarray
        The radiograph (bright = dense).
    labels : numpy.ndarray
        Accepted lesion labels.
    candidates : numpy.ndarray
        Candidate labels.
    reasons : dict of int to str
        Rejection reason of each rejected candidate id.
    fov_mask : numpy.ndarray, optional
        Field of view, outlined in grey.
    truth : numpy.ndarray, optional
        Ground-truth mask, outlined in green (phantoms).
    max_side : int
        Longest side of the picture.

    Returns
    -------
    numpy.ndarray
        BGR uint8 picture with a legend.
    """
    picture, _ = display_image(pixels, fov_mask, max_side)
    entries: list[tuple[str, tuple[int, int, int]]] = []
    if fov_mask is not None and not fov_mask.all():
        draw_outlines(picture, fov_mask, COLOURS_BGR["outside_field"])
    by_reason: dict[str, list[int]] = {}
    for candidate_id, reason in reasons.items():
        by_reason.setdefault(reason, []).append(candidate_id)
    for reason, ids in sorted(by_reason.items()):
        lookup = np.zeros(int(candidates.max()) + 1, bool)
        lookup[ids] = True
        draw_outlines(picture, lookup[candidates], COLOURS_BGR.get(reason, (255, 255, 255)))
        entries.append((f"rejected: {reason.replace('_', ' ')} ({len(ids)})", COLOURS_BGR.get(reason, (255, 255, 255))))
    if truth is not None:
        draw_outlines(picture, truth > 0, COLOURS_BGR["truth"])
        entries.append(("truth", COLOURS_BGR["truth"]))
    draw_outlines(picture, labels > 0, COLOURS_BGR["accepted"], thickness=2)
    entries.insert(0, (f"lesion ({int(labels.max())})", COLOURS_BGR["accepted"]))
    draw_legend(picture, entries)
    return picture
