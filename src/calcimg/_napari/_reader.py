"""napari readers: radiographs (DICOM, PNG, TIFF, JPEG), calcimg label TIFFs and calcimg result folders.

The format of a file is recognised from its first bytes (:func:`calcimg.io.sniff_format`), so DICOM files without
an extension open too; the manifest offers the radiograph reader for every file and it declines what it does not
recognise. Layers get ``scale`` = the pixel spacing in mm, so napari's scale bar and coordinates are in mm.
Metadata never carries patient identifiers.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tifffile

from calcimg.errors import CalcimgError
from calcimg.io import load_radiograph, sniff_format

from ._layers import (
    LayerData,
    change_colour_dict,
    radiograph_kwargs,
    registered_affine,
)

PathOrPaths = str | PathLike[str] | Sequence[str | PathLike[str]]
ReaderFunction = Callable[[PathOrPaths], list[LayerData]]

#: Start of the description calcimg writes into its label TIFFs (:func:`calcimg.report.files.label_tiff_bytes`).
_LABEL_DESCRIPTION = "calcimg"


def _paths(path: PathOrPaths) -> list[Path]:
    if isinstance(path, (str, PathLike)):
        return [Path(path)]
    return [Path(p) for p in path]


def _head(path: Path, size: int = 132) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def _is_label_tiff(path: Path) -> bool:
    try:
        with tifffile.TiffFile(path) as tif:
            description = tif.pages[0].description or ""
    except (OSError, ValueError, tifffile.TiffFileError, IndexError):
        return False
    return description.startswith(_LABEL_DESCRIPTION) and "lesion labels" in description


# ------------------------------------------------------------------------------------------------------------
# radiographs and label TIFFs


def get_radiograph_reader(path: PathOrPaths) -> ReaderFunction | None:
    """npe2 reader contribution: a reader when every path is a radiograph calcimg recognises, else None.

    Parameters
    ----------
    path : str, PathLike or list of them

    Returns
    -------
    callable or None
        :func:`read_radiographs`, or None (napari then tries other readers).
    """
    paths = _paths(path)
    if not paths or any(not p.is_file() or sniff_format(_head(p)) is None for p in paths):
        return None
    return read_radiographs


def read_radiographs(path: PathOrPaths) -> list[LayerData]:
    """Read radiographs (one Image layer each) or calcimg label TIFFs (one Labels layer each).

    Parameters
    ----------
    path : str, PathLike or list of them

    Returns
    -------
    list of (data, kwargs, layer_type)
        Images with ``scale`` in mm and ``metadata["calcimg"]`` (identity, calibration, header facts without
        identifiers, the reader's warnings); the reader's warnings are also raised as Python warnings, which
        napari shows as notifications.
    """
    layers: list[LayerData] = []
    for file in _paths(path):
        if sniff_format(_head(file)) == "tiff" and _is_label_tiff(file):
            layers.append(read_label_tiff(file))
            continue
        radiograph = load_radiograph(file)
        layers.append((radiograph.pixels, radiograph_kwargs(radiograph, file.stem), "image"))
    return layers


def read_label_tiff(path: str | PathLike[str], scale: Sequence[float] | None = None) -> LayerData:
    """A calcimg label TIFF as a Labels layer (int32; scale 1 unless given)."""
    labels = tifffile.imread(path).astype(np.int32)
    kwargs: dict[str, Any] = {
        "name": Path(path).stem,
        "metadata": {"calcimg": {"kind": "lesions", "path": str(path)}},
    }
    if scale is not None:
        kwargs["scale"] = tuple(float(s) for s in scale)
    return (labels, kwargs, "labels")


# ------------------------------------------------------------------------------------------------------------
# result folders


def get_result_folder_reader(path: PathOrPaths) -> ReaderFunction | None:
    """npe2 reader contribution: a reader for a folder holding a pair comparison's ``summary.json``, else None."""
    paths = _paths(path)
    if len(paths) != 1 or not paths[0].is_dir():
        return None
    summary = paths[0] / "summary.json"
    if not summary.is_file():
        return None
    try:
        record = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or "inputs" not in record or "registration" not in record:
        return None
    return read_result_folder_layers


def read_result_folder_layers(path: PathOrPaths) -> list[LayerData]:
    """A comparison's result folder as layers: both images (when found), each visit's lesions by change class.

    The follow-up's layers carry the registration as their ``affine``, so they show in the baseline's frame (in
    mm) without resampling. The lesion layers' ``features`` hold ``lesions.csv``'s rows of that visit.

    Parameters
    ----------
    path : str or PathLike
        The result folder.

    Returns
    -------
    list of (data, kwargs, layer_type)
        Baseline image, baseline lesions, follow-up image, follow-up lesions (images are left out, with a
        warning, when their files are not found).
    """
    from ._review import VISITS, load_input, read_result_folder

    folder = _paths(path)[0]
    summary, visits = read_result_folder(folder)
    table = _read_lesion_table(folder / "lesions.csv")
    matrix = np.asarray(summary["registration"]["matrix"], dtype=np.float64)
    layers: list[LayerData] = []
    scales: dict[str, tuple[float, float]] = {}
    for visit in VISITS:
        info = visits[visit]
        identity = info["input"]
        spacing = identity.get("spacing_mm")
        scales[visit] = (1.0, 1.0) if spacing is None else (float(spacing[0]), float(spacing[1]))
        name = f"{info['stem']} ({'baseline' if visit == 'pre' else 'follow-up'})"
        affine = None if visit == "pre" else registered_affine(matrix, scales["pre"], scales[visit])
        try:
            radiograph = load_input(identity, folder)
        except CalcimgError as exc:
            warnings.warn(f"{folder}: {exc}; showing the lesions only", stacklevel=2)
        else:
            kwargs = radiograph_kwargs(radiograph, name)
            kwargs["scale"] = scales[visit]
            if affine is not None:
                kwargs["affine"] = affine
            kwargs["metadata"]["calcimg"].update({"visit": visit, "result_folder": str(folder)})
            layers.append((radiograph.pixels, kwargs, "image"))
        data, kwargs, _ = read_label_tiff(info["labels"], scales[visit])
        rows = table.loc[table["visit"] == visit] if len(table) else table
        kwargs.update(
            name=f"{info['stem']} lesions",
            colormap=change_colour_dict(rows, visit) if len(rows) else None,
            opacity=0.7,
            features=_features(rows),
        )
        if kwargs["colormap"] is None:
            del kwargs["colormap"]
        if affine is not None:
            kwargs["affine"] = affine
        kwargs["metadata"]["calcimg"].update(
            {"visit": visit, "result_folder": str(folder), "reviewed": bool(summary.get("review", {}).get("reviewed"))}
        )
        kwargs["metadata"]["calcimg"]["summary"] = summary if visit == "pre" else None
        layers.append((data, kwargs, "labels"))
    return layers


def _read_lesion_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame(columns=["visit", "lesion_id", "change_class"])
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def _features(rows: pd.DataFrame) -> pd.DataFrame:
    if not len(rows):
        return pd.DataFrame({"index": np.zeros(0, np.int64)})
    features = rows.reset_index(drop=True).copy()
    features.insert(0, "index", features["lesion_id"].astype(np.int64))
    return features
