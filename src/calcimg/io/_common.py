"""Pieces shared by the DICOM and raster readers: warning classes, spacing checks, pixel conversions.

Everything here is a small pure function (or a plain data holder); the readers in :mod:`calcimg.io.dicom` and
:mod:`calcimg.io.raster` combine them, and :func:`calcimg.io.load_radiograph` turns their result into a
:class:`calcimg.model.Radiograph`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from calcimg.errors import InputError, ParameterError

#: Largest Rows x Columns accepted by default; far above any radiograph (about 15 million pixels at most).
DEFAULT_MAX_PIXELS = 100_000_000

#: Metadata keys every reader fills (None when the file does not say).
METADATA_KEYS = (
    "format",
    "modality",
    "body_part",
    "laterality",
    "view",
    "study_date",
    "acquisition_date",
    "manufacturer",
    "photometric",
    "transfer_syntax",
    "transfer_syntax_name",
    "patient_id",
    "patient_name",
    "patient_birth_date",
    "study_uid",
    "series_uid",
    "sop_uid",
    "rows",
    "columns",
    "number_of_frames",
    "bits_stored_header",
    "modality_transform",
    "inversion",
    "pixel_offset",
    "value_min",
    "value_max",
    "file_spacing_row_mm",
    "file_spacing_col_mm",
    "file_spacing_source",
)

#: Resolutions (dots per inch) that image software writes by default; they say nothing about the detector.
SCREEN_DEFAULT_DPI = (72.0, 96.0)

_MM_PER_INCH = 25.4


class InputWarning(UserWarning):
    """The reader had to assume or correct something about an input file (first frame only, colour, ...)."""


class CalibrationWarning(InputWarning):
    """The pixel spacing of an input file is missing or invalid, so lengths may be in pixels."""


@dataclass(frozen=True)
class Note:
    """One thing the reader had to assume or correct.

    Attributes
    ----------
    message : str
        Plain-words description, stored in ``Radiograph.warnings``.
    category : type of Warning
        The class used when the note is raised with :func:`warnings.warn`.
    """

    message: str
    category: type[Warning] = InputWarning


@dataclass(frozen=True)
class SpacingChoice:
    """The spacing a reader found in a file, where it came from, and what was wrong on the way.

    Attributes
    ----------
    spacing_mm : tuple of float or None
        (row, col) spacing in mm, None when the file has no usable spacing.
    source : str
        One of :data:`calcimg.model.SPACING_SOURCES`.
    notes : tuple of Note
        Calibration notes (invalid values skipped, no spacing at all, ...).
    """

    spacing_mm: tuple[float, float] | None
    source: str
    notes: tuple[Note, ...] = ()


@dataclass
class Decoded:
    """What a format reader returns: grey pixels, calibration and header facts.

    Attributes
    ----------
    pixels : numpy.ndarray
        2-D uint8, uint16 or float32 array, bright meaning dense.
    bits_stored : int or None
        Significant bits of integer pixels, None for float pixels.
    metadata : dict
        JSON-safe header facts, every key of :data:`METADATA_KEYS` present.
    spacing : SpacingChoice
        The spacing found in the file.
    notes : list of Note
        Non-calibration notes (first frame only, colour converted, ...).
    """

    pixels: np.ndarray
    bits_stored: int | None
    metadata: dict[str, Any]
    spacing: SpacingChoice
    notes: list[Note] = field(default_factory=list)


def empty_metadata(fmt: str) -> dict[str, Any]:
    """Return a metadata dict with every key of :data:`METADATA_KEYS` set to None except ``format``.

    Parameters
    ----------
    fmt : str
        ``"dicom"``, ``"png"``, ``"tiff"`` or ``"jpeg"``.

    Returns
    -------
    dict
        The metadata skeleton.
    """
    meta: dict[str, Any] = dict.fromkeys(METADATA_KEYS)
    meta["format"] = fmt
    return meta


def check_pixel_count(path: str, rows: int, cols: int, max_pixels: int) -> None:
    """Refuse an image whose header announces more pixels than allowed, or none at all.

    Parameters
    ----------
    path : str
        The file, for the error message.
    rows, cols : int
        Image size from the header.
    max_pixels : int
        The limit on ``rows * cols``.

    Raises
    ------
    InputError
        When the image is empty or larger than the limit.
    """
    if rows <= 0 or cols <= 0:
        raise InputError(path, f"the header gives an empty image ({rows} x {cols} pixels)")
    count = rows * cols
    if count > max_pixels:
        raise InputError(
            path,
            f"too many pixels: the header announces {rows} x {cols} = {count:,} pixels, more than the limit of "
            f"{max_pixels:,} (raise max_pixels if this really is one radiograph)",
        )


def validate_user_spacing(spacing: object) -> tuple[float, float] | None:
    """Check a spacing given by the user and return it as a (row, col) pair in mm.

    Parameters
    ----------
    spacing : float or sequence of two floats or None
        Isotropic spacing, or (row, col) spacing, in mm.

    Returns
    -------
    tuple of float or None
        The (row, col) spacing, or None when ``spacing`` is None.

    Raises
    ------
    ParameterError
        When the spacing is not one or two positive finite numbers.
    """
    if spacing is None:
        return None
    if isinstance(spacing, (str, bytes, bool, np.bool_)):
        raise ParameterError(f"spacing must be a positive number of mm or a (row, col) pair, got {spacing!r}")
    if isinstance(spacing, (int, float, np.integer, np.floating)):
        values: Sequence[Any] = (spacing, spacing)
    elif isinstance(spacing, (Sequence, np.ndarray)) and len(spacing) == 2:
        values = tuple(spacing)
    else:
        raise ParameterError(f"spacing must be a positive number of mm or a (row, col) pair, got {spacing!r}")
    pair = []
    for value in values:
        if isinstance(value, (str, bytes, bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)
        ):
            raise ParameterError(f"spacing values must be numbers, got {value!r}")
        number = float(value)
        if not math.isfinite(number) or number <= 0:
            raise ParameterError(f"spacing must be positive and finite (mm), got {value!r}")
        pair.append(number)
    return (pair[0], pair[1])


def validate_max_pixels(max_pixels: object) -> int:
    """Check the pixel-count limit given by the caller.

    Parameters
    ----------
    max_pixels : int
        Largest accepted ``rows * cols``.

    Returns
    -------
    int
        The limit.

    Raises
    ------
    ParameterError
        When it is not a positive integer.
    """
    if isinstance(max_pixels, (bool, np.bool_)) or not isinstance(max_pixels, (int, np.integer)) or max_pixels <= 0:
        raise ParameterError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    return int(max_pixels)


def is_screen_default(pixels_per_mm: float) -> bool:
    """Tell whether a resolution is a display default (72 or 96 dpi, within 0.5 %) rather than a calibration.

    Parameters
    ----------
    pixels_per_mm : float
        Resolution in pixels per mm.

    Returns
    -------
    bool
        True for 72 or 96 dpi.
    """
    dpi = pixels_per_mm * _MM_PER_INCH
    return any(abs(dpi - default) <= 0.005 * default for default in SCREEN_DEFAULT_DPI)


def spacing_from_resolution(row_res: float, col_res: float, mm_per_unit: float, what: str) -> SpacingChoice:
    """Turn a file's resolution (pixels per unit) into a spacing, ignoring screen defaults and bad values.

    Parameters
    ----------
    row_res, col_res : float
        Pixels per unit along rows (vertical, Y) and columns (horizontal, X).
    mm_per_unit : float
        Length of the unit in mm (25.4 for inch, 10 for cm, 1000 for metre, ...).
    what : str
        Name of the tag or chunk, for the notes.

    Returns
    -------
    SpacingChoice
        ``"file_resolution"`` with the spacing, or ``"none"`` with a note.
    """
    described = f"{what} {col_res:g} x {row_res:g} pixels per {mm_per_unit:g} mm"
    if not (math.isfinite(row_res) and math.isfinite(col_res)) or row_res <= 0 or col_res <= 0:
        return no_spacing((Note(f"{described} is not a valid resolution; ignored", CalibrationWarning),))
    row_ppmm, col_ppmm = row_res / mm_per_unit, col_res / mm_per_unit
    if is_screen_default(row_ppmm) and is_screen_default(col_ppmm):
        note = Note(f"{described} is a screen default (72 or 96 dpi), not a calibration; ignored", CalibrationWarning)
        return no_spacing((note,))
    return SpacingChoice((1.0 / row_ppmm, 1.0 / col_ppmm), "file_resolution")


def no_spacing(notes: tuple[Note, ...] = ()) -> SpacingChoice:
    """Return the uncalibrated choice, with a final note saying lengths will be in pixels.

    Parameters
    ----------
    notes : tuple of Note
        Notes gathered so far (invalid values met on the way).

    Returns
    -------
    SpacingChoice
        ``spacing_mm`` None, ``source`` ``"none"``.
    """
    final = Note("no usable pixel spacing in the file: lengths and areas will be in pixels", CalibrationWarning)
    return SpacingChoice(None, "none", (*notes, final))


def to_grey(arr: np.ndarray, order: str) -> tuple[np.ndarray, list[Note]]:
    """Reduce a (rows, cols, channels) array to one grey channel.

    Alpha is dropped; identical colour channels are taken as they are; real colour is converted with the
    ITU-R BT.601 luma weights of :func:`cv2.cvtColor`.

    Parameters
    ----------
    arr : numpy.ndarray
        2-D, or 3-D with 1 to 4 channels last.
    order : str
        ``"rgb"`` or ``"bgr"``: channel order of colour data.

    Returns
    -------
    pixels : numpy.ndarray
        The array, 2-D when the input had 1 to 4 channels, unchanged otherwise.
    notes : list of Note
        What was done.
    """
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        return arr, []
    notes: list[Note] = []
    channels = arr.shape[2]
    if channels in (2, 4):
        notes.append(Note("alpha channel ignored"))
    colour = arr[..., : 1 if channels <= 2 else 3]
    if colour.shape[2] == 1 or (
        np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2])
    ):
        return np.ascontiguousarray(colour[..., 0]), notes
    if colour.dtype not in (np.uint8, np.uint16, np.float32):
        colour = colour.astype(np.float32)
    code = cv2.COLOR_RGB2GRAY if order == "rgb" else cv2.COLOR_BGR2GRAY
    notes.append(Note("colour image converted to grey (luma weights 0.299 R + 0.587 G + 0.114 B)"))
    return cv2.cvtColor(np.ascontiguousarray(colour), code), notes


def integer_range(dtype: np.dtype) -> tuple[int, int]:
    """Return the smallest and largest value of an integer dtype.

    Parameters
    ----------
    dtype : numpy.dtype
        An integer dtype.

    Returns
    -------
    tuple of int
        (min, max).
    """
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def check_finite(path: str, arr: np.ndarray) -> None:
    """Refuse floating-point pixels that are NaN or infinite.

    Parameters
    ----------
    path : str
        The file, for the error message.
    arr : numpy.ndarray
        The pixels.

    Raises
    ------
    InputError
        When any pixel is NaN or infinite.
    """
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError(path, "the image contains NaN or infinite values")
