"""Throughput of ``calcimg batch``: images per minute with ``--jobs 1``, ``--jobs 2`` and a 2-worker Dask
``LocalCluster`` on the same phantom cohort.

Usage::

    python benchmarks/batch.py [--pairs 8] [--seed 3] [--out benchmarks/results/batch.json]

The cohort is written once (phantom pairs, PNG); each configuration then runs the whole batch into a fresh
output folder, so nothing is resumed. Images per minute count both films of every pair. The speed-up is against
``--jobs 1`` on one core (OpenCV set to one thread, so ``compare_pair`` runs its two films one after the other):
near-linear scaling on two cores is >= 1.7x. A plain ``--jobs 1`` run, which lets OpenCV and ``compare_pair``
use both cores, is shown beside it. Prints a markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2

import calcimg
from calcimg.batch import BatchOptions, build_plan, run_batch
from calcimg.phantom import write_phantoms


def run_config(study: Path, out: Path, jobs: int | None = None, scheduler: object = None) -> dict[str, float]:
    """Run one batch and return its wall time and throughput."""
    plan = build_plan(study, pseudonym_key="benchmark")
    options = BatchOptions(out_dir=out, jobs=jobs, scheduler=scheduler, quiet=True, default_key=False)
    started = time.perf_counter()
    result = run_batch(plan, options)
    seconds = time.perf_counter() - started
    images = 2 * len(plan.pairs) + len(plan.singles)
    if not result.ok:
        raise SystemExit(f"the batch failed: {result.problems}")
    return {"seconds": seconds, "images": images, "images_per_minute": 60.0 * images / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "batch.json")
    args = parser.parse_args()
    logging.getLogger("distributed").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "study"
        write_phantoms(study, pairs=args.pairs, seed=args.seed, fmt="png")
        # One core: the scaling baseline. A plain --jobs 1 run lets OpenCV (and compare_pair's second thread) use
        # every core of the machine, so it is shown too.
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        rows = {"--jobs 1, one core (OpenCV 1 thread)": run_config(study, Path(tmp) / "j1c", jobs=1)}
        cv2.setNumThreads(threads)
        rows["--jobs 1"] = run_config(study, Path(tmp) / "j1", jobs=1)
        rows["--jobs 2"] = run_config(study, Path(tmp) / "j2", jobs=2)
        from dask.distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        with cluster, Client(cluster) as client:
            rows["Dask LocalCluster, 2 workers"] = run_config(study, Path(tmp) / "dask", scheduler=client)
    base = rows["--jobs 1, one core (OpenCV 1 thread)"]["images_per_minute"]
    print(f"| configuration | images | seconds | images/min | speed-up |  ({os.cpu_count()} cores)")
    print("|---|---|---|---|---|")
    for name, row in rows.items():
        row["speedup"] = row["images_per_minute"] / base
        figures = f"{row['images']} | {row['seconds']:.1f} | {row['images_per_minute']:.1f} | {row['speedup']:.2f}x"
        print(f"| {name} | {figures} |")
    record = {
        "calcimg_version": calcimg.__version__,
        "pairs": args.pairs,
        "seed": args.seed,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
