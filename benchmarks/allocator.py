"""What keeping freed large arrays in the heap (calcimg's workers and commands) does to speed and memory.

Usage::

    python benchmarks/allocator.py [--rounds 3] [--repeats 5] [--out benchmarks/results/allocator.json]

``calcimg.batch`` workers and the ``calcimg segment|compare|batch`` commands call
:func:`calcimg._allocator.keep_large_arrays_in_heap`. This benchmark runs, in fresh processes that alternate
between the two settings (so that a change of load on this shared machine hits both alike), ``segment_image`` on the
3500 x 4300 pelvis phantom at 0.1 mm (``--repeats`` runs after a warm-up) and ``compare_pair`` on its pair (3 runs),
and reads each process's resident-memory high-water mark before and after (VmHWM, after the phantom was made).
Prints the medians over rounds and their ratios, and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from speed import child_env

CHILD = """
import json, sys
from calcimg._allocator import keep_large_arrays_in_heap
if sys.argv[1] == "kept":
    assert keep_large_arrays_in_heap()
from calcimg.phantom import PhantomConfig, make_pair
from calcimg.pipeline import compare_pair, segment_image
from speed import hwm, median_seconds

pair = make_pair(4096, "pelvis", PhantomConfig(spacing_mm=(0.1, 0.1)))
pre, post = pair.pre.radiograph, pair.post.radiograph
before = hwm()
segment_image(pre)
segment = median_seconds(lambda: segment_image(pre), int(sys.argv[2]))
compare = median_seconds(lambda: compare_pair(pre, post), 3)
print(json.dumps({"segment_s": segment, "compare_s": compare, "hwm_before": before, "hwm_after": hwm(),
                  "shape": list(pre.shape)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "allocator.json")
    args = parser.parse_args()
    started = time.perf_counter()
    runs: dict[str, list[dict]] = {"default": [], "kept": []}
    for _ in range(args.rounds):
        for mode in runs:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, mode, str(args.repeats)],
                env=child_env(),
                capture_output=True,
                text=True,
                check=True,
            )
            runs[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))

    def med(mode: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[mode])

    def rise(mode: str) -> float:
        return statistics.median((run["hwm_after"] - run["hwm_before"]) / 2**20 for run in runs[mode])

    shape = "x".join(map(str, runs["default"][0]["shape"]))
    print(f"{args.rounds} rounds, fresh process each; {shape} pelvis phantom at 0.1 mm\n")
    print("| allocator | segment_image ms | compare_pair ms | VmHWM rise MiB |")
    print("|---|---|---|---|")
    for mode in runs:
        segment, compare = 1e3 * med(mode, "segment_s"), 1e3 * med(mode, "compare_s")
        print(f"| {mode} | {segment:,.1f} | {compare:,.1f} | {rise(mode):,.0f} |")
    print(
        f"\nkept / default: segment {med('kept', 'segment_s') / med('default', 'segment_s'):.3f}, "
        f"compare {med('kept', 'compare_s') / med('default', 'compare_s'):.3f}"
    )
    record = {"rounds": args.rounds, "repeats": args.repeats, "runs": runs, "seconds": time.perf_counter() - started}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nrun took {record['seconds']:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
