"""Writing one image's segmentation: label TIFF, lesion table, candidate table, summary JSON and overlay picture.

Every file is written atomically (temporary name, then rename), so an interrupted run never leaves a half file.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import tifffile

from calcimg._files import atomic_write_bytes, atomic_write_json, atomic_write_text
from calcimg.report.overlay import segmentation_overlay

#: Columns of ``<stem>_lesions.csv``, in order (every one is documented in docs/measurements.md).
LESION_COLUMNS = (
    "lesion_id",
    "area_px",
    "area_mm2",
    "centroid_row",
    "centroid_col",
    "centroid_row_mm",
    "centroid_col_mm",
    "bbox_row0",
    "bbox_col0",
    "bbox_row1",
    "bbox_col1",
    "equivalent_diameter_mm",
    "major_axis_mm",
    "minor_axis_mm",
    "width_mm",
    "orientation_deg",
    "eccentricity",
    "solidity",
    "mean_intensity",
    "max_intensity",
    "background_level",
    "mean_excess",
    "relative_excess",
    "contrast_k",
    "burden",
    "bone_overlap",
    "size_class",
    "score",
    "support",
)


#: Columns of ``<stem>_candidates.csv``, in order: every candidate, its decision and what it was decided on (each
#: is documented in docs/measurements.md).
CANDIDATE_COLUMNS = (
    "candidate_id",
    "decision",
    "support",
    "score",
    "area_px",
    "area_mm2",
    "centroid_row",
    "centroid_col",
    "bbox_row0",
    "bbox_col0",
    "bbox_row1",
    "bbox_col1",
    "major_axis_px",
    "minor_axis_px",
    "width_px",
    "eccentricity",
    "mean_intensity",
    "max_intensity",
    "background_level",
    "mean_excess",
    "max_excess",
    "rim_excess",
    "noise_scale",
    "level_noise_scale",
    "contrast_k",
    "bone_overlap",
    "bone_edge_fraction",
    "outline_fraction",
    "marker_fraction",
    "marker_core_fraction",
    "flat_fraction",
    "neighbour_fraction",
)


def label_tiff_bytes(labels: np.ndarray, description: str | None = None) -> bytes:
    """Encode a label image as a compressed TIFF (uint16, or uint32 beyond 65535 labels).

    The description is plain text: tifffile reads a JSON description as its own shaped-array metadata.
    """
    dtype = np.uint16 if int(labels.max(initial=0)) <= np.iinfo(np.uint16).max else np.uint32
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        labels.astype(dtype),
        photometric="minisblack",
        compression="zlib",
        description=description,
        metadata=None,
        software="calcimg",
    )
    return buffer.getvalue()


def png_bytes(picture: np.ndarray) -> bytes:
    """Encode a BGR picture as PNG."""
    ok, encoded = cv2.imencode(".png", picture)
    if not ok:  # pragma: no cover - OpenCV fails only on invalid arrays
        raise ValueError("could not encode the overlay picture")
    return encoded.tobytes()


def lesion_csv(lesions: pd.DataFrame) -> str:
    """The lesion table as CSV text with the documented columns in order."""
    columns = [c for c in LESION_COLUMNS if c in lesions.columns]
    return lesions.loc[:, columns].to_csv(index=False, float_format="%.6g", lineterminator="\n")


def candidate_csv(candidates: pd.DataFrame, pixel_area_mm2: float | None) -> str:
    """Every candidate as CSV text: ``decision`` ("accepted" or the rejection reason), then the documented columns.

    The candidates are those of the label map ``result.candidates``, numbered as there; an accepted candidate is a
    lesion (lesions are numbered anew in ``<stem>_lesions.csv``). ``area_mm2`` is empty when uncalibrated.
    """
    table = candidates.rename(columns={"reason": "decision"})
    table["area_mm2"] = table["area_px"] * (np.nan if pixel_area_mm2 is None else pixel_area_mm2)
    columns = [c for c in CANDIDATE_COLUMNS if c in table.columns]
    return table.loc[:, columns].to_csv(index=False, float_format="%.6g", lineterminator="\n")


def write_segmentation(result: Any, out_dir: str | Path, stem: str) -> dict[str, Path]:
    """Write ``<stem>_labels.tif``, ``<stem>_lesions.csv``, ``<stem>_candidates.csv``, ``<stem>_summary.json`` and
    ``<stem>_overlay.png``.

    Parameters
    ----------
    result : calcimg.pipeline.SegmentResult
        What :func:`calcimg.segment_image` returned.
    out_dir : str or Path
        Output folder (created if needed).
    stem : str
        File-name stem.

    Returns
    -------
    dict of str to pathlib.Path
        Paths by kind: ``labels``, ``lesions``, ``candidates``, ``summary``, ``overlay``.
    """
    out = Path(out_dir)
    reasons = dict(zip(result.rejected["candidate_id"], result.rejected["reason"], strict=True))
    overlay = segmentation_overlay(result.radiograph.pixels, result.labels, result.candidates, reasons, result.fov.mask)
    summary = result.summary
    return {
        "labels": atomic_write_bytes(
            out / f"{stem}_labels.tif",
            label_tiff_bytes(
                result.labels,
                f"calcimg {summary['calcimg_version']} lesion labels; input {summary['input']['content_hash']}",
            ),
        ),
        "lesions": atomic_write_text(out / f"{stem}_lesions.csv", lesion_csv(result.lesions)),
        "candidates": atomic_write_text(
            out / f"{stem}_candidates.csv", candidate_csv(result.candidate_table, result.radiograph.pixel_area_mm2)
        ),
        "summary": atomic_write_json(out / f"{stem}_summary.json", summary),
        "overlay": atomic_write_bytes(out / f"{stem}_overlay.png", png_bytes(overlay)),
    }
