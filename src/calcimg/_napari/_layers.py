"""Pure helpers that turn calcimg results into napari layer data: colours, transforms, features.

Nothing here imports napari: layer data are ``(data, kwargs, layer_type)`` tuples that napari's readers and
``viewer._add_layer_from_data`` accept, and colour maps are plain ``{label: RGBA}`` dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from calcimg.model import Radiograph, public_metadata
from calcimg.report.overlay import COLOURS_BGR
from calcimg.report.pair import CHANGE_COLOURS_BGR

LayerData = tuple[Any, dict[str, Any], str]

#: RGBA (0..1) of each change class, from the report's colours; ``outside_field`` grey; unmeasured (painted but not
#: yet re-measured) white.
CHANGE_COLOURS: dict[str, tuple[float, float, float, float]] = {
    **{name: (r / 255, g / 255, b / 255, 1.0) for name, (b, g, r) in CHANGE_COLOURS_BGR.items()},
    "outside_field": (0.6, 0.6, 0.6, 1.0),
    "unmeasured": (1.0, 1.0, 1.0, 1.0),
}
#: RGBA of accepted lesions and of each rejection reason (the overlay pictures' colours).
REASON_COLOURS: dict[str, tuple[float, float, float, float]] = {
    name: (r / 255, g / 255, b / 255, 1.0) for name, (b, g, r) in COLOURS_BGR.items()
}
TRANSPARENT = (0.0, 0.0, 0.0, 0.0)


def radiograph_kwargs(radiograph: Radiograph, name: str) -> dict[str, Any]:
    """Image-layer keyword arguments of a radiograph: scale in mm, contrast window, metadata without identifiers.

    Parameters
    ----------
    radiograph : Radiograph
    name : str
        Layer name.

    Returns
    -------
    dict
        ``name``, ``scale`` (the spacing in mm; 1 when uncalibrated), ``units`` (``"mm"`` or ``"pixel"``),
        ``contrast_limits`` (0.5 and 99.5 percentiles), ``colormap`` and ``metadata["calcimg"]`` (path,
        content hash, spacing and its source, bits stored, public header facts and the reader's warnings).
    """
    pixels = radiograph.pixels
    sample = pixels[:: max(1, pixels.shape[0] // 512), :: max(1, pixels.shape[1] // 512)]
    low, high = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    if high <= low:
        low, high = float(pixels.min()), float(max(pixels.max(), pixels.min() + 1))
    spacing = radiograph.spacing_mm
    return {
        "name": name,
        "scale": (1.0, 1.0) if spacing is None else (float(spacing[0]), float(spacing[1])),
        "units": "mm" if spacing is not None else "pixel",
        "contrast_limits": (low, high),
        "colormap": "gray",
        "metadata": {"calcimg": radiograph_metadata(radiograph)},
    }


def radiograph_metadata(radiograph: Radiograph) -> dict[str, Any]:
    """What a layer keeps of a radiograph to rebuild it: identity, calibration, public header facts, warnings."""
    return {
        "kind": "radiograph",
        "path": radiograph.path,
        "content_hash": radiograph.content_hash,
        "spacing_mm": None if radiograph.spacing_mm is None else [float(s) for s in radiograph.spacing_mm],
        "spacing_source": radiograph.spacing_source,
        "bits_stored": radiograph.bits_stored,
        "header": public_metadata(radiograph.metadata),
        "warnings": list(radiograph.warnings),
    }


def radiograph_from_layer(data: np.ndarray, metadata: Mapping[str, Any], scale: Any = None) -> Radiograph:
    """Rebuild a Radiograph from an image layer's data and metadata (as :func:`radiograph_kwargs` made them).

    A layer that calcimg did not read is taken as it is: its spacing from a non-unit ``scale`` (``"user"``), or
    uncalibrated, and a content hash of its pixels.

    Parameters
    ----------
    data : numpy.ndarray
        2-D pixels (bright = dense).
    metadata : mapping
        The layer's metadata.
    scale : sequence of float, optional
        The layer's scale.

    Returns
    -------
    Radiograph

    Raises
    ------
    ValueError
        When the data is not a 2-D grey image.
    """
    import hashlib

    pixels = np.asarray(data)
    if pixels.ndim != 2:
        raise ValueError(f"a radiograph layer must be 2-D and grey, this one has shape {pixels.shape}")
    info = dict(metadata.get("calcimg", {})) if metadata else {}
    content_hash = info.get("content_hash") or "sha256:" + hashlib.sha256(np.ascontiguousarray(pixels)).hexdigest()
    if info.get("kind") == "radiograph":
        spacing = info.get("spacing_mm")
        return Radiograph(
            pixels=pixels,
            spacing_mm=None if spacing is None else (float(spacing[0]), float(spacing[1])),
            spacing_source=info.get("spacing_source", "none") if spacing is not None else "none",
            path=info.get("path"),
            content_hash=content_hash,
            bits_stored=info.get("bits_stored"),
            metadata=dict(info.get("header", {})),
            warnings=list(info.get("warnings", [])),
        )
    spacing_mm = None
    if scale is not None:
        values = [float(s) for s in list(scale)[-2:]]
        if len(values) == 2 and all(v > 0 for v in values) and values != [1.0, 1.0]:
            spacing_mm = (values[0], values[1])
    return Radiograph(pixels, spacing_mm, "user" if spacing_mm else "none", None, content_hash)


def rc_affine(matrix: np.ndarray) -> np.ndarray:
    """The 3x3 (row, col) homogeneous form of an OpenCV (x=col, y=row) 2x3 affine matrix.

    Examples
    --------
    >>> rc_affine(np.array([[1.0, 0.0, 5.0], [0.0, 1.0, 7.0]])).tolist()
    [[1.0, 0.0, 7.0], [0.0, 1.0, 5.0], [0.0, 0.0, 1.0]]
    """
    m = np.asarray(matrix, dtype=np.float64)
    return np.array([[m[1, 1], m[1, 0], m[1, 2]], [m[0, 1], m[0, 0], m[0, 2]], [0.0, 0.0, 1.0]])


def registered_affine(matrix: np.ndarray, pre_scale: Any, post_scale: Any = (1.0, 1.0)) -> np.ndarray:
    """Layer affine that shows a follow-up layer in the baseline's world frame (mm), without resampling.

    napari maps data to world as ``affine @ (scale * data)``; the registration maps follow-up pixels to baseline
    pixels, which the baseline layer scales to mm. So ``affine = S_pre @ M_rc @ S_post^-1``.

    Parameters
    ----------
    matrix : numpy.ndarray
        Registration matrix, follow-up pixel (x, y) to baseline pixel (OpenCV convention).
    pre_scale : sequence of float
        The baseline layer's (row, col) scale.
    post_scale : sequence of float
        The follow-up layer's own (row, col) scale (1 for a layer in pixels).

    Returns
    -------
    numpy.ndarray
        3x3 affine.

    Examples
    --------
    >>> a = registered_affine(np.array([[1.0, 0, 10], [0, 1, 20]]), (0.5, 0.5), (0.2, 0.2))
    >>> (a @ [0.2 * 3, 0.2 * 4, 1]).tolist()  # follow-up pixel (3, 4) -> baseline pixel (23, 14) -> mm
    [11.5, 7.0, 1.0]
    """
    pre = np.diag([float(pre_scale[-2]), float(pre_scale[-1]), 1.0])
    post_inv = np.diag([1.0 / float(post_scale[-2]), 1.0 / float(post_scale[-1]), 1.0])
    return pre @ rc_affine(matrix) @ post_inv


def to_baseline_px(matrix: np.ndarray, rows: Any, cols: Any) -> tuple[np.ndarray, np.ndarray]:
    """Follow-up pixel coordinates (row, col) carried into the baseline frame by the registration matrix."""
    m = np.asarray(matrix, dtype=np.float64)
    r, c = np.asarray(rows, dtype=np.float64), np.asarray(cols, dtype=np.float64)
    return m[1, 0] * c + m[1, 1] * r + m[1, 2], m[0, 0] * c + m[0, 1] * r + m[0, 2]


def change_colour_dict(matches: pd.DataFrame, visit: str) -> dict[int | None, tuple[float, ...]]:
    """``{lesion_id: RGBA}`` of one visit's lesions by change class (background transparent, unknown ids white)."""
    colours: dict[int | None, tuple[float, ...]] = {None: CHANGE_COLOURS["unmeasured"], 0: TRANSPARENT}
    rows = matches.loc[matches["visit"] == visit]
    for lesion_id, change in zip(rows["lesion_id"], rows["change_class"], strict=True):
        colours[int(lesion_id)] = CHANGE_COLOURS.get(str(change), CHANGE_COLOURS["unmeasured"])
    return colours


def reason_colour_dict(candidate_table: pd.DataFrame) -> dict[int | None, tuple[float, ...]]:
    """``{candidate_id: RGBA}`` of rejected candidates by reason (accepted ones transparent)."""
    colours: dict[int | None, tuple[float, ...]] = {None: TRANSPARENT, 0: TRANSPARENT}
    for cid, reason in zip(candidate_table["candidate_id"], candidate_table["reason"], strict=True):
        colours[int(cid)] = TRANSPARENT if reason == "accepted" else REASON_COLOURS.get(str(reason), (1, 0, 1, 1))
    return colours


def lesion_features(lesions: pd.DataFrame, matches: pd.DataFrame | None = None, visit: str = "") -> pd.DataFrame:
    """A Labels layer's ``features``: one row per lesion with ``index`` = its label, measurements and change."""
    features = lesions.copy()
    features.insert(0, "index", features["lesion_id"].astype(np.int64))
    if matches is not None and len(matches):
        rows = matches.loc[matches["visit"] == visit, ["lesion_id", "change_class", "group_id", "matched_ids"]]
        features = features.merge(rows, on="lesion_id", how="left")
    return features.reset_index(drop=True)


def legend_html(counts: Mapping[str, int] | None = None) -> str:
    """Rich-text legend of the change classes (with counts when given)."""
    parts = []
    for name in ("new", "grown", "stable", "shrunk", "resolved"):
        r, g, b, _ = (int(round(255 * v)) for v in CHANGE_COLOURS[name])
        count = "" if counts is None else f" ({int(counts.get(name, 0))})"
        parts.append(f'<span style="color:#{r:02x}{g:02x}{b:02x}">&#9632;</span>&nbsp;{name}{count}')
    return "&nbsp;&nbsp; ".join(parts)


def summary_html(summary: Mapping[str, Any], edited: bool = False) -> str:
    """Rich-text pair summary: counts, areas, % change, category, response, needs_review."""
    units = summary.get("units", "mm")
    pct = summary.get("area_change_pct")
    pct_text = "n/a" if pct is None else f"{pct:+.1f}%"
    pre_area = summary.get(f"pre_area_{units}2", float("nan"))
    post_area = summary.get(f"post_area_{units}2", float("nan"))
    lines = [
        f"<b>count</b> {summary.get('pre_count')} &rarr; {summary.get('post_count')} &nbsp; "
        f"<b>area</b> {pre_area:.1f} &rarr; {post_area:.1f} {units}&sup2; ({pct_text})",
        f"<b>category</b> {summary.get('category')} &nbsp; <b>response</b> "
        f"{str(summary.get('response', '')).replace('_', ' ')}",
        (
            f"new {summary.get('new')}, resolved {summary.get('resolved')}, grown {summary.get('grown')}, "
            f"shrunk {summary.get('shrunk')}, stable {summary.get('stable')}"
            if summary.get("new") is not None
            else "lesions not matched: the registration is doubtful"
        ),
    ]
    if summary.get("needs_review"):
        reasons = "; ".join(summary.get("review_reasons", []))
        lines.append(f'<span style="color:#ff8c00"><b>needs review</b>: {reasons}</span>')
    else:
        lines.append("needs review: no")
    if edited:
        lines.append('<span style="color:#ffff66">labels edited: press Re-measure</span>')
    return "<br>".join(lines)
