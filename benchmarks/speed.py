"""Speed of ``segment_image`` on phantoms of growing size, as ratios to a floor pass over the same image.

Usage::

    python benchmarks/speed.py [--sizes 1024 2048 4096] [--repeats 3] [--out benchmarks/results/speed.json]

For each size a knee phantom is rendered at that shape (so the pixel spacing shrinks as the size grows: 0.07 mm
at 4096^2); a last row is the largest clinical film at clinical spacing, a 3500 x 4300 pelvis at 0.1 mm. In the
same process and on the same image the script times (medians of ``--repeats`` runs) the floor (``image > t``, one
pass over the pixels) and the whole ``segment_image``, and prints the ratio. Wall-clock times depend on the
machine; ratios much less so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

import calcimg
from calcimg.phantom import PhantomConfig, make_pair
from calcimg.pipeline import segment_image


def median_seconds(function, repeats: int) -> float:
    """Median wall time of ``function()`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "speed.json")
    args = parser.parse_args()

    cases = [(f"{size}x{size}", make_pair(4096, "knee", PhantomConfig(shape=(size, size)))) for size in args.sizes]
    cases.append(("3500x4300 at 0.1 mm", make_pair(4096, "pelvis", PhantomConfig(spacing_mm=(0.1, 0.1)))))
    rows = []
    for name, pair in cases:
        radiograph = pair.pre.radiograph
        pixels = radiograph.pixels
        threshold = int(np.median(pixels))
        floor = median_seconds(lambda p=pixels, t=threshold: p > t, max(args.repeats, 5))
        segment = median_seconds(lambda r=radiograph: segment_image(r), args.repeats)
        rows.append(
            {
                "case": name,
                "pixels": int(pixels.size),
                "spacing_mm": radiograph.spacing_mm[0],
                "floor_ms": floor * 1e3,
                "segment_ms": segment * 1e3,
                "segment_over_floor": segment / floor,
            }
        )
        print(
            f"{name} ({radiograph.spacing_mm[0]:.3f} mm): floor {floor * 1e3:.1f} ms, "
            f"segment_image {segment * 1e3:.0f} ms ({segment / floor:.0f}x the floor)"
        )
    record = {
        "calcimg_version": calcimg.__version__,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
