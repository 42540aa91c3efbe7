"""Write phantom pairs to disk: images (DICOM DX, 16-bit PNG or TIFF), truth label maps, tables and a manifest.

Everything written is a pure function of the pair (and the subject id): no timestamps, UIDs derived from the
seed, so the same seed gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
import struct
import uuid
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile

from calcimg import __version__
from calcimg._files import atomic_write_bytes, atomic_write_text, json_safe
from calcimg.errors import ParameterError
from calcimg.phantom.config import SITES, PhantomConfig, resolve_site
from calcimg.phantom.pair import MANUFACTURER, PhantomPair, PhantomVisit, make_pair

FORMATS = ("dcm", "png", "tif")
#: Fixed fake birth date of every phantom patient.
BIRTH_DATE = "19600101"


#: Namespace of the name-based (version 5) UUIDs behind the phantom UIDs.
_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://calcimg/phantom")


def _uid(*parts: object) -> str:
    """A deterministic UID of the ``2.25.<uuid>`` form (ISO/IEC 9834-8) from the given parts.

    ``pydicom.uid.generate_uid(prefix=None)`` ignores its entropy sources (it uses a random UUID), so the UUID is
    made here, name-based, from the seed, subject, site and visit.
    """
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, '|'.join(str(p) for p in parts)).int}"


def write_dicom(visit: PhantomVisit, path: Path, subject: str, pair: PhantomPair, compress: bool = False) -> None:
    """Write one visit as a DX "for presentation" DICOM file, uncompressed or JPEG 2000 lossless.

    Parameters
    ----------
    visit : PhantomVisit
    path : pathlib.Path
    subject : str
        Subject id used in the fake patient identifiers and the UIDs.
    pair : PhantomPair
        The pair the visit belongs to (site, seed, laterality).
    compress : bool
        Encode the pixels as JPEG 2000 lossless (about a quarter of the size; decoded pixels are identical).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, JPEG2000Lossless

    seed, site = pair.seed, pair.site
    study_uid = _uid(seed, subject, site, visit.name, "study")
    series_uid = _uid(seed, subject, site, visit.name, "series")
    sop_uid = _uid(seed, subject, site, visit.name, "sop")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = visit.date
    ds.SeriesDate = visit.date
    ds.AcquisitionDate = visit.date
    ds.ContentDate = visit.date
    ds.StudyTime = "100000"
    ds.SeriesTime = "100000"
    ds.AcquisitionTime = "100000"
    ds.ContentTime = "100000"
    ds.AccessionNumber = ""
    ds.Modality = "DX"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = "calcimg.phantom"
    ds.SoftwareVersions = __version__
    ds.ReferringPhysicianName = ""
    ds.PatientName = f"PHANTOM^{subject}"
    ds.PatientID = f"PH-{subject}"
    ds.PatientBirthDate = BIRTH_DATE
    ds.PatientSex = "O"
    ds.BodyPartExamined = pair.summary["body_part"]
    ds.ViewPosition = pair.summary["view"]
    ds.ImageLaterality = pair.summary["laterality"]
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = visit.name.upper()
    ds.SeriesNumber = 1 if visit.name == "pre" else 2
    ds.InstanceNumber = 1
    ds.BurnedInAnnotation = "NO"
    ds.ImagerPixelSpacing = [f"{visit.spacing_mm:.6g}", f"{visit.spacing_mm:.6g}"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = visit.photometric
    ds.Rows, ds.Columns = visit.shape
    ds.BitsAllocated = 16
    ds.BitsStored = visit.bits_stored
    ds.HighBit = visit.bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = -1 if visit.photometric == "MONOCHROME2" else 1
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"
    ds.WindowCenter = f"{2 ** (visit.bits_stored - 1)}"
    ds.WindowWidth = f"{2**visit.bits_stored}"
    ds.LossyImageCompression = "00"
    ds.PixelData = np.ascontiguousarray(visit.stored, dtype="<u2").tobytes()
    if compress:
        ds.compress(JPEG2000Lossless, generate_instance_uid=False)  # keep the seed-derived UID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    atomic_write_bytes(path, buffer.getvalue())


def write_raster(visit: PhantomVisit, path: Path, fmt: str) -> None:
    """Write the display pixels (bright = dense) as 16-bit PNG or TIFF.

    The spacing goes into the TIFF resolution tags (pixels per cm, exact as a rational) and the PNG pHYs chunk
    (whole pixels per metre, so it reads back within 0.01%).
    """
    pixels = np.ascontiguousarray(visit.radiograph.pixels, dtype=np.uint16)
    if fmt == "png":
        ok, buf = cv2.imencode(".png", pixels)
        if not ok:
            raise OSError(f"{path}: could not encode PNG")
        atomic_write_bytes(path, _with_phys(buf.tobytes(), visit.spacing_mm))
        return
    res = 10.0 / visit.spacing_mm
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        pixels,
        photometric="minisblack",
        resolution=(res, res),
        resolutionunit="CENTIMETER",
        compression="zlib",
        predictor=True,
        metadata=None,
        software="calcimg.phantom",
    )
    atomic_write_bytes(path, buffer.getvalue())


def _with_phys(png: bytes, spacing_mm: float) -> bytes:
    """Insert a pHYs chunk (pixels per metre, rounded) right after the IHDR chunk of a PNG stream."""
    ppm = round(1000.0 / spacing_mm)
    body = b"pHYs" + struct.pack(">IIB", ppm, ppm, 1)
    chunk = struct.pack(">I", 9) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    ihdr_end = 8 + 4 + 4 + 13 + 4
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def _write_labels(path: Path, labels: np.ndarray) -> None:
    if labels.max(initial=0) > np.iinfo(np.uint16).max:
        raise ValueError(f"{path}: more labels than a uint16 map can hold")
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        labels.astype(np.uint16),
        photometric="minisblack",
        compression="zlib",
        metadata=None,
        software="calcimg.phantom",
    )
    atomic_write_bytes(path, buffer.getvalue())


def write_pair(
    pair: PhantomPair, out_dir: str | Path, subject: str, fmt: str = "dcm", compress: bool = False
) -> dict[str, Any]:
    """Write a pair's images and truth.

    Parameters
    ----------
    pair : PhantomPair
    out_dir : str or Path
        Created if missing.
    subject : str
        Subject id, such as "P001"; names the files.
    fmt : {"dcm", "png", "tif"}
        Image format.
    compress : bool
        DICOM only: JPEG 2000 lossless instead of uncompressed pixel data.

    Returns
    -------
    dict
        ``subject``, ``site``, ``seed``, ``pre``, ``post`` (image paths), ``truth`` (folder), ``pre_lesions``,
        ``post_lesions``, ``pre_components``, ``post_components``, ``lesions_csv``, ``pair_json`` (paths as
        str), ``pre_date``, ``post_date``.

    Raises
    ------
    calcimg.errors.ParameterError
        For an unknown format.

    Notes
    -----
    Files: ``<subject>_<site>_pre.<ext>``, ``<subject>_<site>_post.<ext>`` and ``<subject>_<site>_truth/`` with
    ``pre_lesions.tif`` / ``post_lesions.tif`` (uint16 lesion identities), ``pre_components.tif`` /
    ``post_components.tif`` (uint16 8-connected components), ``lesions.csv`` and ``pair.json``.
    """
    fmt = fmt.lower().lstrip(".")
    fmt = {"dicom": "dcm", "tiff": "tif"}.get(fmt, fmt)
    if fmt not in FORMATS:
        raise ParameterError(f"unknown phantom format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    stem = f"{subject}_{pair.site}"
    truth = out / f"{stem}_truth"
    truth.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Any] = {"subject": subject, "site": pair.site, "seed": pair.seed}
    for visit in pair.visits:
        path = out / f"{stem}_{visit.name}.{fmt}"
        if fmt == "dcm":
            write_dicom(visit, path, subject, pair, compress=compress)
        else:
            write_raster(visit, path, fmt)
        paths[visit.name] = str(path)
        paths[f"{visit.name}_date"] = visit.date
        for kind, labels in (("lesions", visit.identity_labels), ("components", visit.component_labels)):
            label_path = truth / f"{visit.name}_{kind}.tif"
            _write_labels(label_path, labels)
            paths[f"{visit.name}_{kind}"] = str(label_path)
    csv_path = truth / "lesions.csv"
    atomic_write_text(csv_path, pair.lesions.to_csv(index=False, lineterminator="\n", float_format="%.6g"))
    summary = json_safe(
        {
            **pair.summary,
            "subject": subject,
            "format": fmt,
            "calcimg_version": __version__,
            "files": {v.name: Path(paths[v.name]).name for v in pair.visits},
        }
    )
    json_path = truth / "pair.json"
    atomic_write_text(json_path, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    paths.update(truth=str(truth), lesions_csv=str(csv_path), pair_json=str(json_path))
    return paths


def pair_seed(seed: int, index: int) -> int:
    """The seed of the index-th pair of a cohort drawn with ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def write_phantoms(
    out_dir: str | Path,
    pairs: int,
    seed: int,
    sites: str | list[str] | tuple[str, ...] | None = None,
    fmt: str = "dcm",
    config: PhantomConfig | None = None,
    compress: bool = False,
) -> list[dict[str, Any]]:
    """Generate and write a cohort of phantom pairs with a manifest.

    Parameters
    ----------
    out_dir : str or Path
    pairs : int
        Number of pairs (subjects P001, P002, ...).
    seed : int
        Cohort seed; pair k uses :func:`pair_seed` (seed, k).
    sites : str or sequence of str, optional
        Sites to cycle through; default all of :data:`SITES`.
    fmt : {"dcm", "png", "tif"}
    config : PhantomConfig, optional
    compress : bool
        DICOM only: JPEG 2000 lossless pixel data.

    Returns
    -------
    list of dict
        What :func:`write_pair` returned for each pair.

    Raises
    ------
    calcimg.errors.ParameterError
        For a non-positive count, an unknown site or format.

    Notes
    -----
    ``manifest.csv`` in ``out_dir`` lists subject, site, timepoint (pre/post), date and path (relative to
    ``out_dir``) of every image.
    """
    if pairs < 1:
        raise ParameterError(f"the number of phantom pairs must be at least 1, got {pairs}")
    if sites is None:
        site_list = list(SITES)
    elif isinstance(sites, str):
        site_list = [resolve_site(sites)]
    else:
        site_list = [resolve_site(s) for s in sites]
    if not site_list:
        raise ParameterError("no phantom site given")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for k in range(pairs):
        subject = f"P{k + 1:03d}"
        site = site_list[k % len(site_list)]
        pair = make_pair(pair_seed(seed, k), site, config)
        written.append(write_pair(pair, out, subject, fmt, compress=compress))
    manifest = io.StringIO()
    w = csv.writer(manifest, lineterminator="\n")
    w.writerow(["subject", "site", "timepoint", "date", "path"])
    for item in written:
        for tp in ("pre", "post"):
            relative = Path(item[tp]).relative_to(out).as_posix()
            w.writerow([item["subject"], item["site"], tp, item[f"{tp}_date"], relative])
    atomic_write_text(out / "manifest.csv", manifest.getvalue())
    return written
