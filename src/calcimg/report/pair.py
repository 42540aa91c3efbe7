"""Writing one pair's comparison: summary JSON, per-lesion change table and the pair overlay picture.

Every file is written atomically (temporary name, then rename), so an interrupted run never leaves a half file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from calcimg._files import atomic_write_bytes, atomic_write_json, atomic_write_text
from calcimg.core.matching import pair_counts
from calcimg.report.files import png_bytes, write_segmentation
from calcimg.report.overlay import display_image, draw_legend, draw_outlines

#: BGR colours of the change classes (chosen to stay distinct for the common colour-vision deficiencies).
CHANGE_COLOURS_BGR: dict[str, tuple[int, int, int]] = {
    "new": (0, 0, 230),  # red
    "resolved": (230, 160, 0),  # blue
    "grown": (0, 140, 255),  # orange
    "shrunk": (230, 230, 0),  # cyan
    "stable": (80, 220, 80),  # green
    "outside_field": (160, 160, 160),  # grey: the other film does not show this place
    "not_compared": (200, 80, 200),  # purple: the registration is doubtful, nothing was matched
}

#: Columns of ``lesions.csv``: the matching and change columns first, then each visit's measurements.
PAIR_LESION_COLUMNS = (
    "visit",
    "lesion_id",
    "group_id",
    "matched_ids",
    "matched_by",
    "change_class",
    "group_area_pre_mm2",
    "group_area_post_mm2",
    "area_change_mm2",
    "area_change_pct",
    "area_px",
    "area_mm2",
    "compared_area_mm2",
    "centroid_row",
    "centroid_col",
    "equivalent_diameter_mm",
    "mean_excess",
    "burden",
    "bone_overlap",
    "size_class",
    "score",
    "support",
)


def pair_lesion_table(result: Any) -> pd.DataFrame:
    """One row per lesion per visit: its match, change class and the visit's own measurements."""
    measured = pd.concat(
        [result.pre.lesions.assign(visit="pre"), result.post.lesions.assign(visit="post")], ignore_index=True
    )
    matches = result.matches.rename(columns={"area_mm2": "compared_area_mm2"})
    table = matches.merge(measured, on=["visit", "lesion_id"], how="left")
    columns = [c for c in PAIR_LESION_COLUMNS if c in table.columns]
    return table.loc[:, columns].sort_values(["visit", "lesion_id"], ascending=[False, True], ignore_index=True)


def _class_masks(labels: np.ndarray, matches: pd.DataFrame, visit: str) -> dict[str, np.ndarray]:
    """One mask per change class present among a visit's lesions (a small integer code per label, one gather)."""
    rows = matches[matches["visit"] == visit]
    names = list(CHANGE_COLOURS_BGR)
    lookup = np.zeros(int(labels.max(initial=0)) + 1, np.uint8)  # 0: background or unknown class
    codes = [names.index(c) + 1 if c in names else 0 for c in rows["change_class"]]
    lookup[rows["lesion_id"].to_numpy()] = codes
    classes = lookup[labels]
    return {name: classes == k for k, name in enumerate(names, start=1) if k in codes}


def pair_overlay(result: Any, max_side: int = 1200) -> np.ndarray:
    """Picture of a comparison: baseline | follow-up | follow-up lesions drawn on the baseline.

    Lesions are outlined in the colour of their change class (new, resolved, grown, shrunk, stable); the third
    panel shows the baseline with its own lesions (thick) and the follow-up's carried into its frame by the
    registration (thin). A legend and the pair's figures are written on the picture.

    Parameters
    ----------
    result : calcimg.pipeline.PairResult
    max_side : int
        Longest side of each panel.

    Returns
    -------
    numpy.ndarray
        BGR uint8 picture.
    """
    pre, post = result.pre, result.post
    panels = []
    for visit, segment in (("pre", pre), ("post", post)):
        picture, _ = display_image(segment.radiograph.pixels, segment.fov.mask, max_side)
        for name, mask in _class_masks(segment.labels, result.matches, visit).items():
            draw_outlines(picture, mask, CHANGE_COLOURS_BGR[name], thickness=2)
        panels.append(picture)
    combined, _ = display_image(pre.radiograph.pixels, pre.fov.mask, max_side)
    for name, mask in _class_masks(pre.labels, result.matches, "pre").items():
        draw_outlines(combined, mask, CHANGE_COLOURS_BGR[name], thickness=2)
    for name, mask in _class_masks(result.post_labels_in_pre, result.matches, "post").items():
        draw_outlines(combined, mask, CHANGE_COLOURS_BGR[name], thickness=1)
    panels.append(combined)
    height = max(p.shape[0] for p in panels)
    padded = [cv2.copyMakeBorder(p, 0, height - p.shape[0], 0, 4, cv2.BORDER_CONSTANT, value=(0, 0, 0)) for p in panels]
    width = sum(p.shape[1] for p in padded)
    scale = max(0.4, width / 1600)  # the legend's own scale (draw_legend)
    header = np.zeros((int(30 * scale), width, 3), np.uint8)
    x = 0
    for title, panel in zip(("baseline", "follow-up", "follow-up (thin) on baseline (thick)"), padded, strict=True):
        position = (x + int(8 * scale), int(21 * scale))
        cv2.putText(header, title, position, cv2.FONT_HERSHEY_SIMPLEX, 0.55 * scale, (255, 255, 255), 1, cv2.LINE_AA)
        x += panel.shape[1]
    # The counts of summary.json and of the napari review: new and resolved lesions, grown, shrunk and stable
    # groups (a deposit that split is one group); "not_compared" lesions only where it happened (a doubtful
    # registration), the usual classes always.
    counts = legend_counts(result.matches)
    entries = [
        (f"{name} ({int(counts.get(name, 0))})", colour)
        for name, colour in CHANGE_COLOURS_BGR.items()
        if name != "not_compared" or counts.get(name, 0)
    ]
    # draw_legend's own geometry: 22 px per entry and 8 px of margin, times its scale.
    footer = np.zeros((int((22 * len(entries) + 16) * scale), header.shape[1], 3), np.uint8)
    draw_legend(footer, entries)
    for k, line in enumerate(_caption_lines(result.summary)):
        position = (int(200 * scale), int((24 + 24 * k) * scale))
        cv2.putText(footer, line, position, cv2.FONT_HERSHEY_SIMPLEX, 0.55 * scale, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([header, np.hstack(padded), footer])


def legend_counts(matches: pd.DataFrame) -> dict[str, int]:
    """The count shown beside each change class in the pair overlay's legend: :func:`calcimg.core.matching.pair_counts`
    (what ``summary.json`` reports), and the lesions ``not_compared``.

    Examples
    --------
    >>> m = pd.DataFrame({"visit": ["pre", "post", "post", "post"], "group_id": [1, 1, 1, 2],
    ...                   "change_class": ["grown", "grown", "grown", "new"]})
    >>> legend_counts(m)["grown"], legend_counts(m)["new"], legend_counts(m)["not_compared"]
    (1, 1, 0)
    """
    counts = pair_counts(matches)
    counts["not_compared"] = int((matches["change_class"] == "not_compared").sum()) if len(matches) else 0
    return counts


def _caption_lines(summary: dict[str, Any]) -> list[str]:
    units = summary["units"]
    pct = summary["area_change_pct"]
    pct_text = "n/a" if pct is None else f"{pct:+.1f}%"
    lines = [
        f"total area {summary[f'pre_area_{units}2']:.1f} -> {summary[f'post_area_{units}2']:.1f} {units}^2 "
        f"({pct_text}); count {summary['pre_count']} -> {summary['post_count']}",
        f"category: {summary['category']}; response: {summary['response'].replace('_', ' ')}",
        f"registration quality {summary['registration'].get('quality', float('nan')):.2f}",
    ]
    if summary["needs_review"]:
        lines.append("NEEDS REVIEW: " + "; ".join(summary["review_reasons"]))
    return lines


def write_comparison(
    result: Any, out_dir: str | Path, pre_stem: str = "pre", post_stem: str = "post"
) -> dict[str, Path]:
    """Write ``summary.json``, ``lesions.csv``, ``pair_overlay.png`` and each visit's segmentation files.

    Parameters
    ----------
    result : calcimg.pipeline.PairResult
        What :func:`calcimg.compare_pair` returned.
    out_dir : str or Path
        Output folder (created if needed).
    pre_stem, post_stem : str
        File-name stems of the visits' own files (``<stem>_labels.tif`` ...).

    Returns
    -------
    dict of str to pathlib.Path
        Paths by kind: ``summary``, ``lesions``, ``pair_overlay``, and ``pre_*`` / ``post_*`` for the visits.
    """
    out = Path(out_dir)
    if pre_stem == post_stem:
        pre_stem, post_stem = f"pre_{pre_stem}", f"post_{post_stem}"
    written: dict[str, Path] = {}
    for visit, segment, stem in (("pre", result.pre, pre_stem), ("post", result.post, post_stem)):
        for kind, path in write_segmentation(segment, out, stem).items():
            written[f"{visit}_{kind}"] = path
    table = pair_lesion_table(result)
    csv = table.to_csv(index=False, float_format="%.6g", lineterminator="\n")
    written["lesions"] = atomic_write_text(out / "lesions.csv", csv)
    written["pair_overlay"] = atomic_write_bytes(out / "pair_overlay.png", png_bytes(pair_overlay(result)))
    # The summary goes last: its presence says the folder is complete.
    written["summary"] = atomic_write_json(out / "summary.json", result.summary)
    return written
