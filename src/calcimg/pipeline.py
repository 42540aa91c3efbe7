"""The one place that knows the order of the steps: ``segment_image`` (and later ``compare_pair``).

Steps of :func:`segment_image`:

1. read the radiograph (if a path was given) and take its pixels as an integer working image, bright = dense;
2. find the field of view (:mod:`calcimg.core.fov`);
3. estimate the local background as the lower of two grey openings, the maximum of openings by lines of
   ``background_line_mm`` in every direction and the opening by a disk of ``background_radius_mm``, and take the
   response: what rises above it (:mod:`calcimg.core.morphology`);
4. learn the response's noise and texture scale locally and threshold with hysteresis: seeds where the smoothed
   response exceeds ``seed_k`` scales, extent where the unsmoothed response exceeds ``grow_k`` scales
   (:mod:`calcimg.core.threshold`); add the regions of the mass channel (deposits wider than the line, found on a
   reduced copy against longer lines: :func:`_mass_regions`); the full-size pixel work of steps 3 and 4 runs on
   the backend asked for (:mod:`calcimg.core.backends`: OpenCV on the CPU by default, or CuPy on a CUDA GPU);
5. label the candidates (8-connected), measure them and decide each one (:mod:`calcimg.core.measure`,
   :mod:`calcimg.core.classify`);
6. fill the holes of the accepted lesions and measure them in mm and mm^2.

Steps of :func:`compare_pair`:

1. find and decide the candidates of each visit on its own pixels (steps 1-5 above);
2. register the follow-up to the baseline (:mod:`calcimg.core.registration`);
3. paired support: a candidate rejected only for its score is accepted where the other visit accepted a lesion,
   and where such a lesion lies inside a candidate rejected as a whole (merged with a bone, in a marker's zone),
   the piece of it under the lesion is accepted (:mod:`calcimg.core.paired`); a large lesion of one visit that
   matches nothing on the other is looked for there (a faint counterpart);
4. measure each visit's lesions on its own pixels (areas are never measured on resampled masks);
5. carry the follow-up's label map into the baseline frame (nearest neighbour, for matching only) and match
   lesions by overlap and distance, one-to-many allowed (:mod:`calcimg.core.matching`); a lesion that matches
   nothing and scores under ``unmatched_min_score`` is rejected as unconfirmed, and its film measured and
   matched again;
6. total areas, counts and burden at both visits, their change, the category, the response and whether a reader
   must review the pair.
"""

from __future__ import annotations

import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from os import PathLike
from typing import Any

import cv2
import numpy as np
import pandas as pd

from calcimg import __version__
from calcimg.core import (
    anatomy,
    backends,
    candidate_model,
    classify,
    grid,
    matching,
    measure,
    morphology,
    outline,
    paired,
    registration,
    threshold,
)
from calcimg.core import fov as fov_module
from calcimg.core.fov import FieldOfView, field_of_view
from calcimg.errors import ParameterError
from calcimg.io import load_radiograph, validate_user_spacing
from calcimg.model import NOMINAL_SPACING_MM, Params, Radiograph


@dataclass
class SegmentResult:
    """What :func:`segment_image` found on one radiograph.

    Attributes
    ----------
    radiograph : Radiograph
        The input.
    labels : numpy.ndarray
        int32, the input's shape: 0 background, accepted lesions 1..N (raster order of their first pixel).
    lesions : pandas.DataFrame
        One row per accepted lesion (``lesion_id`` = its label).
    rejected : pandas.DataFrame
        One row per rejected candidate with its ``reason`` and the same measurements.
    candidates : numpy.ndarray
        Label image of every candidate (accepted or not), ``candidate_id`` in the tables: uint16, or int32 on a
        film with 65,536 candidates or more.
    candidate_table : pandas.DataFrame
        Every candidate with its measurements and decision (``reason`` is ``"accepted"`` or why not).
    fov : FieldOfView
        The field of view.
    summary : dict
        JSON-safe per-image record: counts, areas, burden, thresholds, noise, spacing and its source, Params,
        version, input identity.
    """

    radiograph: Radiograph
    labels: np.ndarray
    lesions: pd.DataFrame
    rejected: pd.DataFrame
    candidates: np.ndarray
    candidate_table: pd.DataFrame
    fov: FieldOfView
    summary: dict[str, Any] = field(default_factory=dict)

    def rejected_labels(self) -> np.ndarray:
        """int32 label map of the rejected candidates (their ``candidate_id``), 0 elsewhere."""
        ids = self.rejected["candidate_id"].to_numpy()
        return np.where(np.isin(self.candidates, ids), self.candidates, 0).astype(np.int32)


def read_params(path: str | PathLike[str]) -> Params:
    """Read Params from a JSON file written by ``calcimg params`` (missing keys take their defaults).

    Raises
    ------
    ParameterError
        When the file cannot be read, is not JSON, or holds an unknown or invalid parameter.
    """
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            values = json.load(handle)
        if not isinstance(values, dict):
            raise ValueError("expected a JSON object")
        return Params.from_dict(values)
    except (OSError, ValueError, TypeError) as exc:
        raise ParameterError(f"{path}: invalid Params file ({exc})") from exc


def working_image(pixels: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Integer working image (uint16) of a radiograph's pixels, and how it was made.

    uint16 is kept as is; uint8 is scaled by 257 to span the same range; float images are mapped linearly from
    their finite minimum and maximum onto 0..65535.
    """
    if pixels.dtype == np.uint16:
        return pixels, {"conversion": "none"}
    if pixels.dtype == np.uint8:
        return pixels.astype(np.uint16) * np.uint16(257), {"conversion": "uint8 x 257"}
    values = pixels.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(pixels.shape, np.uint16), {"conversion": "no finite values"}
    low, high = float(values[finite].min()), float(values[finite].max())
    scale = 65535.0 / (high - low) if high > low else 0.0
    scaled = np.where(finite, (values - low) * scale, 0.0)
    return np.round(scaled).astype(np.uint16), {"conversion": "linear", "offset": low, "scale": scale}


def _pixels_per_mm(radiograph: Radiograph) -> float:
    spacing = radiograph.spacing_mm
    if spacing is None:
        return 1.0 / NOMINAL_SPACING_MM
    return 2.0 / (spacing[0] + spacing[1])


def backend_ops(backend: str) -> backends.OpenCVOps | backends.ArrayModuleOps:
    """The pixel operations of ``backend`` (:mod:`calcimg.core.backends`).

    Raises
    ------
    ParameterError
        An unknown backend, or ``"cupy"`` without CuPy or a CUDA GPU, in words that say which.
    """
    try:
        return backends.ops_for(backend)
    except (ValueError, ImportError) as error:
        raise ParameterError(f"backend {backend!r}: {error}") from error


def _region_mask(region: np.ndarray | None, shape: tuple[int, int], name: str) -> np.ndarray | None:
    if region is None:
        return None
    region = np.asarray(region)
    if region.shape != shape:
        raise ParameterError(f"{name} mask has shape {region.shape}, the image {shape}")
    return region != 0


@dataclass
class CandidateStage:
    """Everything :func:`segment_image` knows once each candidate is decided, before the lesions are measured.

    Kept between the two halves of segmentation so that a comparison can let each visit support the other's
    candidates (:func:`compare_pair`) without computing anything twice.
    """

    radiograph: Radiograph
    params: Params
    image: np.ndarray
    response: np.ndarray
    background: np.ndarray
    bone: np.ndarray
    levels: dict[str, float]
    candidates: np.ndarray
    table: pd.DataFrame
    fov: FieldOfView
    noise: threshold.NoiseModel
    conversion: dict[str, Any]
    line_px: float
    radius_px: float
    pixels: measure.ObjectPixels
    backend: str = "cpu"

    def noise_scale_at(self, flat: np.ndarray) -> np.ndarray:
        """The local noise scale of the response at the raveled positions ``flat`` (float32): the scale the
        candidates were measured against, computed again where it is asked for
        (:func:`calcimg.core.threshold.local_noise_scale_at`) rather than kept for the whole film."""
        window_px = _noise_window_px(self.params, _pixels_per_mm(self.radiograph))
        return threshold.local_noise_scale_at(self.response, self.background, self.noise, window_px, flat)


def segment_image(
    source: str | PathLike[str] | Radiograph,
    params: Params | None = None,
    spacing: float | tuple[float, float] | None = None,
    include: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    backend: str = "cpu",
) -> SegmentResult:
    """Find and measure every calcinosis lesion on a radiograph.

    Parameters
    ----------
    source : str, PathLike or Radiograph
        A file (read with :func:`calcimg.load_radiograph`) or a Radiograph.
    params : Params, optional
        Defaults to ``Params()``.
    spacing : float or (float, float), optional
        Pixel spacing in mm overriding the file's.
    include, exclude : numpy.ndarray, optional
        Masks (or label images) of the image's shape: only candidates centred inside ``include`` and outside
        ``exclude`` are accepted.
    backend : {"cpu", "cupy", "numpy"}
        Where the full-size pixel steps of detection run (:mod:`calcimg.core.backends`): ``"cpu"`` (OpenCV, the
        reference), ``"cupy"`` (a CUDA GPU; needs CuPy), or ``"numpy"`` (the GPU's code on the CPU, for tests).

    Returns
    -------
    SegmentResult
    """
    return finish_segmentation(detect_candidates(source, params, spacing, include, exclude, backend))


def detect_candidates(
    source: str | PathLike[str] | Radiograph,
    params: Params | None = None,
    spacing: float | tuple[float, float] | None = None,
    include: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    backend: str = "cpu",
) -> CandidateStage:
    """Steps 1-5 of :func:`segment_image` (same parameters): every candidate found, measured and decided."""
    params = params or Params()
    ops = backend_ops(backend)
    radiograph = _read_source(source, spacing)
    include_mask = _region_mask(include, radiograph.shape, "include")
    exclude_mask = _region_mask(exclude, radiograph.shape, "exclude")

    image, conversion = working_image(radiograph.pixels)
    px_per_mm = _pixels_per_mm(radiograph)
    fov = field_of_view(image)
    line_px = params.background_line_mm * px_per_mm
    radius_px = params.background_radius_mm * px_per_mm
    background, response, noise, scale, candidates_mask = _candidate_maps(image, fov.mask, params, px_per_mm, ops)

    # Each full-size map is dropped once its per-candidate figure is taken, so that few are held at once.
    candidates, n = measure.label_objects_compact(candidates_mask)
    pixels = measure.ObjectPixels.of(candidates, n)
    table = _measure_candidates(image, response, background, pixels.means(scale), candidates, pixels)
    del scale  # lesions measured later compute theirs again (CandidateStage.noise_scale_at)
    neighbour_fraction = measure.neighbour_fraction(
        candidates_mask,
        table[["centroid_row", "centroid_col"]].to_numpy(),
        table["area_px"].to_numpy(),
        params.neighbour_window_mm * px_per_mm,
    )
    del candidates_mask
    bone = anatomy.bone_mask(background, fov.mask, px_per_mm)
    levels = _tissue_levels(background, fov.mask)
    levels["saturation"] = _saturation_level(image)
    # Long thin ridges also run along the skin and the field's edges (processing halos): outlines of both.
    # The body is what is denser than air by a share of the tissue range; on a film without tissue contrast, all.
    air_level = _air_level(levels, noise, params)
    outline_px = params.ridge_max_width_mm * px_per_mm
    bone_edge = _edge_zone(bone, outline_px)
    table["bone_overlap"] = pixels.means(bone)
    table["bone_edge_fraction"] = pixels.means(bone_edge)
    outline_fraction = pixels.means(bone_edge | _edge_zone((background >= air_level) & fov.mask, outline_px))
    del bone_edge
    marker_cores, markers = _marker_zones(image, levels, noise, params, px_per_mm)
    table["marker_fraction"] = pixels.means(markers)
    table["marker_core_fraction"] = pixels.means(marker_cores)
    del marker_cores, markers
    table["flat_fraction"] = measure.flat_fractions(pixels, image)
    table["level_noise_scale"] = noise.scale_at(table["background_level"].to_numpy())
    table["neighbour_fraction"] = neighbour_fraction
    table["outline_fraction"] = outline_fraction
    margin_fov = _shrink(fov.mask, params.fov_margin_mm * px_per_mm)
    table["score"] = (
        candidate_model.candidate_scores(candidate_model.candidate_features(table, px_per_mm, levels))
        if n and params.min_score > 0
        else np.full(n, np.nan)
    )
    table["reason"] = _decide(
        table, params, px_per_mm, radiograph, margin_fov, include_mask, exclude_mask, levels, air_level,
        fov.flat_pixel_share,
    )  # fmt: skip
    table["support"] = np.where(table["reason"].to_numpy() == classify.ACCEPTED, "own", "")
    return CandidateStage(
        radiograph, params, image, response, background, bone, levels, candidates, table, fov, noise,
        conversion, line_px, radius_px, pixels, ops.name,
    )  # fmt: skip


def finish_segmentation(
    stage: CandidateStage,
    supported: np.ndarray | None = None,
    pieces: list[paired.Piece] | None = None,
    unconfirmed: np.ndarray | None = None,
) -> SegmentResult:
    """Step 6 of :func:`segment_image`: the accepted candidates become lesions, measured in mm and mm^2.

    Parameters
    ----------
    stage : CandidateStage
        From :func:`detect_candidates`.
    supported : numpy.ndarray, optional
        bool per candidate: candidates to accept as well, on the other visit's evidence (their ``reason``
        becomes "accepted" and ``support`` "other_visit").
    pieces : list of calcimg.core.paired.Piece, optional
        Parts of rejected candidates to accept as lesions, on the other visit's evidence (the candidates stay
        rejected; their ``support`` becomes "other_visit_piece"), and faint counterparts (``candidate_id`` 0),
        which lie on no candidate. Their number is in ``summary["faint_counterparts"]``.
    unconfirmed : numpy.ndarray, optional
        bool per candidate: accepted candidates to reject as "unconfirmed" (a comparison's: their lesion matches
        nothing on the other film and scores under ``unmatched_min_score``). Their number is in
        ``summary["unconfirmed"]``.

    Returns
    -------
    SegmentResult
    """
    table = stage.table.copy()
    if supported is not None and supported.any():
        table.loc[supported, "reason"] = classify.ACCEPTED
        table.loc[supported, "support"] = "other_visit"
    if unconfirmed is not None and unconfirmed.any():
        table.loc[unconfirmed, "reason"] = classify.UNCONFIRMED
        table.loc[unconfirmed, "support"] = ""
    accepted = table["reason"].to_numpy() == classify.ACCEPTED
    keep = np.concatenate([[False], accepted])
    lesion_mask = keep[stage.candidates]
    for piece in pieces or ():
        lesion_mask[piece.window] |= piece.mask
        if piece.candidate_id:
            table.loc[piece.candidate_id - 1, "support"] = "other_visit_piece"
    if stage.params.fill_holes:
        lesion_mask = morphology.fill_holes(lesion_mask)
    labels, _ = measure.label_objects(lesion_mask)
    del lesion_mask
    labels, added = _complete_outlines(stage, labels)
    lesions = measure_lesions(stage, labels)
    lesions["score"], lesions["support"] = lesion_evidence(stage, table, labels, lesions, pieces or [])
    rejected = table.loc[~accepted].reset_index(drop=True)
    summary = _summary(
        stage.radiograph, stage.params, lesions, rejected, stage.fov, stage.noise, stage.levels, stage.conversion,
        stage.line_px, stage.radius_px, stage.backend,
    )  # fmt: skip
    summary["outline_completion"] = {"lesions": int(np.count_nonzero(added)), "pixels_added": int(added.sum())}
    summary["faint_counterparts"] = sum(1 for piece in pieces or () if not piece.candidate_id)
    summary["unconfirmed"] = 0 if unconfirmed is None else int(np.count_nonzero(unconfirmed))
    return SegmentResult(stage.radiograph, labels, lesions, rejected, stage.candidates, table, stage.fov, summary)


def lesion_evidence(
    stage: CandidateStage, table: pd.DataFrame, labels: np.ndarray, lesions: pd.DataFrame, pieces: list[paired.Piece]
) -> tuple[np.ndarray, np.ndarray]:
    """The ``score`` and ``support`` columns of a lesion table: each lesion's best accepted candidate's score and
    support in ``table`` (:func:`calcimg.core.classify.lesion_evidence`); a lesion holding no accepted candidate but
    one of ``pieces`` was taken on the other film's evidence: "other_visit_piece" or "faint_counterpart"."""
    score, support = classify.lesion_evidence(
        stage.pixels.values(labels),
        stage.pixels.label,
        table["reason"].to_numpy() == classify.ACCEPTED,
        table["score"].to_numpy(float),
        table["support"].to_numpy(object),
        int(labels.max(initial=0)),
    )
    for piece in pieces:
        for lesion_id in np.unique(labels[piece.window][piece.mask]):
            if lesion_id and support[lesion_id - 1] == "":
                support[lesion_id - 1] = "other_visit_piece" if piece.candidate_id else "faint_counterpart"
    ids = lesions["lesion_id"].to_numpy() - 1
    return score[ids], support[ids]


def edited_lesion_evidence(
    stage: CandidateStage, before: SegmentResult, labels: np.ndarray, lesions: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """The ``score`` and ``support`` columns for a reader's edited ``labels`` of the film ``before`` describes:
    each lesion's best accepted candidate (:func:`lesion_evidence`); a lesion that holds none but has exactly the
    pixels it had in ``before`` keeps what the segmentation said of it (a piece or a faint counterpart), and one
    made without any accepted candidate (painted) has none."""
    score, support = lesion_evidence(stage, before.candidate_table, labels, lesions, [])
    if "support" not in before.lesions:
        return score, support
    previous = before.lesions.set_index("lesion_id")
    for index, row in enumerate(lesions.itertuples()):
        if support[index] == "" and _same_pixels(row, previous, labels, before.labels):
            score[index], support[index] = previous.at[row.lesion_id, "score"], previous.at[row.lesion_id, "support"]
    return score, support


def _same_pixels(row: Any, previous: pd.DataFrame, labels: np.ndarray, previous_labels: np.ndarray) -> bool:
    """Whether lesion ``row.lesion_id`` has exactly the pixels it had in ``previous_labels`` (compared in its box)."""
    if row.lesion_id not in previous.index or previous.at[row.lesion_id, "area_px"] != row.area_px:
        return False
    window = (slice(int(row.bbox_row0), int(row.bbox_row1)), slice(int(row.bbox_col0), int(row.bbox_col1)))
    return bool(np.array_equal(labels[window] == row.lesion_id, previous_labels[window] == row.lesion_id))


def _complete_outlines(stage: CandidateStage, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lesions of at least ``outline_min_area_mm2`` completed, in place, against a plane fitted around each
    (:func:`calcimg.core.outline.grow_to_local_background`); the labels and the pixels added to each lesion id."""
    params = stage.params
    if params.outline_min_area_mm2 <= 0 or not labels.any():
        return labels, np.zeros(int(labels.max(initial=0)) + 1, np.int64)
    px_per_mm = _pixels_per_mm(stage.radiograph)
    settings = outline.OutlineSettings(
        ring_inner_px=params.outline_ring_mm[0] * px_per_mm,
        ring_outer_px=params.outline_ring_mm[1] * px_per_mm,
        reach_px=params.outline_reach_mm * px_per_mm,
        fraction=params.edge_fraction,
        ring_k=params.outline_ring_k,
        min_area_px=int(np.ceil(params.outline_min_area_mm2 * px_per_mm**2)),
        smoothing_px=params.extent_smoothing_mm * px_per_mm,
    )
    # One full-size temporary (the surround); the labels are completed in place.
    return outline.grow_to_local_background(
        labels, stage.image, stage.candidates, _surround_ok(stage), stage.bone, settings, out=labels
    )


def _surround_ok(stage: CandidateStage) -> np.ndarray:
    """Where a lesion's surround may be read (the body, within the field of view), made as one mask in place."""
    surround_ok = np.greater_equal(stage.background, _air_level(stage.levels, stage.noise, stage.params))
    surround_ok &= stage.fov.mask
    return surround_ok


def _air_level(levels: dict[str, float], noise: threshold.NoiseModel, params: Params) -> float:
    """Background level below which a pixel lies on air, outside the body: a share (``min_tissue_fraction``) of
    the tissue range above the air level; on a film without tissue contrast, none does."""
    if not _has_tissue_contrast(levels, noise):
        return -np.inf
    return levels["air"] + params.min_tissue_fraction * levels["range"]


def measure_lesions(stage: CandidateStage, labels: np.ndarray) -> pd.DataFrame:
    """Measure every lesion of a label map of the stage's image, as :func:`segment_image` measures its own.

    Label values need not be consecutive (a reader's edits leave gaps): each value present is one lesion and
    keeps its id.

    Parameters
    ----------
    stage : CandidateStage
        From :func:`detect_candidates` on the same radiograph and Params.
    labels : numpy.ndarray
        int label map of the image's shape (0 background).

    Returns
    -------
    pandas.DataFrame
        One row per lesion present, by increasing ``lesion_id``.
    """
    labels = np.asarray(labels, dtype=np.int32)
    n = int(labels.max(initial=0))
    pixels = measure.ObjectPixels.of(labels, n)
    noise_scale = pixels.means_of(stage.noise_scale_at(pixels.flat))
    table = _measure_candidates(stage.image, stage.response, stage.background, noise_scale, labels, pixels)
    table["bone_overlap"] = pixels.means(stage.bone)
    table = _finish_lesion_table(table, labels, n, stage.params, stage.levels, stage.radiograph)
    return table.loc[table["area_px"] > 0].reset_index(drop=True)


def _read_source(source: str | PathLike[str] | Radiograph, spacing: float | tuple[float, float] | None) -> Radiograph:
    """The Radiograph to segment: read from a path, or the one given (with a user spacing applied if any)."""
    if isinstance(source, Radiograph):
        return source if spacing is None else _with_spacing(source, validate_user_spacing(spacing))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reader's warnings are kept on the Radiograph and reported
        return load_radiograph(source, spacing=spacing)


def _candidate_maps(
    image: np.ndarray,
    fov_mask: np.ndarray,
    params: Params,
    px_per_mm: float,
    ops: backends.OpenCVOps | backends.ArrayModuleOps,
) -> tuple[np.ndarray, np.ndarray, threshold.NoiseModel, np.ndarray, np.ndarray]:
    """Steps 3 and 4 of :func:`segment_image`: the background, the response, its noise model and local scale, and the
    candidate mask, with the full-size pixel steps done by ``ops`` (:mod:`calcimg.core.backends`) and the rest here.

    Returns
    -------
    tuple
        ``(background, response, noise, scale, candidates_mask)``, all on the host.
    """
    smooth_px = params.smoothing_mm * px_per_mm
    window_px = _noise_window_px(params, px_per_mm)
    bin_px = int(params.noise_bin_min_area_mm2 * px_per_mm**2)
    image_d = ops.to_device(image)
    fov_d = ops.to_device(fov_mask)
    smoothed_d = ops.gaussian(image_d, smooth_px)
    smoothed = ops.to_host(smoothed_d)
    background = _background(
        smoothed,
        params.background_line_mm * px_per_mm,
        params.n_orientations,
        params.background_radius_mm * px_per_mm,
        smooth_px,
    )
    background_d = ops.to_device(background)
    # What rises above the background; full-size arrays are dropped as soon as they are used up, so that peak
    # memory is a few copies of the film.
    response_d = ops.subtract(smoothed_d, background_d)
    del smoothed_d
    response = ops.to_host(response_d)
    noise = _noise_model(response, background, fov_mask, params, bin_px)
    masses = _mass_regions(smoothed, fov_mask, px_per_mm, params, noise)  # reduced grid, or None
    del smoothed
    scale_d = ops.local_scale(response_d, background_d, noise, window_px)
    seeds_d = ops.above(response_d, scale_d, params.seed_k, fov_d, consume=False)
    del response_d

    # The extent is taken on a lightly smoothed image: strong smoothing would spread every lesion by its blur. That
    # raw response is made again for the trim rather than held while the regions are labelled.
    raw_response = partial(_raw_response, ops, image_d, background_d, params.extent_smoothing_mm * px_per_mm)
    raw_response_d = raw_response()
    raw_noise = _noise_model(ops.to_host(raw_response_d), background, fov_mask, params, bin_px)
    extent_d = ops.exceeds_local_scale(raw_response_d, background_d, raw_noise, window_px, params.grow_k, fov_d)
    del raw_response_d, fov_d, image_d, background_d
    candidates_mask = ops.to_host(ops.hysteresis_trimmed(extent_d, seeds_d, raw_response, params.edge_fraction))
    del extent_d, seeds_d, raw_response
    if masses is not None:
        # The film's background finds a deposit wider than its line only at the rim; the mass channel finds it whole.
        candidates_mask |= grid.grow_mask(masses, image.shape) & fov_mask
    return background, response, noise, ops.to_host(scale_d), candidates_mask


def _raw_response(
    ops: backends.OpenCVOps | backends.ArrayModuleOps, image: Any, background: Any, sigma_px: float
) -> Any:
    """What rises above the background on the image smoothed by ``sigma_px`` (the extent's response)."""
    return ops.subtract(ops.gaussian(image, sigma_px), background)


def _noise_window_px(params: Params, px_per_mm: float) -> int:
    """Side of the local noise scale's window in pixels (``noise_window_mm``, at least 3)."""
    return max(3, int(round(params.noise_window_mm * px_per_mm)))


def _noise_model(
    response: np.ndarray, background: np.ndarray, fov_mask: np.ndarray, params: Params, min_bin_pixels: int
) -> threshold.NoiseModel:
    """The per-level noise model of a response (:func:`calcimg.core.threshold.estimate_noise`)."""
    quantile = params.noise_quantile
    return threshold.estimate_noise(response, background, fov_mask, quantile, min_bin_pixels=min_bin_pixels)


def _marker_zones(
    image: np.ndarray, levels: dict[str, float], noise: threshold.NoiseModel, params: Params, px_per_mm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Where lead markers lie: their cores (within ``marker_core_mm``) and zones (within ``marker_margin_mm``);
    none is looked for on an image without tissue contrast (a test pattern)."""
    if not _has_tissue_contrast(levels, noise):
        nothing = np.zeros(image.shape, bool)
        return nothing, nothing
    regions = fov_module.marker_regions(
        image, _marker_level(levels, params), min_area_px=max(1, int(params.marker_min_area_mm2 * px_per_mm**2))
    )
    return (
        fov_module.grow_square(regions, int(round(params.marker_core_mm * px_per_mm))),
        fov_module.grow_square(regions, int(round(params.marker_margin_mm * px_per_mm))),
    )


def _marker_level(levels: dict[str, float], params: Params) -> float:
    """Brighter than dense bone by ``marker_factor`` of the tissue range, or a saturated plateau."""
    return min(levels["bright"] + params.marker_factor * levels["range"], levels["saturation"])


#: Rectangles of the staircase disk of the background's disk opening: an inscribed approximation of the disk,
#: whose cost does not grow with the radius.
_BACKGROUND_RECTANGLES = 6


def _background(
    smoothed: np.ndarray, line_px: float, n_orientations: int, radius_px: float, smooth_px: float
) -> np.ndarray:
    """Background of the smoothed image: the lower of the maximum of its grey openings by lines of ``line_px``
    and its grey opening by a disk of ``radius_px`` (a staircase of :data:`_BACKGROUND_RECTANGLES` rectangles).

    A deposit shorter than the line in every direction is not in the first (however wide it is, up to the line),
    a band narrower than the disk is not in the second (however long it is), so either stands out; bone and soft
    tissue, long and wide, are in both. The work is done on a copy reduced to about one pixel per smoothing sigma
    (the smoothed image holds no finer detail), so that fine-pixel films cost about what coarser ones do. The
    reduced grid is centred on the image (:mod:`calcimg.core.grid`), and both openings are exactly equivariant to
    flips and quarter turns, so the background of a flipped film is the flipped background. The result never
    exceeds the smoothed image."""
    factor = max(1, int(smooth_px))
    small = grid.shrink(smoothed, factor)
    opened = morphology.line_opening_max(small, line_px / factor, n_orientations)
    disk = morphology.grey_opening_disk(small, radius_px / factor, max_rectangles=_BACKGROUND_RECTANGLES)
    np.minimum(opened, disk, out=opened)
    del disk
    background = grid.grow(opened, smoothed.shape)
    return np.minimum(background, smoothed, out=background)


def _mass_regions(
    smoothed: np.ndarray, fov_mask: np.ndarray, px_per_mm: float, params: Params, noise: threshold.NoiseModel
) -> np.ndarray | None:
    """Regions of deposits too wide for the line background (masses), on a grid of :data:`_MASS_CELL_MM` (the
    film's own grid where it is coarser).

    A deposit wider than ``background_line_mm`` holds the line in every direction, so only its rim rises above the
    background. Here the smoothed film, reduced, is opened by lines of ``mass_line_mm`` (a disk would take up
    every bone narrower than it). Its response is thresholded against the film's noise model, level by level
    (seeds at :data:`_MASS_SEED_K`, extent at :data:`_MASS_GROW_K` times the noise scale of their background
    level), not against a local scale: a mass is wider than the noise window, so a local scale inside it would be
    the mass itself. Each region is trimmed to ``edge_fraction`` of its peak, and regions under
    ``mass_min_area_mm2`` are dropped, since the film's own background finds them. Bones shorter than the line
    (bone ends, short bones) rise here too: the candidate model decides.

    Returns
    -------
    numpy.ndarray or None
        bool regions on the reduced grid (:func:`calcimg.core.grid.grow_mask` brings them to the film's grid);
        None when ``mass_line_mm`` is 0.
    """
    if params.mass_line_mm <= 0:
        return None
    factor = _mass_cell_factor(px_per_mm)
    small = grid.shrink(smoothed, factor)
    opened = morphology.line_opening_max(small, params.mass_line_mm * px_per_mm / factor, params.n_orientations)
    background = np.minimum(opened, small, out=opened)
    response = cv2.subtract(small, background)
    small_fov = grid.shrink_mask(fov_mask, factor)
    seeds = (response > threshold.threshold_image(noise, background, _MASS_SEED_K)) & small_fov
    extent = (response > threshold.threshold_image(noise, background, _MASS_GROW_K)) & small_fov
    regions = measure.trim_to_peak_fraction(morphology.hysteresis(extent, seeds), response, params.edge_fraction)
    min_cells = math.ceil(params.mass_min_area_mm2 * (px_per_mm / factor) ** 2)
    return morphology.large_components(regions.view(np.uint8), min_cells).view(bool)


#: Cell size of the mass channel's reduced grid, and its seed and extent thresholds in noise scales of the
#: background level (:func:`_mass_regions`): on tuning cohort 1000, 0.2 to 1.6 % of the field away from deposits
#: rose above 6 such scales, and the median of five of its eight masses did.
_MASS_CELL_MM = 0.5
_MASS_SEED_K = 6.0
_MASS_GROW_K = 2.0


def _mass_cell_factor(px_per_mm: float) -> float:
    """How many of the film's pixels make one cell of the mass channel's grid along a side: :data:`_MASS_CELL_MM`
    exactly (not rounded down to whole pixels, which left 0.29 mm films at full size and made cells of 0.4 to
    0.5 mm on clinical ones), and at least 1."""
    return max(1.0, _MASS_CELL_MM * px_per_mm)


def _with_spacing(radiograph: Radiograph, spacing_mm: tuple[float, float]) -> Radiograph:
    from dataclasses import replace

    return replace(radiograph, spacing_mm=spacing_mm, spacing_source="user")


def _shrink(mask: np.ndarray, margin_px: float) -> np.ndarray:
    import cv2

    margin = int(round(margin_px))
    if margin < 1:
        return mask
    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    return cv2.erode(mask.view(np.uint8), kernel, borderValue=0).astype(bool)


def _edge_zone(mask: np.ndarray, half_width_px: float) -> np.ndarray:
    """Pixels within ``half_width_px`` (chessboard distance) of the outline of ``mask``, on either side."""
    radius = max(1, int(round(half_width_px)))
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * radius + 1, 2 * radius + 1))
    return cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_GRADIENT, kernel) > 0


#: Markers and the body's outline are looked for only when the tissue range is at least this many noise scales (the
#: median of the noise model's levels): a film without tissue contrast (a test pattern, a drawn phantom) has
#: neither air nor bone levels to tell them by. On the phantoms of tuning cohort 1000 the range is 15 to 20 such
#: scales where it is least; on a flat drawn film with noise alone, about 1.
_MIN_TISSUE_CONTRAST = 5.0


def _has_tissue_contrast(levels: dict[str, float], noise: threshold.NoiseModel) -> bool:
    """Whether the film's tissue range stands out of its noise (:data:`_MIN_TISSUE_CONTRAST`)."""
    return levels["range"] >= _MIN_TISSUE_CONTRAST * float(np.median(noise.scale))


def _saturation_level(image: np.ndarray, min_pixels: int = 50) -> float:
    """The image's maximum when at least ``min_pixels`` pixels sit on it (a saturated plateau), else infinity."""
    top = int(image.max())
    return float(top) if int(np.count_nonzero(image == top)) >= min_pixels else float("inf")


def _tissue_levels(background: np.ndarray, fov_mask: np.ndarray) -> dict[str, float]:
    """Background levels of the field of view: air (1st percentile), dark (10th: air or thin soft tissue),
    bright (99.5th: dense bone), and the tissue range bright - dark."""
    sample = grid.centred_masked_sample(background, fov_mask, 2)
    if sample.size == 0:
        sample = background.ravel()
    air, dark, bright = np.percentile(sample, [1.0, 10.0, 99.5])
    return {"air": float(air), "dark": float(dark), "bright": float(bright), "range": float(max(bright - dark, 1.0))}


def _measure_candidates(
    image: np.ndarray,
    response: np.ndarray,
    background: np.ndarray,
    noise_scale: np.ndarray,
    labels: np.ndarray,
    pixels: measure.ObjectPixels,
) -> pd.DataFrame:
    """Measurements of objects 1..n of ``labels`` (``pixels``): shape, intensity, excess over the background, and
    contrast over ``noise_scale`` (each object's mean local noise scale, one value per object)."""
    n = pixels.n
    moments = measure.object_moments(labels, n, pixels)
    table = pd.DataFrame(moments)
    table.insert(0, "candidate_id", np.arange(1, n + 1, dtype=np.int64))
    table["width_px"] = measure.object_widths(labels, n, moments)
    table["mean_intensity"] = pixels.means(image)
    table["max_intensity"] = pixels.maxima(image)
    table["mean_excess"] = pixels.means(response)
    table["background_level"] = pixels.means(background)
    table["noise_scale"] = noise_scale
    table["contrast_k"] = table["mean_excess"] / np.maximum(table["noise_scale"], 1e-6)
    table["max_excess"] = pixels.maxima(response)
    # Mean excess of each candidate's rim (its pixels next to the outside): deposits are brightest inside,
    # cortical rings and texture as bright at their rim.
    on_rim = pixels.on_rim(labels)
    rim_sums = np.bincount(pixels.label, np.where(on_rim, pixels.values(response), 0.0), n + 1)[1:]
    rim_counts = np.bincount(pixels.label, on_rim, n + 1)[1:]
    table["rim_excess"] = rim_sums / np.maximum(rim_counts, 1)
    return table


def _decide(
    table: pd.DataFrame,
    params: Params,
    px_per_mm: float,
    radiograph: Radiograph,
    margin_fov: np.ndarray,
    include: np.ndarray | None,
    exclude: np.ndarray | None,
    levels: dict[str, float],
    air_level: float,
    flat_pixel_share: float,
) -> np.ndarray:
    """The reason of each candidate; below ``air_level`` (background level) a candidate is outside the body;
    ``flat_pixel_share`` is the field's (:class:`calcimg.core.fov.FieldOfView`), for burned-in graphics."""
    rows = np.clip(np.round(table["centroid_row"].to_numpy()).astype(int), 0, radiograph.shape[0] - 1)
    cols = np.clip(np.round(table["centroid_col"].to_numpy()).astype(int), 0, radiograph.shape[1] - 1)
    excluded = np.zeros(len(table), bool)
    if include is not None:
        excluded |= ~include[rows, cols]
    if exclude is not None:
        excluded |= exclude[rows, cols]
    area_unit = px_per_mm**2
    # A candidate cut by the image's edge cannot be measured whole (and is mostly a bone or band running off the
    # film): it counts as outside the field, as CellProfiler discards objects touching the border.
    height, width = radiograph.shape
    cut_by_edge = (
        (table["bbox_row0"].to_numpy() == 0)
        | (table["bbox_col0"].to_numpy() == 0)
        | (table["bbox_row1"].to_numpy() >= height)
        | (table["bbox_col1"].to_numpy() >= width)
    )
    return classify.decide(
        outside_field=~margin_fov[rows, cols] | cut_by_edge,
        outside_body=table["background_level"].to_numpy() < air_level,
        excluded=excluded,
        marker=_marker_rejected(table, params, flat_pixel_share),
        area=table["area_px"].to_numpy() / area_unit,
        min_area=params.min_area_mm2,
        max_area=params.max_area_mm2,
        width=table["width_px"].to_numpy() / px_per_mm,
        ridge_max_width=params.ridge_max_width_mm,
        ridge_elongation=params.ridge_elongation,
        on_outline=table["outline_fraction"].to_numpy() >= 0.5,
        contrast_k=table["contrast_k"].to_numpy(),
        min_contrast_k=params.min_contrast_k,
        relative_excess=table["mean_excess"].to_numpy() / levels["range"],
        min_relative_excess=params.min_relative_excess,
        score=table["score"].to_numpy(),
        min_score=params.min_score,
    )


def _marker_rejected(table: pd.DataFrame, params: Params, flat_pixel_share: float) -> np.ndarray:
    """Candidates lying mostly (30 %) within ``marker_core_mm`` of a marker, or within ``marker_margin_mm`` of one
    with a score under ``marker_zone_min_score`` (without the score, every one in the zone), and burned-in graphics:
    candidates at least ``marker_flat_fraction`` of whose pixels are flat (no noise), on a film that carries its
    noise (at most :data:`_NOISY_FILM_MAX_FLAT_SHARE` of its field flat, ``flat_pixel_share``)."""
    in_zone = table["marker_fraction"].to_numpy() >= 0.3
    in_core = table["marker_core_fraction"].to_numpy() >= 0.3
    clear = table["score"].to_numpy() >= params.marker_zone_min_score  # False where there is no score (NaN)
    noisy_film = flat_pixel_share <= _NOISY_FILM_MAX_FLAT_SHARE
    burned_in = noisy_film & (table["flat_fraction"].to_numpy() >= params.marker_flat_fraction)
    return in_core | (in_zone & ~clear) | burned_in


#: Largest share of a field's pixels that may be flat (equal to all 8 neighbours) for flat candidates to be taken
#: for burned-in graphics. Real films hold at most 0.5 % (the cat thorax, with its burned-in letter), 16-bit
#: phantoms 0.1 %; 8-bit JPEG exports of phantoms 2 to 24 % at quality 75 and 8 to 32 % at quality 50, where
#: compression flattens deposits too (at quality 30, half the pixels of some deposits are flat).
_NOISY_FILM_MAX_FLAT_SHARE = 0.01


def _finish_lesion_table(
    table: pd.DataFrame,
    labels: np.ndarray,
    n: int,
    params: Params,
    levels: dict[str, float],
    radiograph: Radiograph,
) -> pd.DataFrame:
    table = table.rename(columns={"candidate_id": "lesion_id"})
    spacing = radiograph.spacing_mm
    if spacing is None:
        row_mm = col_mm = float("nan")
    else:
        row_mm, col_mm = float(spacing[0]), float(spacing[1])
    mean_mm = (row_mm + col_mm) / 2
    table["area_mm2"] = table["area_px"] * row_mm * col_mm
    table["centroid_row_mm"] = table["centroid_row"] * row_mm
    table["centroid_col_mm"] = table["centroid_col"] * col_mm
    for name in ("major_axis", "minor_axis", "width"):
        table[f"{name}_mm"] = table[f"{name}_px"] * mean_mm
    diameter_px = np.sqrt(4 * table["area_px"].to_numpy() / np.pi)
    table["equivalent_diameter_px"] = diameter_px
    table["equivalent_diameter_mm"] = diameter_px * mean_mm
    table["solidity"] = measure.object_solidity(labels, n, {k: table[k].to_numpy() for k in _BBOX})
    table["relative_excess"] = table["mean_excess"] / levels["range"]
    area = table["area_mm2"] if spacing is not None else table["area_px"]
    table["burden"] = area * table["relative_excess"]
    diameter_for_class = diameter_px * (mean_mm if spacing is not None else NOMINAL_SPACING_MM)
    table["size_class"] = classify.size_class(np.asarray(diameter_for_class), params.size_classes_mm)
    return table


_BBOX = ("bbox_row0", "bbox_col0", "bbox_row1", "bbox_col1")


def lesion_totals(lesions: pd.DataFrame, calibrated: bool) -> dict[str, Any]:
    """The per-image totals of a lesion table: ``count``, ``total_area_px``, ``total_area_mm2`` (None when
    uncalibrated) and ``total_burden``; also what a reader's re-measure updates."""
    return {
        "count": int(len(lesions)),
        "total_area_px": int(lesions["area_px"].sum()) if len(lesions) else 0,
        "total_area_mm2": float(lesions["area_mm2"].sum()) if calibrated else None,
        "total_burden": float(lesions["burden"].sum()) if len(lesions) else 0.0,
    }


def _summary(
    radiograph: Radiograph,
    params: Params,
    lesions: pd.DataFrame,
    rejected: pd.DataFrame,
    fov: FieldOfView,
    noise: threshold.NoiseModel,
    levels: dict[str, float],
    conversion: dict[str, Any],
    line_px: float,
    radius_px: float,
    backend: str,
) -> dict[str, Any]:
    calibrated = radiograph.spacing_mm is not None
    pixel_area = radiograph.pixel_area_mm2
    px_per_mm = _pixels_per_mm(radiograph)
    fov_px = int(fov.mask.sum())
    reasons = rejected["reason"].value_counts().to_dict() if len(rejected) else {}
    return {
        "calcimg_version": __version__,
        "input": radiograph.identity(),
        "units": "mm" if calibrated else "px",
        "spacing_mm": None if not calibrated else [float(s) for s in radiograph.spacing_mm],
        "spacing_source": radiograph.spacing_source,
        **lesion_totals(lesions, calibrated),
        "fov_area_px": fov_px,
        "fov_area_mm2": fov_px * pixel_area if calibrated else None,
        "rejected": {str(k): int(v) for k, v in reasons.items()},
        "field_of_view": fov.to_dict(),
        "noise": noise.to_dict(),
        "thresholds": {
            "background_line_px": float(line_px),
            "background_radius_px": float(radius_px),
            "seed_k": params.seed_k,
            "grow_k": params.grow_k,
            "tissue_levels": {k: (float(v) if np.isfinite(v) else None) for k, v in levels.items()},
            "marker_level": _marker_level(levels, params),
            "mass_channel": (
                {
                    "line_px": float(line_px * params.mass_line_mm / params.background_line_mm),
                    "cell_mm": float(_mass_cell_factor(px_per_mm) / px_per_mm),  # the grid's, as used
                    "seed_k": _MASS_SEED_K,
                    "grow_k": _MASS_GROW_K,
                }
                if params.mass_line_mm > 0
                else None
            ),
        },
        "working_image": conversion,
        "backend": backend,
        "params": params.to_dict(),
        "warnings": list(radiograph.warnings),
    }


@dataclass
class PairResult:
    """What :func:`compare_pair` found on a baseline/follow-up pair.

    Attributes
    ----------
    pre, post : SegmentResult
        Each visit segmented and measured on its own pixels.
    transform : calcimg.core.registration.Registration
        Follow-up to baseline alignment, with its quality and whether it is trusted.
    matches : pandas.DataFrame
        One row per lesion per visit: its match group, the lesions it is matched with and its change class
        (stable, grown, shrunk, resolved, new) with the group's areas and change.
    post_labels_in_pre : numpy.ndarray
        The follow-up's label map carried into the baseline frame (nearest neighbour; for display and matching,
        never for measuring).
    summary : dict
        JSON-safe pair record (see :func:`compare_pair`).
    """

    pre: SegmentResult
    post: SegmentResult
    transform: registration.Registration
    matches: pd.DataFrame
    post_labels_in_pre: np.ndarray
    summary: dict[str, Any] = field(default_factory=dict)


def compare_pair(
    pre: str | PathLike[str] | Radiograph,
    post: str | PathLike[str] | Radiograph,
    params: Params | None = None,
    spacing: float | tuple[float, float] | None = None,
    include: dict[str, np.ndarray | None] | None = None,
    exclude: dict[str, np.ndarray | None] | None = None,
    transform: registration.Registration | None = None,
    backend: str = "cpu",
) -> PairResult:
    """Compare a baseline film with a follow-up film of the same site.

    Parameters
    ----------
    pre, post : str, PathLike or Radiograph
        Baseline and follow-up (files or Radiographs).
    params : Params, optional
        Defaults to ``Params()``; the comparison uses ``registration_model``, ``match_distance_mm``,
        ``cluster_distance_mm``, ``change_band``, ``progression_pct``, ``response_pct``,
        ``correct_magnification``, and to read each film with the other's lesions in view
        ``paired_support_min_score``, ``paired_piece_fraction``, ``counterpart_min_area_mm2`` and
        ``unmatched_min_score``.
    spacing : float or (float, float), optional
        Pixel spacing in mm overriding both files'.
    include, exclude : dict, optional
        ``{"pre": mask, "post": mask}`` region masks, each in its own film's frame (see :func:`segment_image`).
    transform : Registration, optional
        A known follow-up-to-baseline alignment to reuse instead of registering again (a reader's re-run).
    backend : {"cpu", "cupy", "numpy"}
        Where detection's full-size pixel steps run (see :func:`segment_image`).

    Returns
    -------
    PairResult
        Its ``summary`` holds pre_count, post_count, pre_area_mm2, post_area_mm2, area_change_mm2,
        area_change_pct, count_change, burden figures, new, resolved, grown, shrunk, stable, category, response,
        registration, needs_review (with ``review_reasons``), params, version and inputs.
    """
    params = params or Params()
    include, exclude = include or {}, exclude or {}
    # Files are read here first: their readers' warnings are caught, which is not safe on two threads at once.
    pre, post = _read_source(pre, spacing), _read_source(post, spacing)
    if cv2.getNumThreads() > 1:
        # The two films are independent until registration: the follow-up's candidates are detected on a second
        # thread (OpenCV and numpy release the interpreter lock for the heavy passes). A batch worker, which gets
        # its parallelism from running several items and sets OpenCV to one thread, does them one after the other.
        with ThreadPoolExecutor(max_workers=1) as pool:
            post_job = pool.submit(
                detect_candidates, post, params, None, include.get("post"), exclude.get("post"), backend
            )
            pre_stage = detect_candidates(pre, params, None, include.get("pre"), exclude.get("pre"), backend)
            post_stage = post_job.result()
    else:
        pre_stage = detect_candidates(pre, params, None, include.get("pre"), exclude.get("pre"), backend)
        post_stage = detect_candidates(post, params, None, include.get("post"), exclude.get("post"), backend)
    if transform is None:
        transform = registration.register(
            pre_stage.image,
            post_stage.image,
            _mean_spacing(pre_stage.radiograph),
            _mean_spacing(post_stage.radiograph),
            fixed_mask=pre_stage.fov.mask,
            moving_mask=post_stage.fov.mask,
            model=params.registration_model,
        )
    support: dict[str, tuple[np.ndarray | None, list[paired.Piece]]] = {"pre": (None, []), "post": (None, [])}
    if transform.ok and (params.paired_support_min_score < params.min_score or params.paired_piece_fraction > 0):
        support = _paired_support(pre_stage, post_stage, transform, params)
    stages = {"pre": pre_stage, "post": post_stage}
    supported = {name: support[name][0] for name in stages}
    pieces = {name: list(support[name][1]) for name in stages}
    results = _finish_films(stages, {name: (supported[name], pieces[name], None) for name in stages})
    if transform.ok and params.counterpart_min_area_mm2 > 0:
        found = _faint_counterparts(pre_stage, post_stage, results["pre"], results["post"], transform, params)
        for name, counterparts in found.items():
            pieces[name] += counterparts
        again = {name: (supported[name], pieces[name], None) for name in stages if found[name]}
        results.update(_finish_films(stages, again))
    post_field_in_pre = registration.warp_labels(post_stage.fov.mask.view(np.uint8), transform, pre.shape) > 0
    compared = match_and_summarise(results["pre"], results["post"], transform, params, None, post_field_in_pre)
    if transform.ok and params.unmatched_min_score > params.min_score:
        unconfirmed = {name: rejected for name, rejected in _unconfirmed(compared, params).items() if rejected.any()}
        if unconfirmed:
            again = {name: (supported[name], pieces[name], rejected) for name, rejected in unconfirmed.items()}
            results.update(_finish_films(stages, again))
            # The follow-up's carried labels are reused when only the baseline changed.
            post_in_pre = None if "post" in unconfirmed else compared.post_labels_in_pre
            compared = match_and_summarise(
                results["pre"], results["post"], transform, params, post_in_pre, post_field_in_pre
            )
    return compared


def _finish_films(
    stages: dict[str, CandidateStage],
    todo: dict[str, tuple[np.ndarray | None, list[paired.Piece], np.ndarray | None]],
) -> dict[str, SegmentResult]:
    """:func:`finish_segmentation` of each film named in ``todo`` (its supported candidates, pieces and unconfirmed
    candidates); two films on two threads when OpenCV may use several (as the detection in :func:`compare_pair`),
    one after the other otherwise. The results do not depend on it."""
    if len(todo) == 2 and cv2.getNumThreads() > 1:
        with ThreadPoolExecutor(max_workers=1) as pool:
            post_job = pool.submit(finish_segmentation, stages["post"], *todo["post"])
            return {"pre": finish_segmentation(stages["pre"], *todo["pre"]), "post": post_job.result()}
    return {name: finish_segmentation(stages[name], *args) for name, args in todo.items()}


def _unconfirmed(compared: PairResult, params: Params) -> dict[str, np.ndarray]:
    """The candidates of each visit to reject as unconfirmed: those of its lesions called resolved (baseline) or
    new (follow-up) whose best score is under ``unmatched_min_score``
    (:func:`calcimg.core.paired.unconfirmed_candidates`)."""
    matches = compared.matches
    unconfirmed = {}
    for name, result, change in (("pre", compared.pre, "resolved"), ("post", compared.post, "new")):
        table = result.candidate_table
        unmatched = matches.loc[(matches["visit"] == name) & (matches["change_class"] == change), "lesion_id"]
        own = (table["reason"].to_numpy() == classify.ACCEPTED) & (table["support"].to_numpy() == "own")
        unconfirmed[name] = paired.unconfirmed_candidates(
            unmatched.to_numpy(), result.labels, result.candidates, table["score"].to_numpy(float), own,
            params.unmatched_min_score,
        )  # fmt: skip
    return unconfirmed


#: Width of the ring around a lesion of the other visit on which a faint counterpart's local background is fitted.
_COUNTERPART_RING_MM = 2.0


def _faint_counterparts(
    pre_stage: CandidateStage,
    post_stage: CandidateStage,
    pre: SegmentResult,
    post: SegmentResult,
    transform: registration.Registration,
    params: Params,
) -> dict[str, list[paired.Piece]]:
    """Faint counterparts on each visit of the other visit's large lesions that match nothing there
    (:func:`calcimg.core.paired.faint_counterparts`: the detection's smoothing, a ring of
    :data:`_COUNTERPART_RING_MM` beyond ``match_distance_mm``)."""
    other = {
        "pre": registration.warp_labels(post.labels, transform, pre.radiograph.shape),
        "post": registration.warp_labels(pre.labels, transform, post.radiograph.shape, inverse=True),
    }
    found = {}
    for name, stage, result in (("pre", pre_stage, pre), ("post", post_stage, post)):
        px_per_mm = _pixels_per_mm(stage.radiograph)
        found[name] = paired.faint_counterparts(
            stage.image,
            other[name],
            result.labels > 0,
            stage.candidates,
            _surround_ok(stage),
            stage.bone,
            reach_px=params.match_distance_mm * px_per_mm,
            ring_px=_COUNTERPART_RING_MM * px_per_mm,
            smoothing_px=params.smoothing_mm * px_per_mm,
            min_lesion_px=int(np.ceil(params.counterpart_min_area_mm2 * px_per_mm**2)),
            min_area_px=int(np.ceil(params.min_area_mm2 * px_per_mm**2)),
        )
    return found


#: Rejection reasons a piece of a candidate may be accepted from on the other visit's evidence: not the field, the
#: body or the user's regions (where nothing is counted), nor too small (a piece would be smaller still).
PIECE_REASONS = ("marker", "too_large", "ridge", "low_contrast", "faint", "low_score")


def _paired_support(
    pre: CandidateStage, post: CandidateStage, transform: registration.Registration, params: Params
) -> dict[str, tuple[np.ndarray | None, list[paired.Piece]]]:
    """What each visit accepts on the other visit's evidence: whole candidates, and pieces of candidates.

    A candidate rejected only for its score (at least ``paired_support_min_score``) is accepted when at least
    half of it lies within ``match_distance_mm`` of a lesion the other visit accepted on its own: the same
    deposit, less conspicuous on one film, is not a new or a resolved lesion. Where such a lesion lies inside a
    candidate rejected as a whole for one of :data:`PIECE_REASONS` (and not supported whole), the piece of the
    candidate under it is accepted (``paired_piece_fraction``; :func:`calcimg.core.paired.pieces_under_lesions`).
    """

    def accepted_map(stage: CandidateStage) -> np.ndarray:
        accepted = np.concatenate([[False], stage.table["reason"].to_numpy() == classify.ACCEPTED])
        return accepted[stage.candidates].astype(np.int32)

    other = {
        "pre": registration.warp_labels(accepted_map(post), transform, pre.radiograph.shape) > 0,
        "post": registration.warp_labels(accepted_map(pre), transform, post.radiograph.shape, inverse=True) > 0,
    }
    support = {}
    for name, stage in (("pre", pre), ("post", post)):
        supported = (
            _supported_candidates(stage, other[name], params)
            if params.paired_support_min_score < params.min_score
            else np.zeros(len(stage.table), bool)
        )
        support[name] = (supported, _supported_pieces(stage, other[name], supported, params))
    return support


def _supported_pieces(
    stage: CandidateStage, other_lesions: np.ndarray, supported: np.ndarray, params: Params
) -> list[paired.Piece]:
    """Pieces of this visit's candidates rejected for one of :data:`PIECE_REASONS` (and not ``supported`` whole)
    under the other visit's lesions (``other_lesions``, in this visit's frame); none when ``paired_piece_fraction``
    is 0."""
    if params.paired_piece_fraction <= 0:
        return []
    px_per_mm = _pixels_per_mm(stage.radiograph)
    eligible = np.isin(stage.table["reason"].to_numpy(), PIECE_REASONS) & ~supported
    return paired.pieces_under_lesions(
        stage.candidates,
        stage.response,
        np.concatenate([[False], eligible]),
        other_lesions,
        reach_px=params.match_distance_mm * px_per_mm,
        fraction=params.paired_piece_fraction,
        min_area_px=int(np.ceil(params.min_area_mm2 * px_per_mm**2)),
        pixels=stage.pixels,
    )


def _supported_candidates(stage: CandidateStage, other_lesions: np.ndarray, params: Params) -> np.ndarray:
    table = stage.table
    eligible = (table["reason"].to_numpy() == "low_score") & (
        table["score"].to_numpy() >= params.paired_support_min_score
    )
    if not eligible.any() or not other_lesions.any():
        return np.zeros(len(table), bool)
    radius = params.match_distance_mm * _pixels_per_mm(stage.radiograph)
    # Each eligible candidate is looked at in its bounding box padded beyond the radius, where every lesion pixel
    # within the radius of it lies: the exact distances of a whole-film transform, at the cost of the windows.
    pad = int(np.ceil(radius)) + 1
    supported = np.zeros(len(table), bool)
    for index in np.flatnonzero(eligible):
        row = table.iloc[index]
        rows, cols = (int(row["bbox_row0"]), int(row["bbox_row1"])), (int(row["bbox_col0"]), int(row["bbox_col1"]))
        window = measure.padded_window(rows, cols, pad, other_lesions.shape)
        near = other_lesions[window]
        if not near.any():
            continue
        distance = cv2.distanceTransform(np.logical_not(near).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        own = stage.candidates[window] == table["candidate_id"].iat[index]
        supported[index] = np.mean(distance[own] <= radius) >= 0.5
    return supported


def match_and_summarise(
    pre: SegmentResult,
    post: SegmentResult,
    transform: registration.Registration,
    params: Params,
    post_in_pre: np.ndarray | None = None,
    post_field_in_pre: np.ndarray | None = None,
) -> PairResult:
    """Match the lesions of two segmented visits in the baseline frame and summarise the pair.

    The step of :func:`compare_pair` after registration; also used after a reader edited the label maps.
    ``post_in_pre`` and ``post_field_in_pre`` are the follow-up's labels and field of view carried into the
    baseline frame, when the caller has them already (a second matching of the same follow-up).
    """
    shape = pre.radiograph.shape
    if post_in_pre is None:
        post_in_pre = registration.warp_labels(post.labels, transform, shape)
    if post_field_in_pre is None:
        post_field_in_pre = registration.warp_labels(post.fov.mask.view(np.uint8), transform, shape) > 0
    area_scale = transform.scale**2 if params.correct_magnification and transform.ok else 1.0
    matches = matching.match_lesions(
        _with_areas(pre),
        _with_areas(post),
        pre.labels,
        post_in_pre,
        distance_mm=params.match_distance_mm,
        pre_spacing_mm=_mean_spacing(pre.radiograph),
        change_band=params.change_band,
        post_area_scale=area_scale,
        registration=transform,
        pre_field=pre.fov.mask,
        post_field_in_pre=post_field_in_pre,
        cluster_distance_mm=params.cluster_distance_mm,
    )
    if not transform.ok:
        matches = matching.without_matching(matches)
    summary = _pair_summary(pre, post, transform, matches, params, area_scale)
    return PairResult(pre, post, transform, matches, post_in_pre, summary)


def _mean_spacing(radiograph: Radiograph) -> float | None:
    spacing = radiograph.spacing_mm
    return None if spacing is None else (float(spacing[0]) + float(spacing[1])) / 2


def _with_areas(result: SegmentResult) -> pd.DataFrame:
    """The lesion table with the area the comparison uses in ``area_mm2`` (pixels when uncalibrated)."""
    table = result.lesions.copy()
    if not result.radiograph.calibrated:
        table["area_mm2"] = table["area_px"].astype(float)
    return table


def _support_counts(pre: SegmentResult, post: SegmentResult, support: str) -> dict[str, int]:
    """Candidates of each visit whose ``support`` is ``support``."""
    return {
        name: int((result.candidate_table.get("support", pd.Series(dtype=str)) == support).sum())
        for name, result in (("pre", pre), ("post", post))
    }


def _summary_counts(pre: SegmentResult, post: SegmentResult, key: str) -> dict[str, int]:
    """Each visit's count ``key`` from its own summary (0 where it has none)."""
    return {name: int(result.summary.get(key, 0)) for name, result in (("pre", pre), ("post", post))}


def _pair_summary(
    pre: SegmentResult,
    post: SegmentResult,
    transform: registration.Registration,
    matches: pd.DataFrame,
    params: Params,
    area_scale: float,
) -> dict[str, Any]:
    calibrated = pre.radiograph.calibrated and post.radiograph.calibrated
    units = "mm" if calibrated else "px"
    pre_area = float(_with_areas(pre)["area_mm2"].sum())
    post_measured = float(_with_areas(post)["area_mm2"].sum())
    post_area = post_measured / area_scale
    counts: dict[str, int | None] = dict(matching.pair_counts(matches))
    pct, category, response = matching.categorise(
        pre_area, post_area, counts["new"], params.progression_pct, params.response_pct
    )
    if not transform.ok:
        # Nothing was matched: which lesions are new, resolved or changed is unknown, and so is a partial
        # response (it needs "no new lesion"). Totals, the category and a complete resolution stand.
        counts = dict.fromkeys(counts, None)
        if response == "response":
            response = "not_assessed"
    pre_burden = float(pre.lesions["burden"].sum()) if len(pre.lesions) else 0.0
    post_burden = float(post.lesions["burden"].sum()) / area_scale if len(post.lesions) else 0.0
    reasons = []
    if not transform.ok:
        reasons += [f"registration: {reason}" for reason in transform.reasons] or ["registration doubtful"]
    for name, result in (("baseline", pre), ("follow-up", post)):
        if not result.radiograph.calibrated:
            reasons.append(f"{name} is uncalibrated (no pixel spacing): areas in pixels")
    if pct is None and post_area > 0:
        reasons.append("no lesion at baseline: % change undefined")
    return {
        "calcimg_version": __version__,
        "units": units,
        "pre_count": int(len(pre.lesions)),
        "post_count": int(len(post.lesions)),
        "count_change": int(len(post.lesions) - len(pre.lesions)),
        f"pre_area_{units}2": pre_area,
        f"post_area_{units}2": post_area,
        f"post_area_measured_{units}2": post_measured,
        f"area_change_{units}2": post_area - pre_area,
        "area_change_pct": pct,
        "pre_burden": pre_burden,
        "post_burden": post_burden,
        "burden_change_pct": 100.0 * (post_burden - pre_burden) / pre_burden if pre_burden > 0 else None,
        "new": counts["new"],
        "resolved": counts["resolved"],
        "grown": counts["grown"],
        "shrunk": counts["shrunk"],
        "stable": counts["stable"],
        "outside_field": counts["outside_field"],
        "category": category,
        "response": response,
        "magnification_correction": area_scale,
        "supported_by_other_visit": _support_counts(pre, post, "other_visit"),
        "pieces_from_other_visit": _support_counts(pre, post, "other_visit_piece"),
        "faint_counterparts": _summary_counts(pre, post, "faint_counterparts"),
        "unconfirmed": _summary_counts(pre, post, "unconfirmed"),
        "registration": transform.to_dict(),
        "needs_review": bool(reasons),
        "review_reasons": reasons,
        "params": params.to_dict(),
        "backend": pre.summary.get("backend", "cpu"),
        "version": __version__,
        "inputs": {"pre": pre.radiograph.identity(), "post": post.radiograph.identity()},
        "dates": {"pre": _study_date(pre.radiograph), "post": _study_date(post.radiograph)},
    }


def _study_date(radiograph: Radiograph) -> str | None:
    for key in ("study_date", "acquisition_date"):
        value = radiograph.metadata.get(key)
        if value:
            return str(value)
    return None
