"""Work over folders of radiographs: discovery and the input inventory.

Today this module finds the images under a folder and describes what was read from each (``calcimg info``);
the cohort run (pairing, executors, resume) builds on it.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from calcimg import __version__
from calcimg._files import atomic_write_json, atomic_write_text, json_safe
from calcimg.errors import CalcimgError, InputError
from calcimg.io import load_radiograph
from calcimg.model import public_metadata

#: File name endings that are read as radiographs. Files without an extension are read when they carry the
#: DICOM magic bytes ("DICM" at offset 128).
IMAGE_SUFFIXES = frozenset({".dcm", ".dicom", ".png", ".tif", ".tiff", ".jpg", ".jpeg"})

#: Folders whose name ends with this hold ground truth or results beside the images and are never read as input.
TRUTH_FOLDER_SUFFIX = "_truth"


def _has_dicom_magic(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def discover_images(root: str | os.PathLike[str]) -> list[Path]:
    """List the radiographs under ``root`` in a stable order.

    Parameters
    ----------
    root : str or PathLike
        A file or a folder (searched recursively).

    Returns
    -------
    list of pathlib.Path
        Sorted paths. Hidden files and folders, and folders named ``*_truth``, are skipped; files are taken by
        extension (:data:`IMAGE_SUFFIXES`) or, without an extension, by the DICOM magic bytes.

    Raises
    ------
    InputError
        When ``root`` does not exist.
    """
    root = Path(root)
    if not root.exists():
        raise InputError(root, "no such file or folder")
    if root.is_file():
        return [root]
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not d.endswith(TRUTH_FOLDER_SUFFIX))
        for name in filenames:
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            suffix = path.suffix.lower()
            if suffix in IMAGE_SUFFIXES or (suffix == "" and _has_dicom_magic(path)):
                found.append(path)
    return sorted(found)


@dataclass
class Inventory:
    """What was read from each input: one row per file, and the errors of those that could not be read."""

    table: pd.DataFrame
    errors: list[dict[str, str]] = field(default_factory=list)


def describe_inputs(paths: Iterable[Path], keep_identifiers: bool = False) -> Inventory:
    """Read every file and describe it (shape, bits, photometric, spacing and its source, header facts).

    Parameters
    ----------
    paths : iterable of pathlib.Path
        Files to read.
    keep_identifiers : bool, default False
        Include patient and study identifiers from the headers (off unless the user asks).

    Returns
    -------
    Inventory
        ``table`` has one row per readable file; ``errors`` has ``{"file", "message"}`` for the others.
    """
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the reader's warnings are kept on the Radiograph
                radiograph = load_radiograph(path)
        except CalcimgError as exc:
            errors.append({"file": str(path), "message": str(exc)})
            continue
        meta = public_metadata(radiograph.metadata, keep_identifiers=keep_identifiers)
        row: dict[str, Any] = {
            "file": str(path),
            "format": meta.get("format"),
            "rows": radiograph.shape[0],
            "cols": radiograph.shape[1],
            "dtype": str(radiograph.pixels.dtype),
            "bits_stored": radiograph.bits_stored,
            "photometric": meta.get("photometric"),
            "spacing_mm": None if radiograph.spacing_mm is None else round(float(radiograph.spacing_mm[0]), 6),
            "spacing_source": radiograph.spacing_source,
            "modality": meta.get("modality"),
            "body_part": meta.get("body_part"),
            "laterality": meta.get("laterality"),
            "study_date": meta.get("study_date"),
            "min": float(radiograph.pixels.min()),
            "max": float(radiograph.pixels.max()),
            "content_hash": radiograph.content_hash,
            "warnings": " | ".join(radiograph.warnings),
        }
        if keep_identifiers:
            row.update({key: meta.get(key) for key in ("patient_id", "patient_name", "study_uid")})
        rows.append(row)
    return Inventory(table=pd.DataFrame(rows), errors=errors)


def write_inventory(inventory: Inventory, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``inputs.csv``, ``inputs.json`` and, when any file failed, ``errors.csv`` atomically.

    Returns
    -------
    dict of str to pathlib.Path
        The files written, by kind.
    """
    out_dir = Path(out_dir)
    written = {"csv": atomic_write_text(out_dir / "inputs.csv", inventory.table.to_csv(index=False))}
    written["json"] = atomic_write_json(
        out_dir / "inputs.json",
        {
            "calcimg_version": __version__,
            "inputs": json_safe(inventory.table.to_dict(orient="records")),
            "errors": inventory.errors,
        },
    )
    if inventory.errors:
        buffer = io.StringIO()
        pd.DataFrame(inventory.errors, columns=["file", "message"]).to_csv(buffer, index=False)
        written["errors"] = atomic_write_text(out_dir / "errors.csv", buffer.getvalue())
    return written
