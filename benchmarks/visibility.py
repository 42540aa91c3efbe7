"""How far each deposit stands out of its surroundings' own texture, for a statistic told its shape and place.

Usage::

    python benchmarks/visibility.py [--cohort 1000:16 --cohort 8000:20] [--select over-bone|small|large]
                                    [--out benchmarks/results/visibility.json]

For every truth deposit of the selection (both films of every pair of the cohorts, sites cycled; ``over-bone``, the
default: at least 1 mm^2 and over bone; ``small``: under 1 mm^2, wherever it lies; ``large``: at least 1 mm^2,
wherever it lies) the statistic is the mean of the film smoothed at 0.1 mm inside the deposit's outline minus the
mean of a ring 1 to 2 mm out. It is computed at the deposit and at up to 120 random places of the same shape within
10 mm that touch no deposit (at least 20, or the deposit is left out and counted in ``left_out``), and turned into
a robust z-score (median and 1.4826 x MAD of the places). A deposit at z < 3 hardly stands out of the texture even
for a detector that knows where and what it is; the script also says which deposits calcimg finds (accepted
lesions cover 20 % of it). Use tuning cohorts, never the benchmark's (50000).
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from calcimg import segment_image
from calcimg.core.morphology import disk_kernel
from calcimg.phantom import SITES, make_pair
from calcimg.phantom.writer import pair_seed

MIN_AREA_MM2 = 1.0
SMOOTHING_MM = 0.1
RING_MM = (1.0, 2.0)
SEARCH_MM = 10.0
PLACES = 120
MIN_PLACES = 20


def inside_minus_ring(film: np.ndarray, inside: np.ndarray, ring: np.ndarray) -> float:
    """Mean of ``film`` over ``inside`` minus its mean over ``ring`` (all three the same shape)."""
    return float(film[inside].mean() - film[ring].mean())


#: The deposits each ``--select`` looks at: (over bone, area in mm^2) -> whether it is one.
SELECTIONS = {
    "over-bone": lambda over_bone, area: over_bone and area >= MIN_AREA_MM2,
    "small": lambda over_bone, area: area < MIN_AREA_MM2,
    "large": lambda over_bone, area: area >= MIN_AREA_MM2,
}


def deposit_z_scores(task: tuple[int, int, str, str]) -> list[dict]:
    """One row per deposit of the selection on one pair: its z-score and whether calcimg found it."""
    index, seed, site, selection = task
    selected = SELECTIONS[selection]
    pair = make_pair(seed, site)
    over_bone = dict(zip(pair.lesions["lesion_id"], pair.lesions["over_bone"], strict=True))
    kinds = dict(zip(pair.lesions["lesion_id"], pair.lesions["kind"], strict=True))
    rng = np.random.default_rng(seed)
    rows = []
    for visit in (pair.pre, pair.post):
        truth = visit.identity_labels
        spacing = visit.spacing_mm
        film = cv2.GaussianBlur(visit.radiograph.pixels.astype(np.float32), (0, 0), SMOOTHING_MM / spacing)
        found = segment_image(visit.radiograph).labels > 0
        ring_in, ring_out = (max(1, int(round(mm / spacing))) for mm in RING_MM)
        pad = ring_out
        # A place must keep its ring clear of every deposit.
        deposits = cv2.dilate((truth > 0).astype(np.uint8), disk_kernel(ring_out)) > 0
        span = int(round(SEARCH_MM / spacing))
        for lesion_id in np.unique(truth[truth > 0]):
            where = truth == lesion_id
            area = float(where.sum() * spacing**2)
            if not selected(bool(over_bone[int(lesion_id)]), area):
                continue
            rows_px, cols_px = np.nonzero(where)
            r0, c0 = max(rows_px.min() - pad, 0), max(cols_px.min() - pad, 0)
            r1, c1 = min(rows_px.max() + 1 + pad, truth.shape[0]), min(cols_px.max() + 1 + pad, truth.shape[1])
            inside = where[r0:r1, c0:c1]
            reach = cv2.dilate(inside.view(np.uint8), disk_kernel(ring_out)) > 0
            ring = reach & ~(cv2.dilate(inside.view(np.uint8), disk_kernel(ring_in)) > 0)
            height, width = inside.shape
            places = []
            for _ in range(20 * PLACES):
                dr, dc = rng.integers(-span, span + 1, 2)
                top, left = r0 + dr, c0 + dc
                if top < 0 or left < 0 or top + height > truth.shape[0] or left + width > truth.shape[1]:
                    continue
                if deposits[top : top + height, left : left + width][reach].any():
                    continue
                places.append(inside_minus_ring(film[top : top + height, left : left + width], inside, ring))
                if len(places) == PLACES:
                    break
            if len(places) < MIN_PLACES:
                name = f"{index:03d}-{site}-{visit.name}"
                rows.append({"pair": name, "kind": kinds[int(lesion_id)], "left_out": True})
                continue
            places = np.asarray(places)
            centre = np.median(places)
            spread = 1.4826 * np.median(np.abs(places - centre))
            value = inside_minus_ring(film[r0:r1, c0:c1], inside, ring)
            rows.append(
                {
                    "pair": f"{index:03d}-{site}-{visit.name}",
                    "kind": kinds[int(lesion_id)],
                    "area_mm2": area,
                    "over_bone": bool(over_bone[int(lesion_id)]),
                    "z": float((value - centre) / max(spread, 1e-9)),
                    "above_every_place": bool((places < value).all()),
                    "found": bool(found[where].mean() >= 0.2),
                    "left_out": False,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", action="append", help="SEED:PAIRS, a tuning cohort (default 1000:16 and 8000:20)")
    parser.add_argument("--select", choices=sorted(SELECTIONS), default="over-bone", help="which deposits to look at")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "visibility.json")
    args = parser.parse_args()
    cohorts = [tuple(int(v) for v in c.split(":")) for c in (args.cohort or ["1000:16", "8000:20"])]
    tasks = [
        (k, pair_seed(seed, k), SITES[k % len(SITES)], args.select) for seed, pairs in cohorts for k in range(pairs)
    ]
    with ProcessPoolExecutor(args.jobs) as pool:
        table = pd.DataFrame([row for rows in pool.map(deposit_z_scores, tasks) for row in rows])
    left_out = table[table["left_out"]]
    table = table[~table["left_out"]].drop(columns="left_out")
    table["found"] = table["found"].astype(bool)
    summary = {
        "deposits": len(table),
        "kinds": table["kind"].value_counts().to_dict(),
        "found": int(table["found"].sum()),
        "z_median_found": float(table.loc[table["found"], "z"].median()),
        "z_median_missed": float(table.loc[~table["found"], "z"].median()),
        **{f"share_z_at_least_{k}": float((table["z"] >= k).mean()) for k in (3, 5)},
        "z_at_least_3": int((table["z"] >= 3).sum()),
        "found_of_z_at_least_3": int((table["found"] & (table["z"] >= 3)).sum()),
        "share_above_every_place": float(table["above_every_place"].mean()),
        "left_out": len(left_out),
        "left_out_kinds": left_out["kind"].value_counts().to_dict(),
    }
    what = {
        "over-bone": f"over-bone deposits of at least {MIN_AREA_MM2:g} mm^2",
        "small": f"deposits under {MIN_AREA_MM2:g} mm^2",
        "large": f"deposits of at least {MIN_AREA_MM2:g} mm^2",
    }
    print(f"cohorts {cohorts}: {what[args.select]}\n")
    print(pd.Series(summary).to_string())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "cohorts": cohorts,
        "select": args.select,
        "summary": summary,
        "deposits": json.loads(table.to_json(orient="records")),
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
