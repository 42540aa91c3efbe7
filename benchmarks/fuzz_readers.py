"""Mutation fuzzer for the DICOM and raster readers, run for a fixed budget outside CI.

Valid seed files (small synthetic DICOM in several encodings, PNG, TIFF, JPEG) are mutated at random (bit flips,
byte overwrites, "interesting" integers written over header fields, truncation, chunk deletion and duplication)
and decoded with the same dispatch as :func:`calcimg.io.load_radiograph`. Anything but a result or an
:class:`calcimg.errors.InputError` is a finding; so is a decode slower than ``--slow`` seconds (a hang) and a
MemoryError under the address-space limit. Findings are written to ``--out`` with their traceback, and a JSON
summary is printed.

Usage::

    python benchmarks/fuzz_readers.py --seconds 300 --out benchmarks/results/fuzz
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import resource
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path

import cv2
import numpy as np
import tifffile
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from calcimg.errors import InputError
from calcimg.io import DEFAULT_MAX_PIXELS, _decode

INTERESTING = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF, 60000]


class Hang(KeyboardInterrupt):
    """Raised by the alarm when one decode takes too long (a KeyboardInterrupt, so that no reader turns it into
    an InputError)."""


def _dicom(syntax: str, pixels: np.ndarray, **elements: object) -> bytes:
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = syntax
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = "1.2.3.4"
    ds.Modality = "CR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [0.1, 0.1]
    for key, value in elements.items():
        setattr(ds, key, value)
    if syntax == RLELossless:
        ds.compress(RLELossless, pixels)
    else:
        ds.PixelData = pixels.astype("<u2").tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=syntax == ImplicitVRLittleEndian, little_endian=syntax != ExplicitVRBigEndian)
    return buffer.getvalue()


def seeds() -> dict[str, bytes]:
    """Small valid files of every format the readers accept."""
    yy, xx = np.mgrid[0:24, 0:20]
    image = (200 + 30 * xx + 10 * yy).astype(np.uint16)
    out = {
        "explicit.dcm": _dicom(ExplicitVRLittleEndian, image),
        "implicit.dcm": _dicom(ImplicitVRLittleEndian, image),
        "rle.dcm": _dicom(RLELossless, image),
        "mono1_rescale.dcm": _dicom(
            ExplicitVRLittleEndian, image, PhotometricInterpretation="MONOCHROME1", RescaleSlope=2, RescaleIntercept=-5
        ),
    }
    for name, arr in (("grey8.png", (image // 16).astype(np.uint8)), ("grey16.png", image)):
        out[name] = cv2.imencode(".png", arr)[1].tobytes()
    out["rgb.png"] = cv2.imencode(".png", np.dstack([image // 16] * 3).astype(np.uint8))[1].tobytes()
    out["grey.jpg"] = cv2.imencode(".jpg", (image // 16).astype(np.uint8))[1].tobytes()
    for name, arr in (("u16.tif", image), ("f32.tif", image.astype(np.float32)), ("i16.tif", image.astype(np.int16))):
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, arr, resolution=(100.0, 100.0), resolutionunit="CENTIMETER")
        out[name] = buffer.getvalue()
    return out


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One to four random mutations of ``data``."""
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        if not buf:
            break
        op = int(rng.integers(0, 7))
        pos = int(rng.integers(0, len(buf)))
        if op == 0:  # bit flip
            buf[pos] ^= 1 << int(rng.integers(0, 8))
        elif op == 1:  # random byte
            buf[pos] = int(rng.integers(0, 256))
        elif op in (2, 3):  # interesting integer over a (header) field, little or big endian
            value = INTERESTING[int(rng.integers(0, len(INTERESTING)))]
            width = int(rng.choice([2, 4]))
            order = "little" if op == 2 else "big"
            chunk = (value & ((1 << (8 * width)) - 1)).to_bytes(width, order)
            pos = min(pos, max(0, min(len(buf), 400) - width)) if rng.random() < 0.7 else pos
            buf[pos : pos + width] = chunk
        elif op == 4:  # truncate
            del buf[pos:]
        elif op == 5:  # delete a chunk
            del buf[pos : pos + int(rng.integers(1, 64))]
        else:  # duplicate a chunk
            end = pos + int(rng.integers(1, 64))
            buf[pos:pos] = buf[pos:end]
    return bytes(buf)


def _alarm(signum: int, frame: object) -> None:
    raise Hang()


def run(seconds: float, out: Path, seed: int, slow: float, memory_gb: float) -> dict[str, object]:
    """Fuzz for ``seconds``; write findings to ``out`` and return the summary."""
    resource.setrlimit(resource.RLIMIT_AS, (int(memory_gb * 2**30), resource.RLIM_INFINITY))
    signal.signal(signal.SIGALRM, _alarm)
    rng = np.random.default_rng(seed)
    corpus = seeds()
    names = sorted(corpus)
    counts = {"runs": 0, "ok": 0, "input_error": 0}
    findings: dict[str, dict[str, object]] = {}
    out.mkdir(parents=True, exist_ok=True)
    end = time.monotonic() + seconds
    warnings.simplefilter("ignore")
    while time.monotonic() < end:
        name = names[int(rng.integers(0, len(names)))]
        data = mutate(corpus[name], rng)
        counts["runs"] += 1
        signal.setitimer(signal.ITIMER_REAL, slow)
        started = time.monotonic()
        try:
            _decode(data, name, DEFAULT_MAX_PIXELS)
            counts["ok"] += 1
        except InputError:
            counts["input_error"] += 1
        except Hang:
            _record(findings, out, name, data, "hang", f"decode took more than {slow} s")
        except BaseException as exc:  # everything else is a finding
            if isinstance(exc, KeyboardInterrupt):
                raise
            where = traceback.extract_tb(exc.__traceback__)[-1]
            kind = f"{type(exc).__name__} at {Path(where.filename).name}:{where.lineno}"
            _record(findings, out, name, data, kind, traceback.format_exc())
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if time.monotonic() - started > slow / 5:
            _record(findings, out, name, data, "slow", f"decode took {time.monotonic() - started:.2f} s")
    summary = {"seconds": seconds, "seed": seed, **counts, "findings": {k: v["count"] for k, v in findings.items()}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _record(
    findings: dict[str, dict[str, object]], out: Path, seed_name: str, data: bytes, kind: str, text: str
) -> None:
    entry = findings.setdefault(kind, {"count": 0})
    entry["count"] = int(entry["count"]) + 1
    if entry["count"] == 1:  # keep the first example of each kind
        stem = hashlib.sha256(data).hexdigest()[:12]
        (out / f"{stem}-{Path(seed_name).name}").write_bytes(data)
        (out / f"{stem}.txt").write_text(f"{kind}\nseed file: {seed_name}\n\n{text}")


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--seconds``, ``--out``, ``--seed``, ``--slow``, ``--memory-gb``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="budget (default 300)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fuzz"), help="findings folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slow", type=float, default=5.0, help="seconds after which one decode is a hang")
    parser.add_argument("--memory-gb", type=float, default=4.0, help="address-space limit of the fuzzer")
    args = parser.parse_args(argv)
    summary = run(args.seconds, args.out, args.seed, args.slow, args.memory_gb)
    print(json.dumps(summary, indent=2))
    return 1 if summary["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
