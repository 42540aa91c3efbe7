"""Segment real films from ``../shared/realdata`` and put their overlays side by side: docs/img/real_overlays.png.

Usage::

    python scripts/make_real_overlays.py [--realdata ../shared/realdata] [--out docs/img/real_overlays.png]

The films themselves are not part of the repository; only this reduced picture of calcimg's result is.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from calcimg.pipeline import segment_image
from calcimg.report.overlay import segmentation_overlay

ROOT = Path(__file__).resolve().parents[1]
FILMS = ("fodicom_GH133_MG_screening.dcm", "wg04_RG2_CR_hip_UNC.dcm", "deiddata_DX_cat_thorax_LAT.dcm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdata", type=Path, default=ROOT.parent / "shared" / "realdata")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "real_overlays.png")
    parser.add_argument("--height", type=int, default=700)
    args = parser.parse_args()
    tiles = []
    for name in FILMS:
        result = segment_image(args.realdata / name)
        reasons = dict(zip(result.rejected["candidate_id"], result.rejected["reason"], strict=True))
        picture = segmentation_overlay(
            result.radiograph.pixels, result.labels, result.candidates, reasons, result.fov.mask, max_side=1400
        )
        scale = args.height / picture.shape[0]
        tiles.append(cv2.resize(picture, (round(picture.shape[1] * scale), args.height), interpolation=cv2.INTER_AREA))
        print(f"{name}: {result.summary['count']} lesion(s)")
    gap = np.full((args.height, 8, 3), 255, np.uint8)
    row = tiles[0]
    for tile in tiles[1:]:
        row = np.hstack([row, gap, tile])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), row)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
