"""Latency of the napari Segment widget's live preview on a 2500 x 3000 film.

The preview segments the region in view (plus one background line of margin), reduced by area averaging to at most
``PREVIEW_MAX_PIXELS`` pixels (see ``calcimg._napari._preview``). This measures the computation that follows the
debounce delay (``PREVIEW_DEBOUNCE_MS``) for views from the whole film down to a 20 mm field, and the full-resolution
Run for reference. No viewer is needed: the widget adds only the layer update (a few ms).

Usage: ``python benchmarks/napari_preview.py [--repeat 3]``; prints a table and writes
``benchmarks/results/napari_preview.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np

from calcimg import Params, segment_image
from calcimg._napari._preview import PREVIEW_MAX_PIXELS, preview_segmentation, view_region
from calcimg.phantom import PhantomConfig, make_pair

#: Views: name and side of the field in view, in mm (None: the whole film).
VIEWS = (("whole film", None), ("100 mm", 100.0), ("50 mm", 50.0), ("20 mm", 20.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per view (the best is reported)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "napari_preview.json")
    args = parser.parse_args()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        radiograph = make_pair(2, "hand", PhantomConfig(shape=(3000, 2500))).pre.radiograph
    params = Params()
    spacing = radiograph.spacing_mm[0]
    rows, cols = radiograph.shape
    records = []
    for name, side_mm in VIEWS:
        if side_mm is None:
            corners = np.array([[0.0, 0.0], [rows - 1.0, cols - 1.0]])
        else:
            half = side_mm / spacing / 2
            corners = np.array([[rows / 2 - half, cols / 2 - half], [rows / 2 + half, cols / 2 + half]])
        region = view_region(corners, radiograph.shape, margin_px=params.context_mm / spacing)
        times, preview = [], None
        for _ in range(args.repeat):
            preview = preview_segmentation(radiograph, params, region)
            times.append(preview.seconds)
        height, width = region[0].stop - region[0].start, region[1].stop - region[1].start
        records.append(
            {
                "view": name,
                "region_px": [height, width],
                "reduction": round(max(preview.factor), 2),
                "segmented_px": int(preview.labels.size),
                "seconds": round(min(times), 3),
                "lesions": preview.n_lesions,
            }
        )
    start = time.perf_counter()
    full = segment_image(radiograph, params)
    run_seconds = time.perf_counter() - start
    records.append(
        {
            "view": "Run (full resolution)",
            "region_px": [rows, cols],
            "reduction": 1.0,
            "segmented_px": rows * cols,
            "seconds": round(run_seconds, 3),
            "lesions": int(len(full.lesions)),
        }
    )
    print(f"film {rows} x {cols} px at {spacing} mm; preview budget {PREVIEW_MAX_PIXELS} px; debounce {_debounce()} ms")
    print(f"{'view':<24}{'region px':>14}{'reduction':>11}{'segmented px':>14}{'seconds':>9}{'lesions':>9}")
    for r in records:
        region = f"{r['region_px'][0]}x{r['region_px'][1]}"
        print(
            f"{r['view']:<24}{region:>14}{r['reduction']:>11}{r['segmented_px']:>14}{r['seconds']:>9.3f}"
            f"{r['lesions']:>9}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "film_shape": [rows, cols],
                "spacing_mm": spacing,
                "preview_max_pixels": PREVIEW_MAX_PIXELS,
                "debounce_ms": _debounce(),
                "machine": platform.processor() or platform.machine(),
                "results": records,
            },
            indent=2,
        )
        + "\n"
    )


def _debounce() -> int | None:
    try:
        from calcimg._napari._widgets import PREVIEW_DEBOUNCE_MS
    except ImportError:  # napari not installed
        return None
    return PREVIEW_DEBOUNCE_MS


if __name__ == "__main__":
    main()
