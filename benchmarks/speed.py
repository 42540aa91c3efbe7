"""Speed and memory of ``segment_image`` and ``compare_pair`` on phantoms, against the floor pass and a naive pipeline.

Usage::

    python benchmarks/speed.py [--sizes 1024 2048 4096 8192] [--repeats 3] [--quick]
                               [--naive-limit-s 60] [--out benchmarks/results/speed.json]

What one run measures (every time is the median of ``--repeats`` runs unless said otherwise; the floor uses at
least 5; all in the same process on the same images):

1. For each size a knee phantom rendered at that shape, ``make_pair(4096, "knee", PhantomConfig(shape=(s, s)))``
   (so the pixel spacing shrinks as the size grows: 0.0733 mm at 4096^2, 0.0367 mm at 8192^2; every size is
   rendered directly, nothing is upscaled); a last row is the largest clinical film at clinical spacing, a
   3500 x 4300 pelvis at 0.1 mm. Per image: the floor (``image > t``, one pass over the pixels) and the whole
   ``segment_image``, their ratio, and the exponent of a log-log least-squares fit of time against pixel count
   over the square sizes.
2. Per-stage times of ``segment_image``. calcimg is not edited: for the timed runs the benchmark temporarily
   replaces the pipeline's helpers (module attributes such as ``calcimg.pipeline._background`` or
   ``calcimg.core.morphology.hysteresis``, looked up at call time by ``detect_candidates`` and
   ``finish_segmentation``) with wrappers that add their wall time to a stage; only the outermost wrapped call on
   the main thread counts, so a helper called inside another is charged to the caller's stage. It is therefore
   ``segment_image`` itself that runs, in its own order; what no wrapper covers (the inline array expressions of
   ``detect_candidates``) is the "other" row. The label map of an instrumented run is checked equal to that of
   a plain run.
3. A naive scikit-image pipeline doing the same steps on the same image: white top-hat with
   ``disk(r, decomposition="sequence")`` where r = background_line_mm / 2 in pixels, Otsu threshold, opening
   by ``disk(2)``, ``ndi.binary_fill_holes``, ``label`` + ``regionprops_table``; sizes in increasing order, a size
   skipped when the previous one's time scaled by pixels x radius predicts more than ``--naive-limit-s``. A
   naive run longer than 30 s is not repeated.
4. Cost against the lesion-scale parameter: ``segment_image`` with background_radius_mm 2 and 10 (and the default)
   on the 4096^2 image, in interleaved rounds so that a change of load hits every radius alike. (Up to Params
   schema 1 the background had no disk, and background_line_mm 2, 10 and 12 were timed.)
5. Peak memory of ``segment_image`` on the 4096^2 image, as a multiple of the input's bytes: the tracemalloc peak
   above the traced memory before the call (numpy arrays, OpenCV outputs included; OpenCV's internal buffers are
   not traced), and the rise of the process's RSS high-water mark (VmHWM) in a fresh subprocess that loads the
   image, warms up on a 512^2 crop, reads VmHWM, runs ``segment_image`` once and reads VmHWM again.
6. ``compare_pair`` against ``segment_image`` of each film, on ``make_pair(4096, "knee")`` at its natural size.

``--quick`` drops 8192^2 and the naive pipeline. Prints markdown tables and writes JSON whose ``rows`` keep the
keys older readers use (case, pixels, spacing_mm, floor_ms, segment_ms, segment_over_floor). Wall-clock times
depend on the machine; ratios much less so.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

import calcimg
from calcimg import pipeline
from calcimg.core import anatomy, backends, candidate_model, measure, morphology
from calcimg.model import Params, Radiograph
from calcimg.phantom import PhantomConfig, make_pair
from calcimg.pipeline import compare_pair, segment_image

DETAIL_SIZE = 4096
NAIVE_NO_REPEAT_S = 30.0
NAIVE_HEADERS = ("naive ms (runs)", "naive / segment")

#: Stages of segment_image and the helpers charged to each, in the order detect_candidates calls them; the last
#: stage is the whole of finish_segmentation (step 6). A helper missing from this calcimg is reported and skipped.
STAGES: tuple[tuple[str, tuple[tuple[Any, str], ...]], ...] = (
    ("input / working image", ((pipeline, "_read_source"), (pipeline, "working_image"))),
    ("field of view", ((pipeline, "field_of_view"),)),
    ("smoothing", ((backends.OpenCVOps, "gaussian"),)),
    ("background", ((pipeline, "_background"),)),
    (
        "noise model and scale",
        (
            (pipeline, "_noise_model"),
            (backends.OpenCVOps, "clip"),
            (backends.OpenCVOps, "local_noise_scale"),
            (backends.OpenCVOps, "local_scale"),
            (backends.OpenCVOps, "exceeds_local_scale"),
        ),
    ),
    (
        "hysteresis / trim",
        ((morphology, "hysteresis"), (measure, "trim_to_peak_fraction"), (backends.OpenCVOps, "hysteresis_trimmed")),
    ),
    (
        "labelling and candidate measurement",
        (
            (measure, "label_objects"),
            (measure.ObjectPixels, "of"),
            (measure.ObjectPixels, "means"),
            (pipeline, "_measure_candidates"),
        ),
    ),
    (
        "context maps (bone, edges, levels, markers, margin)",
        (
            (anatomy, "bone_mask"),
            (pipeline, "_edge_zone"),
            (pipeline, "_tissue_levels"),
            (pipeline, "_saturation_level"),
            (pipeline, "_marker_zones"),
            (pipeline, "_shrink"),
        ),
    ),
    (
        "decisions",
        ((candidate_model, "candidate_features"), (candidate_model, "candidate_scores"), (pipeline, "_decide")),
    ),
    ("lesion measurement (finish_segmentation)", ((pipeline, "finish_segmentation"),)),
)
OTHER_STAGE = "other (inline expressions, unattributed)"


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``function()`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def exponent(pixels: list[int], seconds: list[float]) -> float | None:
    """Slope of the least-squares line of log(seconds) against log(pixels)."""
    if len(pixels) < 2:
        return None
    return float(np.polyfit(np.log(pixels), np.log(seconds), 1)[0])


def px_per_mm(radiograph: Radiograph) -> float:
    """Pixels per mm as calcimg sizes its filters (mean of the two spacings)."""
    return 2.0 / (radiograph.spacing_mm[0] + radiograph.spacing_mm[1])


# --------------------------------------------------------------------------------------------- per-stage timing


class StageClock:
    """Adds the wall time of wrapped calls to stages; only the outermost wrapped call on the main thread counts."""

    def __init__(self, sync: Callable[[], object] | None = None) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.depth = 0
        self.sync = sync  # called at the end of each timed call (a GPU's work is then charged to its step)

    def wrap(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self.depth or threading.current_thread() is not threading.main_thread():
                return function(*args, **kwargs)
            self.depth += 1
            started = time.perf_counter()
            try:
                result = function(*args, **kwargs)
                if self.sync is not None:
                    self.sync()
                return result
            finally:
                self.seconds[stage] += time.perf_counter() - started
                self.depth -= 1

        return timed


def missing_helpers() -> list[str]:
    """The helpers of STAGES that this calcimg does not have."""
    return [
        f"{getattr(owner, '__name__', owner)}.{name}"
        for _, helpers in STAGES
        for owner, name in helpers
        if name not in vars(owner)
    ]


@contextmanager
def instrumented(
    clock: StageClock, stages: tuple[tuple[str, tuple[tuple[Any, str], ...]], ...] = STAGES
) -> Iterator[None]:
    """Replace the helpers of ``stages`` by timed wrappers for the duration of the block, then restore them."""
    saved = []
    try:
        for stage, helpers in stages:
            for owner, name in helpers:
                raw = vars(owner).get(name)
                if raw is None:
                    continue
                if isinstance(raw, (classmethod, staticmethod)):
                    replacement = type(raw)(clock.wrap(stage, raw.__func__))
                else:
                    replacement = clock.wrap(stage, raw)
                saved.append((owner, name, raw))
                setattr(owner, name, replacement)
        yield
    finally:
        for owner, name, raw in reversed(saved):
            setattr(owner, name, raw)


def stage_times(radiograph: Radiograph, repeats: int, reference_labels: np.ndarray) -> dict[str, Any]:
    """Median per-stage seconds of instrumented segment_image runs, and whether their labels equal a plain run's."""
    runs: dict[str, list[float]] = defaultdict(list)
    labels_equal = True
    for _ in range(repeats):
        clock = StageClock()
        with instrumented(clock):
            started = time.perf_counter()
            result = segment_image(radiograph)
            total = time.perf_counter() - started
        labels_equal &= bool(np.array_equal(result.labels, reference_labels))
        for stage, _ in STAGES:
            runs[stage].append(clock.seconds.get(stage, 0.0))
        runs[OTHER_STAGE].append(total - sum(clock.seconds.values()))
        runs["total"].append(total)
        del result
    return {
        "ms": {stage: statistics.median(values) * 1e3 for stage, values in runs.items()},
        "labels_equal_plain_run": labels_equal,
    }


# ------------------------------------------------------------------------------------------------ naive pipeline


def naive_pipeline(image: np.ndarray, radius_px: int) -> dict[str, np.ndarray]:
    """The same steps done the obvious scikit-image way (disk top-hat, Otsu, opening, fill holes, label + props)."""
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu
    from skimage.measure import label, regionprops_table
    from skimage.morphology import disk, opening, white_tophat

    tophat = white_tophat(image, disk(radius_px, decomposition="sequence"))
    mask = tophat > threshold_otsu(tophat)
    mask = opening(mask, disk(2))
    mask = ndi.binary_fill_holes(mask)
    labels = label(mask, connectivity=2)
    return regionprops_table(labels, image, properties=("label", "area", "centroid", "intensity_mean"))


def naive_radius(radiograph: Radiograph, params: Params) -> int:
    return max(1, int(round(params.background_line_mm / 2 * px_per_mm(radiograph))))


def time_naive(image: np.ndarray, radius_px: int, repeats: int) -> tuple[float, int]:
    """Median seconds of the naive pipeline and how many runs it took (one when a run exceeds 30 s)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        naive_pipeline(image, radius_px)
        times.append(time.perf_counter() - started)
        if times[-1] > NAIVE_NO_REPEAT_S:
            break
    return statistics.median(times), len(times)


# -------------------------------------------------------------------------------------------------------- memory


def hwm() -> int:
    """This process's resident-memory high-water mark (VmHWM) in bytes (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child_env() -> dict[str, str]:
    """The environment of a benchmark's child process, with this folder on its path (``from speed import hwm``)."""
    here = str(Path(__file__).resolve().parent)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": here if not path else here + os.pathsep + path}


_CHILD = r"""
import json, sys
import numpy as np
from calcimg.model import Radiograph
from calcimg.pipeline import segment_image
from speed import hwm

pixels = np.load(sys.argv[1])
spacing = tuple(json.loads(sys.argv[2]))
segment_image(Radiograph(pixels[:512, :512].copy(), spacing_mm=spacing, spacing_source="user"))  # lazy imports
radiograph = Radiograph(pixels, spacing_mm=spacing, spacing_source="user")
before = hwm()
segment_image(radiograph)
print(json.dumps({"vmhwm_before": before, "vmhwm_after": hwm()}))
"""


def rss_peak(radiograph: Radiograph) -> dict[str, int]:
    """VmHWM before and after one segment_image in a fresh subprocess (image loaded, imports warmed up)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "image.npy"
        np.save(path, radiograph.pixels)
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path), json.dumps(list(radiograph.spacing_mm))],
            env=child_env(),
            check=True,
            capture_output=True,
            text=True,
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def tracemalloc_peak(radiograph: Radiograph) -> dict[str, int]:
    """Traced bytes before, at peak during, and retained after one segment_image."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = segment_image(radiograph)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return {"traced_before": before, "traced_peak": peak, "traced_after": current}


# --------------------------------------------------------------------------------------------------------- output


def table(headers: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:,.{digits}f}"


def git_state() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], cwd=root, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"commit": head.stdout.strip(), "src_modified": bool(dirty.stdout.strip())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="skip 8192^2 and the naive pipeline")
    parser.add_argument("--naive-limit-s", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "speed.json")
    args = parser.parse_args()
    started_run = time.perf_counter()
    sizes = sorted(set(args.sizes) | {DETAIL_SIZE})
    if args.quick:
        sizes = [size for size in sizes if size < 8192]
    params = Params()
    missing = missing_helpers()
    if missing:
        print(f"helpers not found (their time falls in '{OTHER_STAGE}'): {', '.join(missing)}")

    # warm-up: the first segment_image pays for lazy imports and loading the candidate model
    segment_image(make_pair(4096, "knee", PhantomConfig(shape=(256, 256))).pre.radiograph)

    rows: list[dict[str, Any]] = []
    stages: dict[str, dict[str, Any]] = {}
    detail: Radiograph | None = None
    last_naive: tuple[int, int, float] | None = None  # pixels, radius, seconds
    naive_skipped: list[str] = []
    cases = [(f"{size}x{size}", "knee", PhantomConfig(shape=(size, size))) for size in sizes]
    cases.append(("3500x4300 at 0.1 mm", "pelvis", PhantomConfig(spacing_mm=(0.1, 0.1))))
    for name, site, config in cases:
        made = time.perf_counter()
        radiograph = make_pair(4096, site, config).pre.radiograph
        made = time.perf_counter() - made
        pixels = radiograph.pixels
        square = site == "knee"
        threshold = int(np.median(pixels))
        floor = median_seconds(lambda p=pixels, t=threshold: p > t, max(args.repeats, 5))
        segment = median_seconds(lambda r=radiograph: segment_image(r), args.repeats)
        row: dict[str, Any] = {
            "case": name,
            "pixels": int(pixels.size),
            "spacing_mm": radiograph.spacing_mm[0],
            "floor_ms": floor * 1e3,
            "segment_ms": segment * 1e3,
            "segment_over_floor": segment / floor,
            "input_bytes": int(pixels.nbytes),
            "phantom": f"{site}, rendered directly at this shape",
            "phantom_s": made,
        }
        if square:
            reference = segment_image(radiograph)
            stages[name] = stage_times(radiograph, args.repeats, reference.labels)
            row["lesions"] = int(reference.summary["count"])
            del reference
            radius = naive_radius(radiograph, params)
            row["naive_radius_px"] = radius
            predicted = None
            if last_naive is not None:
                predicted = last_naive[2] * pixels.size / last_naive[0] * radius / last_naive[1]
            if args.quick:
                pass
            elif predicted is not None and predicted > args.naive_limit_s:
                naive_skipped.append(f"{name}: predicted {predicted:.0f} s > {args.naive_limit_s:.0f} s")
            else:
                naive, runs = time_naive(pixels, radius, args.repeats)
                last_naive = (int(pixels.size), radius, naive)
                row.update(naive_ms=naive * 1e3, naive_runs=runs, naive_over_segment=naive / segment)
            if pixels.shape == (DETAIL_SIZE, DETAIL_SIZE):
                detail = radiograph
        rows.append(row)
        print(
            f"{name} ({radiograph.spacing_mm[0]:.4f} mm, phantom {made:.1f} s): floor {floor * 1e3:.2f} ms, "
            f"segment_image {segment * 1e3:.0f} ms"
            + (f", naive {row['naive_ms'] / 1e3:.1f} s" if "naive_ms" in row else ""),
            flush=True,
        )
        del radiograph, pixels
        gc.collect()

    square_rows = [row for row in rows if row["case"] in stages]
    scaling = {
        "sizes": [row["case"] for row in square_rows],
        "segment_exponent": exponent([r["pixels"] for r in square_rows], [r["segment_ms"] for r in square_rows]),
        "floor_exponent": exponent([r["pixels"] for r in square_rows], [r["floor_ms"] for r in square_rows]),
        "segment_step_exponents": {
            f"{a['case']} to {b['case']}": exponent([a["pixels"], b["pixels"]], [a["segment_ms"], b["segment_ms"]])
            for a, b in itertools.pairwise(square_rows)
        },
        "stage_exponents": {
            stage: exponent(
                [r["pixels"] for r in square_rows], [max(stages[r["case"]]["ms"][stage], 1e-6) for r in square_rows]
            )
            for stage in stages[square_rows[0]["case"]]["ms"]
        },
    }

    # lesion scale, memory: on the 4096^2 image
    assert detail is not None
    lesion_scale = {}
    radii = tuple(dict.fromkeys((2.0, 10.0, params.background_radius_mm)))
    # Interleaved rounds (2, 10 mm, then again): a change of the shared machine's load hits every radius alike.
    runs: dict[float, list[float]] = {mm: [] for mm in radii}
    for _ in range(args.repeats):
        for mm in radii:
            scaled = dataclasses.replace(params, background_radius_mm=mm)
            runs[mm].append(median_seconds(lambda p=scaled: segment_image(detail, p), 1))
    for mm in radii:
        seconds = statistics.median(runs[mm])
        lesion_scale[f"{mm:g}"] = {"background_radius_px": mm * px_per_mm(detail), "segment_ms": seconds * 1e3}
    lesion_ratio = lesion_scale["10"]["segment_ms"] / lesion_scale["2"]["segment_ms"]
    print("lesion scale done", flush=True)

    traced = tracemalloc_peak(detail)
    rss = rss_peak(detail)
    input_bytes = detail.pixels.nbytes
    memory = {
        "case": f"{DETAIL_SIZE}x{DETAIL_SIZE}",
        "input_bytes": int(input_bytes),
        **traced,
        "tracemalloc_peak_over_input": (traced["traced_peak"] - traced["traced_before"]) / input_bytes,
        "tracemalloc_retained_over_input": (traced["traced_after"] - traced["traced_before"]) / input_bytes,
        **rss,
        "rss_peak_over_input": (rss["vmhwm_after"] - rss["vmhwm_before"]) / input_bytes,
    }
    print("memory done", flush=True)

    pair = make_pair(4096, "knee")
    pre, post = pair.pre.radiograph, pair.post.radiograph
    del pair
    compare_s = median_seconds(lambda: compare_pair(pre, post), args.repeats)
    pre_s = median_seconds(lambda: segment_image(pre), args.repeats)
    post_s = median_seconds(lambda: segment_image(post), args.repeats)
    comparison = {
        "pair": 'make_pair(4096, "knee")',
        "shape": list(pre.shape),
        "spacing_mm": pre.spacing_mm[0],
        "compare_ms": compare_s * 1e3,
        "segment_pre_ms": pre_s * 1e3,
        "segment_post_ms": post_s * 1e3,
        "compare_over_segment_pre": compare_s / pre_s,
        "compare_over_segment_mean": compare_s / ((pre_s + post_s) / 2),
    }

    # ---------------------------------------------------------------------------------------------- print
    detail_name = f"{DETAIL_SIZE}x{DETAIL_SIZE}"
    detail_row = next(row for row in rows if row["case"] == detail_name)
    print("\n### segment_image against the floor pass (`img > t`) and the naive scikit-image pipeline\n")
    print(
        table(
            [*("case", "spacing mm", "floor ms", "segment_image ms", "segment / floor"), *NAIVE_HEADERS],
            [
                [
                    row["case"],
                    f"{row['spacing_mm']:.4f}",
                    fmt(row["floor_ms"], 2),
                    fmt(row["segment_ms"]),
                    fmt(row["segment_over_floor"], 0),
                    f"{fmt(row['naive_ms'], 0)} ({row['naive_runs']})" if "naive_ms" in row else "not run",
                    fmt(row.get("naive_over_segment"), 1),
                ]
                for row in rows
            ],
        )
    )
    print(
        f"\nFitted exponent of time vs pixels ({scaling['sizes'][0]} to {scaling['sizes'][-1]}): segment_image "
        f"{fmt(scaling['segment_exponent'], 3)}, floor {fmt(scaling['floor_exponent'], 3)} (the smaller images fit in "
        "cache). segment_image between consecutive sizes: "
        + ", ".join(f"{k} {fmt(v, 2)}" for k, v in scaling["segment_step_exponents"].items())
        + f". Naive top-hat radius "
        f"= background_line_mm / 2 = {params.background_line_mm / 2:g} mm in px per size; "
        + ("naive skipped (--quick)." if args.quick else f"naive skipped: {'; '.join(naive_skipped) or 'none'}.")
    )

    print(f"\n### segment_image per stage (ms, medians of {args.repeats} instrumented runs)\n")
    stage_names = list(stages[detail_name]["ms"])
    detail_total = stages[detail_name]["ms"]["total"]
    print(
        table(
            ["stage", *[f"{case} ms" for case in stages], f"% of {detail_name}", "exponent"],
            [
                [
                    stage,
                    *[fmt(stages[case]["ms"][stage]) for case in stages],
                    fmt(100 * stages[detail_name]["ms"][stage] / detail_total, 1),
                    fmt(scaling["stage_exponents"][stage], 2),
                ]
                for stage in stage_names
            ]
            + [["segment_image, plain runs", *[fmt(row["segment_ms"]) for row in square_rows], "", ""]],
        )
    )
    equal = all(stages[case]["labels_equal_plain_run"] for case in stages)
    print(f"\nInstrumented label maps equal to plain runs: {equal}.")

    print(f"\n### Cost against the lesion-scale parameter ({detail_name})\n")
    print(
        table(
            ["background_radius_mm", "radius px", "segment_image ms"],
            [[mm, fmt(v["background_radius_px"]), fmt(v["segment_ms"])] for mm, v in lesion_scale.items()],
        )
    )
    print(f"\n10 mm / 2 mm: {lesion_ratio:.2f}")

    print(f"\n### Peak memory of segment_image ({detail_name}, input {input_bytes / 2**20:.0f} MiB)\n")
    print(
        table(
            ["measure", "MiB", "x input"],
            [
                [
                    "tracemalloc peak above before",
                    fmt((traced["traced_peak"] - traced["traced_before"]) / 2**20),
                    fmt(memory["tracemalloc_peak_over_input"], 2),
                ],
                [
                    "tracemalloc retained by the result",
                    fmt((traced["traced_after"] - traced["traced_before"]) / 2**20),
                    fmt(memory["tracemalloc_retained_over_input"], 2),
                ],
                [
                    "VmHWM rise, fresh process",
                    fmt((rss["vmhwm_after"] - rss["vmhwm_before"]) / 2**20),
                    fmt(memory["rss_peak_over_input"], 2),
                ],
                ["VmHWM before (imports + image)", fmt(rss["vmhwm_before"] / 2**20), ""],
            ],
        )
    )

    print(f"\n### compare_pair against segment_image ({comparison['pair']}, {pre.shape[0]}x{pre.shape[1]})\n")
    print(
        table(
            ["compare_pair ms", "segment pre ms", "segment post ms", "compare / segment pre", "compare / mean"],
            [
                [
                    fmt(comparison["compare_ms"]),
                    fmt(comparison["segment_pre_ms"]),
                    fmt(comparison["segment_post_ms"]),
                    fmt(comparison["compare_over_segment_pre"], 2),
                    fmt(comparison["compare_over_segment_mean"], 2),
                ]
            ],
        )
    )

    naive_rows = [row for row in square_rows if "naive_over_segment" in row]
    naive_row = max(naive_rows, key=lambda row: row["pixels"]) if naive_rows else None
    seg_exp = scaling["segment_exponent"]
    targets = [
        {
            "target": f"segment_image {detail_name} <= 40x floor",
            "measured": f"{detail_row['segment_over_floor']:.0f}x",
            "met": detail_row["segment_over_floor"] <= 40,
        },
        {
            "target": "naive / segment_image >= 100",
            "measured": f"{naive_row['naive_over_segment']:.1f}x at {naive_row['case']}" if naive_row else "not run",
            "met": naive_row["naive_over_segment"] >= 100 if naive_row else None,
        },
        {
            "target": f"exponent 0.9-1.1 ({scaling['sizes'][0]} to {scaling['sizes'][-1]})",
            "measured": fmt(seg_exp, 3),
            "met": seg_exp is not None and 0.9 <= seg_exp <= 1.1,
        },
        {
            "target": "background 2 mm vs 10 mm within 20%",
            "measured": f"{lesion_ratio:.2f}",
            "met": max(lesion_ratio, 1 / lesion_ratio) <= 1.2,
        },
        {
            "target": "peak additional memory <= 6x input (RSS; tracemalloc)",
            "measured": f"{memory['rss_peak_over_input']:.2f}x; {memory['tracemalloc_peak_over_input']:.2f}x",
            "met": max(memory["rss_peak_over_input"], memory["tracemalloc_peak_over_input"]) <= 6,
        },
        {
            "target": "compare_pair <= 2.5x segment_image",
            "measured": f"{comparison['compare_over_segment_pre']:.2f}x",
            "met": comparison["compare_over_segment_pre"] <= 2.5,
        },
    ]
    print("\n### Issue 5 targets\n")
    print(
        table(
            ["target", "measured", "met"],
            [[t["target"], t["measured"], {True: "yes", False: "no", None: "-"}[t["met"]]] for t in targets],
        )
    )

    elapsed = time.perf_counter() - started_run
    record = {
        "calcimg_version": calcimg.__version__,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "rows": rows,
        "git": git_state(),
        "settings": {"repeats": args.repeats, "quick": args.quick, "naive_limit_s": args.naive_limit_s},
        "scaling": scaling,
        "stages": stages,
        "stage_helpers": {stage: [f"{getattr(o, '__name__', o)}.{n}" for o, n in helpers] for stage, helpers in STAGES},
        "missing_helpers": missing,
        "naive": {
            "steps": 'white_tophat(disk(r, decomposition="sequence")), threshold_otsu, opening(disk(2)), '
            "ndi.binary_fill_holes, label(connectivity=2) + regionprops_table",
            "skipped": ["all (--quick)"] if args.quick else naive_skipped,
        },
        "lesion_scale": {"case": detail_name, "by_background_radius_mm": lesion_scale, "ratio_10_over_2": lesion_ratio},
        "memory": memory,
        "compare_pair": comparison,
        "targets": targets,
        "run_seconds": elapsed,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nrun took {elapsed:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
