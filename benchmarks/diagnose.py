"""Where the engine loses lesions and gains false positives, stage by stage, on tuning phantoms.

Usage::

    python benchmarks/diagnose.py [--pairs 16] [--seed 1000] [--param min_score=0.8 ...]
                                  [--out benchmarks/results/diagnose.json]

For every truth lesion of every image (both visits of each pair, sites cycled) it says where the lesion went:

- ``found``: accepted lesions cover at least 20% of it (the benchmark's definition);
- ``no_candidate``: no candidate covers 20% of it: the detection (seed / hysteresis) never saw it;
- ``rejected:<reason>``: candidates cover it but were rejected, with the reason of the largest one;
- ``partly_found``: candidates cover it and the largest was accepted, but accepted lesions cover less than 20% of
  it (the rest lies in rejected candidates).

For every accepted lesion that touches no truth lesion within 1 mm (a false positive) it records its measured
features and score. Use a tuning cohort (the default seed 1000), never the benchmark's (50000): choices made here
must be checked there afterwards.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from accuracy import param_overrides

from calcimg.core import classify
from calcimg.model import Params
from calcimg.phantom import SITES, make_pair
from calcimg.phantom.writer import pair_seed
from calcimg.pipeline import detect_candidates, finish_segmentation

FOUND_FRACTION = 0.2


def peak_snr(stage, where: np.ndarray) -> float:
    """Highest response over its local noise scale among the pixels of ``where``."""
    flat = np.flatnonzero(where)
    return float((stage.response.ravel()[flat] / np.maximum(stage.noise_scale_at(flat), 1e-9)).max())


def diagnose_image(
    visit, kinds: dict, over_bone: dict, site: str, image: str, params: Params
) -> tuple[list[dict], list[dict]]:
    """Fate of each truth lesion and the features of each false positive in one image (named ``image``)."""
    stage = detect_candidates(visit.radiograph, params)
    result = finish_segmentation(stage)
    truth = visit.identity_labels
    candidates = stage.candidates
    table = stage.table
    reasons = table["reason"].to_numpy()
    lesions = []
    for lesion_id in np.unique(truth[truth > 0]):
        where = truth == lesion_id
        area = int(where.sum())
        accepted_cover = int((result.labels[where] > 0).sum())
        ids, counts = np.unique(candidates[where], return_counts=True)
        keep = ids > 0
        ids, counts = ids[keep], counts[keep]
        if accepted_cover >= FOUND_FRACTION * area:
            fate = "found"
        elif counts.sum() < FOUND_FRACTION * area:
            fate = "no_candidate"
        else:
            reason = str(reasons[ids[np.argmax(counts)] - 1])
            fate = "partly_found" if reason == classify.ACCEPTED else "rejected:" + reason
        lesions.append(
            {
                "image": image,
                "site": site,
                "kind": kinds[int(lesion_id)],
                "over_bone": bool(over_bone[int(lesion_id)]),
                "area_mm2": area * visit.spacing_mm**2,
                "peak_snr": peak_snr(stage, where),
                "candidate_cover": float(counts.sum() / area),
                "fate": fate,
            }
        )
    distance = cv2.distanceTransform((truth == 0).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    near = distance <= 1.0 / visit.spacing_mm
    false_positives = []
    accepted = np.flatnonzero(reasons == classify.ACCEPTED) + 1
    touching = set(np.unique(candidates[near & (candidates > 0)]).tolist())
    for candidate_id in accepted:
        if int(candidate_id) not in touching:
            row = table.iloc[candidate_id - 1].to_dict()
            false_positives.append({"image": image, "site": site, **{k: v for k, v in row.items() if np.isscalar(v)}})
    return lesions, false_positives


def diagnose_pair(task: tuple[int, int, str], params: Params) -> tuple[list[dict], list[dict]]:
    """Both visits of one phantom pair (``index`` within the cohort, pair seed, site)."""
    index, seed, site = task
    pair = make_pair(seed, site)
    kinds = dict(zip(pair.lesions["lesion_id"], pair.lesions["kind"], strict=True))
    over_bone = dict(zip(pair.lesions["lesion_id"], pair.lesions["over_bone"], strict=True))
    lesions, false_positives = [], []
    for visit in (pair.pre, pair.post):
        found, fps = diagnose_image(visit, kinds, over_bone, site, f"{index:03d}-{site}-{visit.name}", params)
        lesions += found
        false_positives += fps
    return lesions, false_positives


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1000, help="tuning cohort seed (never the benchmark's 50000)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "diagnose.json")
    parser.add_argument("--param", action="append", default=[], help="NAME=VALUE: a Params field to override")
    args = parser.parse_args()
    params, overrides = param_overrides(args.param)
    tasks = [(k, pair_seed(args.seed, k), SITES[k % len(SITES)]) for k in range(args.pairs)]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(partial(diagnose_pair, params=params), tasks))
    lesions = pd.DataFrame([row for rows, _ in results for row in rows])
    fps = pd.DataFrame([row for _, rows in results for row in rows])
    lesions["size"] = np.where(lesions["area_mm2"] >= 1.0, ">=1mm2", "<1mm2")
    found = lesions["fate"] == "found"
    print(
        f"overrides {overrides}: sensitivity >= 1 mm^2 {found[lesions['size'] == '>=1mm2'].mean():.3f}, "
        f"< 1 mm^2 {found[lesions['size'] == '<1mm2'].mean():.3f}, "
        f"false positives per image {len(fps) / (2 * args.pairs):.2f}\n"
    )
    print("### fate of truth lesions (fraction of each size class)\n")
    print(pd.crosstab(lesions["fate"], lesions["size"], normalize="columns").to_markdown(floatfmt=".3f"))
    print("\n### fate of lesions >= 1 mm^2 by over_bone and kind\n")
    big = lesions[lesions["size"] == ">=1mm2"]
    print(pd.crosstab([big["over_bone"], big["kind"]], big["fate"]).to_markdown())
    print("\n### peak SNR (response / noise scale) of missed lesions >= 1 mm^2 by fate\n")
    print(big.groupby("fate")["peak_snr"].describe()[["count", "25%", "50%", "75%"]].to_markdown(floatfmt=".1f"))
    if len(fps):
        print(f"\n### {len(fps)} false positives in {2 * args.pairs} images, by site\n")
        print(fps.groupby("site").size().to_markdown())
        numeric = fps.select_dtypes("number")
        print("\n### their features (median)\n")
        print(numeric.median().to_frame("median").to_markdown(floatfmt=".3g"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"lesions": lesions.to_dict("records"), "false_positives": fps.to_dict("records")}, default=str)
    )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
