"""Accuracy of calcimg's segmentation on phantoms from seeds never used while tuning, beside two baselines.

Usage::

    python benchmarks/accuracy.py [--pairs 20] [--seed 50000] [--out benchmarks/results/accuracy.json]

Each pair gives two images (baseline and follow-up), sites cycled (hand, forearm, knee, pelvis), so 20 pairs are
40 images covering every site, spacing, noise level, marker, collimation and processing option the generator
draws. Scored per the definitions in :mod:`calcimg.core.scoring`: a truth lesion is found when 20% of its pixels
are predicted; a prediction is a false positive when it touches no truth lesion within 1 mm; total-area error is
(predicted - true) / true; Dice on pixels; ``outline_ratio``: the median, over the truth lesions that are found,
of the area of the predicted lesions overlapping each over its own area (below 1: found lesions are outlined
inside their edge). Baselines on the same images:

- ``otsu``: a global Otsu threshold with small objects removed (what a user does in ImageJ);
- ``tophat``: a white top-hat with a 4 mm disk (OpenCV ellipse) and a median + 5 x MAD threshold, small objects
  removed.

Each pair is also compared with :func:`calcimg.compare_pair` and scored against the pair's truth:

- ``area_change_pct``: absolute error, in percentage points, of the % change of the total area (truth: the
  change of the total anatomical area, detector area / magnification^2); a pair whose truth has a % change but
  whose comparison gives none (no lesion found on the baseline) counts as an infinite error, the worst of all
  (``pct_undefined`` counts them), and a pair whose truth has none (no deposit at baseline) is left out;
- ``category``: progression / stable / improvement equal to the truth's;
- ``response``: complete resolution / response / no response equal to the truth's (a response needs a reduction
  of at least 20 % and no new lesion, so a false new lesion denies it; "not_assessed", when the registration is
  doubtful, counts as a disagreement);
- new and resolved lesions: a truth new (resolved) lesion is found when 20% of its pixels lie in lesions the
  comparison calls new (resolved); a lesion called new (resolved) is wrong when it touches no truth new
  (resolved) lesion within 1 mm; F1 pooled over the pairs;
- registration: residual (mm) between the true and the estimated transform over the baseline's tissue, and
  whether every pair beyond 1 mm was flagged (registration not ok);
- change calls: the lesions called new (resolved) pooled over the pairs, split into right, wrong on a deposit
  present on both films (missed or left unmatched on the other film) and wrong where there is no deposit.

Prints markdown tables (overall, by site, by lesion size and kind, by confounder, pairs) and writes JSON, with
every pair's own figures (``pair_rows``: true and measured % change, category, new and resolved calls, residual).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from registration import residual_mm
from skimage.filters import threshold_otsu
from skimage.morphology import remove_small_objects

import calcimg
from calcimg.core.backends import BACKENDS
from calcimg.core.measure import label_objects
from calcimg.core.morphology import disk_kernel
from calcimg.core.scoring import score_segmentation
from calcimg.model import Params
from calcimg.phantom import SITES, make_pair
from calcimg.phantom.writer import pair_seed
from calcimg.pipeline import compare_pair, segment_image, working_image

MIN_AREA_MM2 = 0.1


def otsu_baseline(pixels: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Global Otsu threshold, objects below 0.1 mm^2 removed, 8-connected labels."""
    mask = pixels > threshold_otsu(pixels)
    mask = remove_small_objects(mask, max_size=max(1, int(MIN_AREA_MM2 / spacing_mm**2)))
    return label_objects(mask)[0]


def tophat_baseline(pixels: np.ndarray, spacing_mm: float, radius_mm: float = 4.0, k: float = 5.0) -> np.ndarray:
    """White top-hat with a disk, threshold at median + k * 1.4826 * MAD of the response, small objects removed."""
    image, _ = working_image(pixels)
    response = cv2.morphologyEx(image, cv2.MORPH_TOPHAT, disk_kernel(radius_mm / spacing_mm)).astype(np.float64)
    median = np.median(response)
    mad = max(np.median(np.abs(response - median)) * 1.4826, 1.0)
    mask = response > median + k * mad
    mask = remove_small_objects(mask, max_size=max(1, int(MIN_AREA_MM2 / spacing_mm**2)))
    return label_objects(mask)[0]


def confounders(summary: dict, visit: str) -> dict:
    """Facts of one visit that may fool a detector, as categories."""
    facts = summary["visits"][visit]
    return {
        "edge_enhancement": bool(facts["display"]["usm_amount"] > 0),
        "collimation": facts["collimation"]["kind"] if facts["collimation"]["sides"] else "none",
        "photometric": facts["photometric"],
        "spacing": "<0.15 mm" if facts["spacing_mm"] < 0.15 else ">=0.15 mm",
        "noise": "high" if facts["exposure"]["aec_quanta"] < 1000 else "low",
        "bits": "<=12" if facts["bits_stored"] <= 12 else ">12",
    }


def change_detection(truth: np.ndarray, ids: np.ndarray, labels: np.ndarray, called: np.ndarray, tol: float) -> dict:
    """Truth lesions ``ids`` against the predicted lesions ``called`` (a change class) of one visit.

    A wrong call is on a persisting deposit when it touches (within ``tol``) a truth lesion of the visit that is
    not of the class (a deposit on both films, missed or left unmatched on the other), else on no deposit at all.
    """
    truth_class = np.where(np.isin(truth, ids), truth, 0)
    predicted = np.where(np.isin(labels, called), labels, 0)
    score = score_segmentation(truth_class, predicted, fp_tolerance_px=tol)
    on_nothing = score_segmentation(truth, predicted, fp_tolerance_px=tol)["false_positives"]
    return {
        "truth": len(score["found"]),
        "found": int(sum(score["found"].values())),
        "called": score["n_predicted"],
        "called_right": score["n_predicted"] - score["false_positives"],
        "wrong_on_persisting": score["false_positives"] - on_nothing,
        "wrong_on_nothing": on_nothing,
    }


def change_calls(pairs: pd.DataFrame) -> pd.DataFrame:
    """Lesions called new or resolved, pooled over the pairs: right, wrong on a deposit present on both films,
    wrong where there is no deposit."""
    return pd.DataFrame(
        [
            {
                "call": name,
                "called": int(pairs[f"{name}_called"].sum()),
                "right": int(pairs[f"{name}_called_right"].sum()),
                "wrong_on_persisting": int(pairs[f"{name}_wrong_on_persisting"].sum()),
                "wrong_on_nothing": int(pairs[f"{name}_wrong_on_nothing"].sum()),
                "truth": int(pairs[f"{name}_truth"].sum()),
                "truth_found": int(pairs[f"{name}_found"].sum()),
            }
            for name in ("new", "resolved")
        ]
    )


def pct_error(pct: float | None, true_pct: float | None) -> float:
    """Absolute error of a pair's % change: NaN where the truth has none, infinite where only the comparison has
    none (an answer withheld counts as the worst, never as a pair left out).

    >>> pct_error(-40.0, -50.0), pct_error(None, -50.0), pct_error(12.0, None)
    (10.0, inf, nan)
    """
    if true_pct is None or not np.isfinite(true_pct):
        return np.nan
    if pct is None or not np.isfinite(pct):
        return np.inf
    return abs(pct - true_pct)


def error_quantile(errors: pd.Series, q: float) -> float:
    """The ``q`` quantile of pair errors (linear interpolation, NaN left out), infinite where it falls on or
    beside an infinite error (pandas would give NaN there).

    >>> error_quantile(pd.Series([1.0, 2.0, 3.0, np.inf]), 0.5), error_quantile(pd.Series([1.0, 2.0, np.inf]), 0.9)
    (2.5, inf)
    """
    values = np.sort(errors.dropna().to_numpy(float))
    if values.size == 0:
        return np.nan
    position = q * (values.size - 1)
    low, high = values[int(np.floor(position))], values[int(np.ceil(position))]
    if np.isinf(high):
        return np.inf
    return float(low + (high - low) * (position - np.floor(position)))


def score_pair(pair, result) -> dict:
    """Pair-level figures of one comparison against the pair's truth."""
    truth = pair.summary
    summary = result.summary
    table = pair.lesions
    new_ids = table.loc[(table["area_pre_px"] == 0) & (table["area_post_px"] > 0), "lesion_id"].to_numpy()
    resolved_ids = table.loc[(table["area_pre_px"] > 0) & (table["area_post_px"] == 0), "lesion_id"].to_numpy()
    matches = result.matches
    called = {
        name: matches.loc[(matches["visit"] == visit) & (matches["change_class"] == name), "lesion_id"].to_numpy()
        for name, visit in (("new", "post"), ("resolved", "pre"))
    }
    new = change_detection(
        pair.post.identity_labels, new_ids, result.post.labels, called["new"], 1.0 / pair.post.spacing_mm
    )
    resolved = change_detection(
        pair.pre.identity_labels, resolved_ids, result.pre.labels, called["resolved"], 1.0 / pair.pre.spacing_mm
    )
    pct, true_pct = summary["area_change_pct"], truth["pct_change"]
    residual = residual_mm(pair, result.transform)
    return {
        "site": pair.site,
        "true_pct": true_pct,
        "pct": pct,
        "pct_error": pct_error(pct, true_pct),
        "true_category": truth["category"],
        "category": summary["category"],
        "category_ok": summary["category"] == truth["category"],
        "true_response": truth["response"],
        "response": summary["response"],
        "response_ok": summary["response"] == truth["response"],
        "residual_mm": residual,
        "flagged": not result.transform.ok,
        "needs_review": summary["needs_review"],
        **{f"new_{k}": v for k, v in new.items()},
        **{f"resolved_{k}": v for k, v in resolved.items()},
    }


def summarise_pairs(pairs: pd.DataFrame, by: str | None) -> pd.DataFrame:
    """Pair-level figures per group: % change error, category agreement, new/resolved F1, registration."""

    def f1(group: pd.DataFrame, name: str) -> float:
        recall = group[f"{name}_found"].sum() / max(group[f"{name}_truth"].sum(), 1)
        precision = group[f"{name}_called_right"].sum() / max(group[f"{name}_called"].sum(), 1)
        return 2 * precision * recall / (precision + recall) if precision + recall else 0.0

    groups = pairs.groupby(by) if by else [("all", pairs)]
    rows = []
    for key, group in groups:
        beyond = group["residual_mm"] > 1.0
        rows.append(
            {
                (by or "pairs"): key,
                "pct_err_median": error_quantile(group["pct_error"], 0.5),
                "pct_err_p90": error_quantile(group["pct_error"], 0.9),
                "pct_undefined": int(np.isinf(group["pct_error"]).sum()),
                "category_agreement": group["category_ok"].mean(),
                "response_agreement": group["response_ok"].mean(),
                "new_f1": f1(group, "new"),
                "resolved_f1": f1(group, "resolved"),
                "residual_median_mm": group["residual_mm"].median(),
                "residual_<=1mm": (~beyond).mean(),
                "all_beyond_1mm_flagged": bool(group.loc[beyond, "flagged"].all()),
                "needs_review": group["needs_review"].mean(),
                "pairs": len(group),
            }
        )
    return pd.DataFrame(rows)


def evaluate_pair(task: tuple[int, int, str, Params, str]) -> tuple[list[dict], list[dict], dict]:
    """Compare one pair with calcimg, segment both visits with the baselines; per-image, per-lesion and pair rows."""
    index, seed, site, params, backend = task
    pair = make_pair(seed, site)
    kinds = dict(zip(pair.lesions["lesion_id"], pair.lesions["kind"], strict=True))
    over_bone = dict(zip(pair.lesions["lesion_id"], pair.lesions["over_bone"], strict=True))
    started = time.perf_counter()
    result = compare_pair(pair.pre.radiograph, pair.post.radiograph, params, backend=backend)
    pair_seconds = time.perf_counter() - started
    images, lesions = [], []
    for visit in (pair.pre, pair.post):
        spacing = visit.spacing_mm
        # Per image: the single-film segmentation (a comparison also lets each film support the other's).
        started = time.perf_counter()
        predicted = {"calcimg": segment_image(visit.radiograph, params, backend=backend).labels}
        seconds = time.perf_counter() - started
        predicted["otsu"] = otsu_baseline(visit.radiograph.pixels, spacing)
        predicted["tophat"] = tophat_baseline(visit.radiograph.pixels, spacing)
        for method, labels in predicted.items():
            score = score_segmentation(visit.identity_labels, labels, fp_tolerance_px=1.0 / spacing)
            truth_px, pred_px = score["truth_total_px"], score["predicted_total_px"]
            images.append(
                {
                    "method": method,
                    "image": f"{index:03d}-{site}-{visit.name}",
                    "site": site,
                    "false_positives": score["false_positives"],
                    "area_error": (pred_px - truth_px) / truth_px if truth_px else np.nan,
                    "dice": score["dice"],
                    "seconds": seconds if method == "calcimg" else np.nan,
                    **confounders(pair.summary, visit.name),
                }
            )
            for lesion_id, found in score["found"].items():
                lesions.append(
                    {
                        "method": method,
                        "site": site,
                        "kind": kinds[lesion_id],
                        "over_bone": bool(over_bone[lesion_id]),
                        "area_mm2": score["truth_area_px"][lesion_id] * spacing**2,
                        "found": found,
                        "outline_ratio": score["outline_ratio"][lesion_id],
                        **confounders(pair.summary, visit.name),
                    }
                )
    return images, lesions, {"pair": f"{index:03d}-{site}", "seconds": pair_seconds, **score_pair(pair, result)}


def summarise(images: pd.DataFrame, lesions: pd.DataFrame, by: str | None) -> pd.DataFrame:
    """One row per method (and group): sensitivity by size, false positives per image, area error, Dice."""
    keys = ["method"] + ([by] if by else [])
    big = lesions[lesions["area_mm2"] >= 1.0].groupby(keys)["found"].mean().rename("sens_>=1mm2")
    small = lesions[lesions["area_mm2"] < 1.0].groupby(keys)["found"].mean().rename("sens_<1mm2")
    grouped = images.groupby(keys)
    table = pd.concat(
        [
            big,
            small,
            grouped["false_positives"].mean().rename("fp_per_image"),
            grouped["area_error"].apply(lambda s: s.abs().median()).rename("area_err_median"),
            grouped["area_error"].apply(lambda s: s.abs().quantile(0.9)).rename("area_err_p90"),
            grouped["dice"].mean().rename("dice"),
            lesions[lesions["found"]].groupby(keys)["outline_ratio"].median().rename("outline_ratio"),
            grouped.size().rename("images"),
        ],
        axis=1,
    )
    return table.reset_index()


def param_overrides(items: list[str]) -> tuple[Params, dict]:
    """Params with ``NAME=VALUE`` overrides (values read as JSON: ``0.8``, ``false``, ``[1, 3, 8, 20]``), checked
    by :meth:`Params.from_dict` (unknown names and invalid values are errors), and the overrides themselves."""
    overrides = {name: json.loads(value) for name, value in (item.split("=", 1) for item in items)}
    return Params.from_dict(overrides), overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=50000, help="cohort seed (tuning used seeds 1000-1011)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "accuracy.json")
    parser.add_argument(
        "--param", action="append", default=[], help="NAME=VALUE: a Params field to override (tuning cohorts only)"
    )
    parser.add_argument(
        "--backend", default="cpu", choices=BACKENDS, help="where detection's pixel steps run (cupy: a CUDA GPU)"
    )
    args = parser.parse_args()
    params, overrides = param_overrides(args.param)

    tasks = [(k, pair_seed(args.seed, k), SITES[k % len(SITES)], params, args.backend) for k in range(args.pairs)]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(evaluate_pair, tasks))
    images = pd.DataFrame([row for rows, _, _ in results for row in rows])
    lesions = pd.DataFrame([row for _, rows, _ in results for row in rows])
    pairs = pd.DataFrame([row for _, _, row in results])
    tables = {"overall": summarise(images, lesions, None)}
    for by in ("site", "edge_enhancement", "collimation", "noise", "spacing", "photometric"):
        tables[by] = summarise(images, lesions, by)
    ours = lesions[lesions["method"] == "calcimg"]
    tables["kind"] = ours.groupby("kind")["found"].agg(["mean", "size"]).rename(columns={"mean": "sensitivity"})
    tables["over_bone"] = (
        ours.groupby("over_bone")["found"].agg(["mean", "size"]).rename(columns={"mean": "sensitivity"})
    )
    tables["pairs"] = summarise_pairs(pairs, None)
    tables["pairs_by_site"] = summarise_pairs(pairs, "site")
    tables["change_calls"] = change_calls(pairs)
    print(
        f"calcimg {calcimg.__version__}: {len(images) // 3} images from {args.pairs} pairs (cohort seed "
        f"{args.seed}), {time.perf_counter() - started:.0f} s, backend {args.backend}"
        + (f", overrides {overrides}" if overrides else "")
    )
    for name, table in tables.items():
        print(f"\n### {name}\n")
        print(table.to_markdown(index=name in ("kind", "over_bone"), floatfmt=".3f"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "calcimg_version": calcimg.__version__,
        "pairs": args.pairs,
        "cohort_seed": args.seed,
        "overrides": overrides,
        "backend": args.backend,
        "tables": {name: json.loads(t.reset_index().to_json(orient="records")) for name, t in tables.items()},
        "pair_rows": json.loads(pairs.to_json(orient="records")),
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
