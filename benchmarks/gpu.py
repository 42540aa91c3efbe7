"""Speed and agreement of the CuPy backend (a CUDA GPU) against the CPU backend (OpenCV), in the same process.

Usage::

    python benchmarks/gpu.py [--sizes 4096 8192] [--repeats 5] [--out benchmarks/results/gpu.json]

Needs CuPy and a CUDA GPU; never run by the tests or CI. On the same images as ``benchmarks/speed.py`` (knee
phantoms rendered at each size, and the 3500 x 4300 pelvis at 0.1 mm), it times, as medians of ``--repeats``
runs after one warm-up run of each backend (CuPy compiles its kernels on first use):

1. "maps": the working image and the field of view (on the CPU for both), then ``calcimg.pipeline._candidate_maps``
   (smoothing, response, noise model and local scale, seeds, extent, hysteresis and trim, with the reduced-grid
   background and mass channel on the CPU for both; host-to-device and back included), on ``OpenCVOps`` and on
   ``ArrayModuleOps("cupy")``; with ``--steps``, each step of ``_candidate_maps`` alone on the first size;
2. the whole ``segment_image`` with ``backend="cpu"`` and ``backend="cupy"``;
3. ``compare_pair`` on ``make_pair(4096, "knee")`` with each backend.

For each image it also reports how far the results differ: the lesions found by each, the Dice coefficient of
their lesion masks, and the share of pixels where the candidate masks differ (the GPU's Gaussian rounds a float
kernel where OpenCV's rounds a fixed-point one, so a pixel at a threshold can fall the other way). Prints markdown
tables and writes JSON. The CPU times are those of the GPU machine's own processor, with OpenCV's default threads.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from speed import StageClock, fmt, git_state, instrumented, median_seconds, table

import calcimg
from calcimg import pipeline
from calcimg.core import backends, grid
from calcimg.core.fov import field_of_view
from calcimg.core.scoring import score_segmentation
from calcimg.model import Params, Radiograph
from calcimg.phantom import PhantomConfig, make_pair


def candidate_maps(radiograph: Radiograph, ops: Any, params: Params) -> tuple[np.ndarray, ...]:
    """The backend's part of detection on one film (``pipeline._candidate_maps``), from the working image on."""
    image, _ = pipeline.working_image(radiograph.pixels)
    fov = field_of_view(image)
    return pipeline._candidate_maps(image, fov.mask, params, pipeline._pixels_per_mm(radiograph), ops)


#: The steps of ``pipeline._candidate_maps`` timed one by one (``--steps``): the backend's methods and the helpers
#: that stay on the CPU for both backends.
STEP_HELPERS = (
    "gaussian", "subtract", "clip", "local_noise_scale", "above", "hysteresis", "trim_to_peak_fraction", "to_device",
    "to_host",
)  # fmt: skip
CPU_HELPERS = ((pipeline, "_background"), (pipeline, "_noise_model"), (pipeline, "_mass_regions"), (grid, "grow_mask"))


def step_times(radiograph: Radiograph, ops: Any, params: Params, repeats: int, sync: Any) -> dict[str, float]:
    """Median ms of each step of ``_candidate_maps`` (``sync()`` ends each, so that GPU work is charged to its step)."""
    image, _ = pipeline.working_image(radiograph.pixels)
    fov_mask = field_of_view(image).mask
    px_per_mm = pipeline._pixels_per_mm(radiograph)
    owners = [(type(ops), name) for name in STEP_HELPERS] + list(CPU_HELPERS)
    stages = tuple((name.lstrip("_"), ((owner, name),)) for owner, name in owners)
    runs: list[dict[str, float]] = []
    for _ in range(repeats + 1):  # the first run warms up
        clock = StageClock(sync)
        with instrumented(clock, stages):
            sync()
            started = time.perf_counter()
            pipeline._candidate_maps(image, fov_mask, params, px_per_mm, ops)
            total = time.perf_counter() - started
        runs.append({**{stage: clock.seconds.get(stage, 0.0) for stage, _ in stages}, "total": total})
    return {key: 1e3 * float(np.median([run[key] for run in runs[1:]])) for key in runs[0]}


def compare_image(name: str, radiograph: Radiograph, repeats: int, params: Params, module: str) -> dict[str, Any]:
    """Times and agreement of the two backends on one film."""
    cpu_ops, gpu_ops = backends.OpenCVOps(), backends.ArrayModuleOps(module)
    cpu_maps = candidate_maps(radiograph, cpu_ops, params)  # warm-ups, kept for the agreement
    gpu_maps = candidate_maps(radiograph, gpu_ops, params)
    row: dict[str, Any] = {"case": name, "shape": list(radiograph.shape)}
    row["maps_cpu_ms"] = 1e3 * median_seconds(lambda: candidate_maps(radiograph, cpu_ops, params), repeats)
    row["maps_gpu_ms"] = 1e3 * median_seconds(lambda: candidate_maps(radiograph, gpu_ops, params), repeats)
    cpu = pipeline.segment_image(radiograph, params)
    gpu = pipeline.segment_image(radiograph, params, backend=module)
    row["segment_cpu_ms"] = 1e3 * median_seconds(lambda: pipeline.segment_image(radiograph, params), repeats)
    row["segment_gpu_ms"] = 1e3 * median_seconds(
        lambda: pipeline.segment_image(radiograph, params, backend=module), repeats
    )
    row["lesions_cpu"], row["lesions_gpu"] = len(cpu.lesions), len(gpu.lesions)
    row["candidates_cpu"], row["candidates_gpu"] = len(cpu.candidate_table), len(gpu.candidate_table)
    row["lesion_dice"] = score_segmentation(cpu.labels, gpu.labels, fp_tolerance_px=0)["dice"]
    row["candidate_pixels_differing"] = float(np.mean(cpu_maps[4] != gpu_maps[4]))
    # Where a window keeps one pixel more or less, its scale can change a lot: a share, not a maximum.
    row["scale_pixels_over_1pct"] = float(np.mean(np.abs(cpu_maps[3] - gpu_maps[3]) > 0.01 * cpu_maps[3]))
    row["response_pixels_differing"] = float(np.mean(cpu_maps[1] != gpu_maps[1]))
    return row


def compare_pairs(repeats: int, params: Params, module: str) -> dict[str, Any]:
    """``compare_pair`` with each backend on make_pair(4096, "knee")."""
    pair = make_pair(4096, "knee")
    pre, post = pair.pre.radiograph, pair.post.radiograph
    results = {name: pipeline.compare_pair(pre, post, params, backend=name) for name in ("cpu", module)}
    row: dict[str, Any] = {"shape": list(pre.shape)}
    for name, key in (("cpu", "cpu"), (module, "gpu")):
        row[f"{key}_ms"] = 1e3 * median_seconds(
            lambda n=name: pipeline.compare_pair(pre, post, params, backend=n), repeats
        )
        summary = results[name].summary
        row[f"{key}_summary"] = {k: summary[k] for k in ("pre_count", "post_count", "area_change_pct", "category")}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "gpu.json")
    parser.add_argument("--steps", action="store_true", help="also time each step of the moved part (first size)")
    parser.add_argument(
        "--module", default="cupy", choices=("cupy", "numpy"), help="numpy: a dry run of this script without a GPU"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    params = Params()
    if args.module == "cupy":
        import cupy

        device, version = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode(), cupy.__version__
        sync = cupy.cuda.Device().synchronize
    else:
        device, version = "none (numpy backend on the CPU)", "-"

        def sync() -> None:
            return None

    cases = [(f"{s}x{s}", make_pair(4096, "knee", PhantomConfig(shape=(s, s))).pre.radiograph) for s in args.sizes]
    cases.append(
        ("3500x4300 at 0.1 mm", make_pair(4096, "pelvis", PhantomConfig(spacing_mm=(0.1, 0.1))).pre.radiograph)
    )
    steps = {}
    if args.steps:
        steps = {
            "cpu": step_times(cases[0][1], backends.OpenCVOps(), params, args.repeats, lambda: None),
            "gpu": step_times(cases[0][1], backends.ArrayModuleOps(args.module), params, args.repeats, sync),
        }
    rows = [compare_image(name, radiograph, args.repeats, params, args.module) for name, radiograph in cases]
    pair = compare_pairs(args.repeats, params, args.module)

    print(f"calcimg {calcimg.__version__}, GPU {device}, CuPy {version}, OpenCV threads {cv2.getNumThreads()}")
    print("\n### Time (ms, medians)\n")
    print(
        table(
            ["case", "maps CPU", "maps GPU", "maps speed-up", "segment CPU", "segment GPU", "segment speed-up"],
            [
                [
                    r["case"],
                    fmt(r["maps_cpu_ms"]),
                    fmt(r["maps_gpu_ms"]),
                    fmt(r["maps_cpu_ms"] / r["maps_gpu_ms"], 2),
                    fmt(r["segment_cpu_ms"]),
                    fmt(r["segment_gpu_ms"]),
                    fmt(r["segment_cpu_ms"] / r["segment_gpu_ms"], 2),
                ]
                for r in rows
            ],
        )
    )
    print("\n### Agreement of the GPU with the CPU\n")
    print(
        table(
            ["case", "lesions CPU / GPU", "candidates CPU / GPU", "lesion Dice", "candidate px differing",
             "response px differing", "scale px off by >1 %"],
            [
                [
                    r["case"],
                    f"{r['lesions_cpu']} / {r['lesions_gpu']}",
                    f"{r['candidates_cpu']} / {r['candidates_gpu']}",
                    f"{r['lesion_dice']:.4f}",
                    f"{r['candidate_pixels_differing']:.2e}",
                    f"{r['response_pixels_differing']:.2e}",
                    f"{r['scale_pixels_over_1pct']:.2e}",
                ]
                for r in rows
            ],
        )
    )  # fmt: skip
    if steps:
        print(f"\n### Steps of the moved part on {cases[0][0]} (ms, medians; the first four rows stay on the CPU)\n")
        keys = [name.lstrip("_") for _, name in CPU_HELPERS] + list(STEP_HELPERS) + ["total"]
        print(
            table(
                ["step", "CPU backend", "GPU backend"], [[k, fmt(steps["cpu"][k]), fmt(steps["gpu"][k])] for k in keys]
            )
        )
    print("\n### compare_pair on make_pair(4096, 'knee')\n")
    print(
        table(
            ["shape", "CPU ms", "GPU ms", "speed-up", "CPU summary", "GPU summary"],
            [
                [
                    "x".join(map(str, pair["shape"])),
                    fmt(pair["cpu_ms"]),
                    fmt(pair["gpu_ms"]),
                    fmt(pair["cpu_ms"] / pair["gpu_ms"], 2),
                    pair["cpu_summary"],
                    pair["gpu_summary"],
                ]
            ],
        )
    )
    record = {
        "calcimg_version": calcimg.__version__,
        "git": git_state(),
        "machine": {"processor": platform.processor(), "gpu": device, "cupy": version},
        "module": args.module,
        "opencv_threads": cv2.getNumThreads(),
        "repeats": args.repeats,
        "rows": rows,
        "steps": steps,
        "compare_pair": pair,
        "run_seconds": time.perf_counter() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nrun took {record['run_seconds']:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
