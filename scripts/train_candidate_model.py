"""Fit the candidate model (``src/calcimg/core/candidate_model.json``) on phantoms with exact truth.

Usage::

    python scripts/train_candidate_model.py [--cohort-seed 7000] [--pairs 32]

Every candidate that passes the rule-based decisions of ``segment_image`` (field, body, marker, size, ridge) is
labelled a deposit when at least half of its pixels lie within 1 mm of a truth lesion, and a logistic regression
(scikit-learn, standardised features, balanced classes) is fitted on the features of
:mod:`calcimg.core.candidate_model`. The training cohort seed must differ from the accuracy benchmark's (50000).
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

import calcimg
from calcimg.core.candidate_model import FEATURES, candidate_features
from calcimg.model import Params
from calcimg.phantom import SITES, make_pair
from calcimg.phantom.writer import pair_seed
from calcimg.pipeline import segment_image

OUT = Path(__file__).resolve().parents[1] / "src" / "calcimg" / "core" / "candidate_model.json"


def collect(task: tuple[int, int]) -> pd.DataFrame:
    """Features and labels of the candidates of both visits of one pair (the model switched off)."""
    cohort, index = task
    pair = make_pair(pair_seed(cohort, index), SITES[index % len(SITES)])
    params = replace(Params(), min_score=0.0)
    frames = []
    for visit in (pair.pre, pair.post):
        result = segment_image(visit.radiograph, params)
        table = result.candidate_table
        table = table[table["reason"] == "accepted"]
        px_per_mm = 1.0 / visit.spacing_mm
        radius = int(np.ceil(px_per_mm))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        near = cv2.dilate((visit.identity_labels > 0).astype(np.uint8), kernel) > 0
        n = int(result.candidates.max())
        inside = np.bincount(result.candidates[near], minlength=n + 1)[1:]
        levels = result.summary["thresholds"]["tissue_levels"]
        features = candidate_features(table, px_per_mm, levels)
        features["label"] = inside[table["candidate_id"].to_numpy() - 1] >= 0.5 * table["area_px"].to_numpy()
        frames.append(features)
    return pd.concat(frames, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort-seed", type=int, default=7000)
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    with ProcessPoolExecutor(args.jobs) as pool:
        data = pd.concat(pool.map(collect, [(args.cohort_seed, k) for k in range(args.pairs)]), ignore_index=True)
    x, y = data.loc[:, list(FEATURES)].to_numpy(float), data["label"].to_numpy(bool)
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000).fit(scaler.transform(x), y)
    record = {
        "features": list(FEATURES),
        "mean": scaler.mean_.tolist(),
        "scale": scaler.scale_.tolist(),
        "coef": model.coef_[0].tolist(),
        "intercept": float(model.intercept_[0]),
        "training": {
            "script": "scripts/train_candidate_model.py",
            "cohort_seed": args.cohort_seed,
            "pairs": args.pairs,
            "candidates": int(len(y)),
            "deposits": int(y.sum()),
            "calcimg_version": calcimg.__version__,
            "scikit_learn_version": sklearn.__version__,
        },
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{len(y)} candidates ({int(y.sum())} deposits) from {args.pairs} pairs; wrote {args.out}")
    for name, weight in sorted(zip(FEATURES, model.coef_[0], strict=True), key=lambda item: -abs(item[1])):
        print(f"  {name:22s} {weight:+.3f}")


if __name__ == "__main__":
    main()
