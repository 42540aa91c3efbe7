"""Screenshot of the batch report of the sample pairs in a real (headless) browser: docs/img/batch_report.png.

Usage::

    python scripts/make_report_screenshot.py [--browser chromium]

Runs ``calcimg batch sample_images`` into a temporary folder, opens its ``report.html`` in headless Chromium (no
network: the page is self-contained) and writes the screenshot. Needs a Chromium binary (``apt-get install
chromium`` on Debian).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2

from calcimg.cli import main as calcimg_main

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img" / "batch_report.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--browser", default="chromium", help="Chromium executable (default: chromium)")
    parser.add_argument("--size", default="1400,2600", help="window width,height in CSS pixels")
    args = parser.parse_args()
    browser = shutil.which(args.browser)
    if browser is None:
        sys.exit(f"no {args.browser} on PATH (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        if calcimg_main(["batch", str(ROOT / "sample_images"), "--out", str(results), "-q"]) != 0:
            sys.exit("the batch failed")
        shot = Path(tmp) / "report.png"
        command = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--window-size={args.size}", f"--screenshot={shot}", (results / "report.html").as_uri(),
        ]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        picture = cv2.imread(str(shot))
        # Half size keeps the repository small and the page readable.
        small = cv2.resize(picture, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(OUT), small)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
