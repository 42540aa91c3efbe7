"""Regenerate ``sample_images/``: small phantom pairs, one per site and format, with their truth.

Usage::

    python scripts/make_sample_images.py [--out sample_images]

The output is deterministic: running it again gives the same bytes (``tests/test_sample_images.py`` checks that
the committed files still match the generator).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from calcimg.phantom import PhantomConfig, make_pair
from calcimg.phantom.writer import write_pair

#: (subject, site, seed, format, compress): one pair per format, small enough to keep the repository light.
SAMPLES = (
    ("S01", "hand", 101, "dcm", True),
    ("S02", "forearm", 102, "png", False),
    ("S03", "knee", 104, "tif", False),
)

#: Pixel spacing range of the samples: the coarse end of clinical practice, to keep the files small.
SPACING_MM = (0.18, 0.2)


def make_samples(out: Path) -> list[dict]:
    """Write every sample pair into ``out`` and return what :func:`write_pair` returned for each."""
    config = PhantomConfig(spacing_mm=SPACING_MM)
    written = []
    for subject, site, seed, fmt, compress in SAMPLES:
        pair = make_pair(seed, site, config)
        written.append(write_pair(pair, out, subject, fmt, compress=compress))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "sample_images")
    args = parser.parse_args()
    for item in make_samples(args.out):
        print(f"{item['subject']} {item['site']}: {Path(item['pre']).name}, {Path(item['post']).name}")


if __name__ == "__main__":
    main()
