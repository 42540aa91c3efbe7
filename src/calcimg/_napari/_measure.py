"""Re-measuring edited label maps and re-comparing a pair, reusing the pipeline's own steps.

A reader's corrections (deleted, merged, painted or added lesions) change only the label maps. These functions
measure such maps exactly as :func:`calcimg.segment_image` measures its own (same intermediate images, same
measurement functions), and redo the matching and the pair summary of :func:`calcimg.compare_pair` on them, with
the registration already found. On unedited labels they reproduce the pipeline's tables and summary exactly.

Note for maintainers: these belong in :mod:`calcimg.pipeline` (``compare_pair`` would then call
:func:`recompare` after registering, and ``SegmentResult`` could keep its :class:`MeasurementMaps`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from calcimg import pipeline
from calcimg.core import anatomy, measure, registration
from calcimg.core.fov import field_of_view
from calcimg.model import Params, Radiograph
from calcimg.pipeline import PairResult, SegmentResult


@dataclass
class MeasurementMaps:
    """The intermediate images a lesion is measured on (as :func:`calcimg.segment_image` makes them).

    Attributes
    ----------
    image : numpy.ndarray
        uint16 working image.
    response, background, scale : numpy.ndarray
        Excess over the local background, the background and the local noise scale (smoothed image).
    bone : numpy.ndarray
        bool bone mask.
    levels : dict
        Tissue levels of the field of view (air, dark, bright, range).
    """

    image: np.ndarray
    response: np.ndarray
    background: np.ndarray
    scale: np.ndarray
    bone: np.ndarray
    levels: dict[str, float]


def measurement_maps(radiograph: Radiograph, params: Params) -> MeasurementMaps:
    """Compute the images lesions are measured on, with the same steps and Params as :func:`segment_image`.

    Parameters
    ----------
    radiograph : Radiograph
        The visit.
    params : Params
        The Params the visit was segmented with.

    Returns
    -------
    MeasurementMaps
    """
    image, _ = pipeline.working_image(radiograph.pixels)
    px_per_mm = pipeline._pixels_per_mm(radiograph)
    fov = field_of_view(image)
    smooth_px = params.smoothing_mm * px_per_mm
    smoothed = pipeline._smooth(image, smooth_px)
    background = pipeline._background(smoothed, params.background_line_mm * px_per_mm, params.n_orientations, smooth_px)
    window_px = max(3, int(round(params.noise_window_mm * px_per_mm)))
    response, _, scale = pipeline._response_and_scale(smoothed, background, fov.mask, params.noise_quantile, window_px)
    bone = anatomy.bone_mask(background, fov.mask, px_per_mm)
    levels = pipeline._tissue_levels(background, fov.mask)
    return MeasurementMaps(image, response, background, scale, bone, levels)


def measure_lesions(labels: np.ndarray, maps: MeasurementMaps, params: Params, radiograph: Radiograph) -> pd.DataFrame:
    """Measure every lesion of a (possibly edited) label map as the pipeline measures its own.

    Label values need not be consecutive: each value present is one lesion and keeps its id (a deleted lesion
    leaves a gap, a merged pair keeps the first id).

    Parameters
    ----------
    labels : numpy.ndarray
        Integer label map of the visit (0 background).
    maps : MeasurementMaps
        From :func:`measurement_maps`.
    params : Params
    radiograph : Radiograph

    Returns
    -------
    pandas.DataFrame
        One row per lesion present, by increasing ``lesion_id``, with the columns of ``SegmentResult.lesions``.
    """
    labels = np.asarray(labels, dtype=np.int32)
    n = int(labels.max(initial=0))
    pixels = measure.ObjectPixels.of(labels, n)
    table = pipeline._measure_candidates(maps.image, maps.response, maps.background, maps.scale, labels, pixels)
    table["bone_overlap"] = pixels.means(maps.bone)
    table = pipeline._finish_lesion_table(table, labels, n, params, maps.levels, radiograph)
    return table.loc[table["area_px"] > 0].reset_index(drop=True)


def updated_segment_summary(summary: dict[str, Any], lesions: pd.DataFrame, calibrated: bool) -> dict[str, Any]:
    """A visit's summary with its counts, areas and burden taken from a re-measured lesion table."""
    out = dict(summary)
    out["count"] = int(len(lesions))
    out["total_area_px"] = int(lesions["area_px"].sum()) if len(lesions) else 0
    out["total_area_mm2"] = float(lesions["area_mm2"].sum()) if calibrated else None
    out["total_burden"] = float(lesions["burden"].sum()) if len(lesions) else 0.0
    return out


def remeasure_visit(result: SegmentResult, labels: np.ndarray, maps: MeasurementMaps, params: Params) -> SegmentResult:
    """A visit's result with new labels, re-measured (candidates and rejected stay as segmented)."""
    labels = np.ascontiguousarray(labels, dtype=np.int32)
    lesions = measure_lesions(labels, maps, params, result.radiograph)
    summary = updated_segment_summary(result.summary, lesions, result.radiograph.calibrated)
    return replace(result, labels=labels, lesions=lesions, summary=summary)


def recompare(
    pre: SegmentResult, post: SegmentResult, transform: registration.Registration, params: Params
) -> PairResult:
    """Match the lesions of two segmented visits and summarise the pair, as :func:`compare_pair` does after
    registering.

    Parameters
    ----------
    pre, post : SegmentResult
        The visits (possibly with edited labels and re-measured tables).
    transform : Registration
        Follow-up to baseline alignment (reused, not recomputed).
    params : Params

    Returns
    -------
    PairResult
    """
    return pipeline.match_and_summarise(pre, post, transform, params)


def remeasure_pair(
    result: PairResult,
    pre_labels: np.ndarray,
    post_labels: np.ndarray,
    params: Params,
    maps: dict[str, MeasurementMaps] | None = None,
) -> PairResult:
    """Re-measure both visits from edited label maps and redo the matching and the pair summary.

    Parameters
    ----------
    result : PairResult
        The comparison being corrected (its radiographs and registration are kept).
    pre_labels, post_labels : numpy.ndarray
        The edited label maps, each in its own visit's frame.
    params : Params
    maps : dict, optional
        ``{"pre": MeasurementMaps, "post": MeasurementMaps}`` already computed; filled in when given empty.

    Returns
    -------
    PairResult
    """
    maps = {} if maps is None else maps
    visits = {}
    for visit, segment, labels in (("pre", result.pre, pre_labels), ("post", result.post, post_labels)):
        if visit not in maps:
            maps[visit] = measurement_maps(segment.radiograph, params)
        visits[visit] = remeasure_visit(segment, labels, maps[visit], params)
    return recompare(visits["pre"], visits["post"], result.transform, params)


def compare_with_regions(
    pre: Radiograph,
    post: Radiograph,
    params: Params,
    include: dict[str, np.ndarray | None] | None = None,
    exclude: dict[str, np.ndarray | None] | None = None,
    transform: registration.Registration | None = None,
) -> PairResult:
    """:func:`calcimg.compare_pair` with include/exclude masks per visit and an optional known registration.

    Parameters
    ----------
    pre, post : Radiograph
    params : Params
    include, exclude : dict, optional
        ``{"pre": mask or None, "post": mask or None}``, each mask in its own visit's frame.
    transform : Registration, optional
        Reused when given (a re-run with new regions keeps the alignment the reader has seen).

    Returns
    -------
    PairResult
    """
    return pipeline.compare_pair(pre, post, params, include=include, exclude=exclude, transform=transform)


def registration_from_dict(record: dict[str, Any]) -> registration.Registration:
    """Rebuild a :class:`~calcimg.core.registration.Registration` from its ``to_dict`` record (summary.json).

    Examples
    --------
    >>> reg = registration_from_dict({"matrix": [[1, 0, 2], [0, 1, 3]], "rotation_deg": 0, "scale": 1,
    ...                               "shift_mm": [0, 0], "model": "similarity", "quality": 0.9,
    ...                               "overlap_fraction": 1, "ok": True})
    >>> reg.matrix.tolist(), reg.ok
    ([[1.0, 0.0, 2.0], [0.0, 1.0, 3.0]], True)
    """

    def num(key: str, default: float = float("nan")) -> float:
        value = record.get(key)
        return default if value is None else float(value)

    spacing = record.get("spacing_mm") or [pipeline.NOMINAL_SPACING_MM, pipeline.NOMINAL_SPACING_MM]
    return registration.Registration(
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
