"""Read radiographs (DICOM, PNG, TIFF, JPEG) into a :class:`calcimg.model.Radiograph`.

The format is recognised from the file's first bytes, not its name, so a PNG named ``.dcm`` loads as a PNG.
Every problem with a file is an :class:`calcimg.errors.InputError` naming the file; everything the reader had
to assume or correct is listed in ``Radiograph.warnings`` and also raised as an :class:`InputWarning` (or
:class:`CalibrationWarning` for the pixel spacing) with :func:`warnings.warn`.

See :mod:`calcimg.io.dicom` and :mod:`calcimg.io.raster` for the conversion rules, and ``docs/input-formats.md``.
"""

from __future__ import annotations

import hashlib
import io
import stat
import warnings
from os import PathLike
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile

from calcimg.errors import InputError
from calcimg.io._common import (
    DEFAULT_MAX_PIXELS,
    METADATA_KEYS,
    CalibrationWarning,
    Decoded,
    InputWarning,
    Note,
    validate_max_pixels,
    validate_user_spacing,
)
from calcimg.io.dicom import read_dicom
from calcimg.io.raster import read_jpeg, read_png, read_tiff
from calcimg.model import Radiograph

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "METADATA_KEYS",
    "CalibrationWarning",
    "InputWarning",
    "load_mask",
    "load_radiograph",
    "read_file_bytes",
    "sniff_format",
    "validate_user_spacing",
]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
#: First group numbers (little endian) of DICOM files written without preamble: file meta, or identifying group.
_BARE_DICOM_GROUPS = (b"\x02\x00", b"\x08\x00")


def sniff_format(data: bytes) -> str | None:
    """Recognise a file's format from its first bytes.

    Parameters
    ----------
    data : bytes
        The file's content (at least its first 132 bytes).

    Returns
    -------
    str or None
        ``"dicom"`` (with the "DICM" marker), ``"dicom_bare"`` (no preamble; starts with a group 0002 or 0008
        element), ``"png"``, ``"tiff"``, ``"jpeg"``, or None when unknown.
    """
    if data[128:132] == b"DICM":
        return "dicom"
    if data.startswith(_PNG_MAGIC):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] in _TIFF_MAGICS:
        return "tiff"
    if len(data) >= 8 and data[:2] in _BARE_DICOM_GROUPS:
        return "dicom_bare"
    return None


def read_file_bytes(path: str | PathLike[str]) -> bytes:
    """Read a whole file, turning OS errors into plain-words :class:`InputError`.

    Parameters
    ----------
    path : str or PathLike
        The file.

    Returns
    -------
    bytes
        Its content, never empty.

    Raises
    ------
    InputError
        When the file is missing, a directory, not a regular file, not readable or empty.
    """
    file = Path(path)
    try:
        # Only regular files are read: a FIFO would block for ever and a device (/dev/zero) never end.
        if file.exists() and not file.is_dir() and not stat.S_ISREG(file.stat().st_mode):
            raise InputError(path, "not a regular file (a device, pipe or socket)")
        data = file.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(path, "file not found") from exc
    except IsADirectoryError as exc:
        raise InputError(path, "is a directory, not a file") from exc
    except PermissionError as exc:
        problem = "is a directory, not a file" if file.is_dir() else "not readable (permission denied)"
        raise InputError(path, problem) from exc
    except OSError as exc:
        raise InputError(path, f"could not be read ({exc.strerror or exc})") from exc
    if not data:
        raise InputError(path, "empty file (0 bytes)")
    return data


def _decode(data: bytes, path: str, max_pixels: int) -> Decoded:
    """Dispatch to the reader of the format found in the first bytes.

    The readers turn the errors they expect into :class:`InputError`; whatever else a third-party parser or decoder
    raises on damaged bytes (the fuzzer of ``benchmarks/fuzz_readers.py`` found AttributeError, TypeError,
    OverflowError, pydicom's BytesLengthException, and the Rust decoders' PanicException, which derives from
    BaseException) is also a damaged file, never a traceback.
    """
    try:
        return _dispatch(data, path, max_pixels)
    except InputError:
        raise
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:
        raise InputError(
            path, f"damaged or unsupported file: the decoder failed ({type(exc).__name__}: {exc})"
        ) from exc


def _dispatch(data: bytes, path: str, max_pixels: int) -> Decoded:
    kind = sniff_format(data)
    if kind == "dicom":
        return read_dicom(data, path, max_pixels)
    if kind == "dicom_bare":
        return read_dicom(data, path, max_pixels, force=True)
    if kind == "png":
        return read_png(data, path, max_pixels)
    if kind == "jpeg":
        return read_jpeg(data, path, max_pixels)
    if kind == "tiff":
        return read_tiff(data, path, max_pixels)
    raise InputError(path, "not a DICOM or image file (recognised formats: DICOM, PNG, TIFF, JPEG)")


def load_radiograph(
    path: str | PathLike[str],
    spacing: float | tuple[float, float] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Radiograph:
    """Read a radiograph file into a :class:`~calcimg.model.Radiograph`, bright meaning dense.

    Parameters
    ----------
    path : str or PathLike
        A DICOM, PNG, TIFF or JPEG file; the format is recognised from its content.
    spacing : float or (float, float), optional
        Pixel spacing in mm, isotropic or (row, col). When given it overrides the file's calibration
        (``spacing_source`` ``"user"``); the file's own spacing stays in ``metadata["file_spacing_*"]``.
    max_pixels : int, optional
        Largest ``rows * cols`` accepted, checked from the header before decoding.

    Returns
    -------
    Radiograph
        2-D pixels (uint16 for DICOM integer data, uint8/uint16 for raster integer data, float32 for
        floating-point or non-integral rescaled data), spacing and its source, ``"sha256:<hex>"`` of the file,
        metadata with every key of :data:`METADATA_KEYS`, and warnings.

    Raises
    ------
    calcimg.errors.ParameterError
        When ``spacing`` is not one or two positive finite numbers, or ``max_pixels`` not a positive integer.
    calcimg.errors.InputError
        When the file cannot be used (missing, directory, unreadable, empty, unknown format, no pixel data,
        truncated, undecodable transfer syntax, too many pixels, not 2-D, NaN/infinite values).

    Warns
    -----
    CalibrationWarning
        When the file has no usable spacing or invalid spacing values were skipped (not when ``spacing`` is given).
    InputWarning
        For other assumptions: first frame of several, colour converted to grey, assumed transfer syntax, ...
    """
    user_spacing = validate_user_spacing(spacing)
    limit = validate_max_pixels(max_pixels)
    path_str = str(path)
    data = read_file_bytes(path)
    decoded = _decode(data, path_str, limit)
    notes = list(decoded.notes)
    meta: dict[str, Any] = dict(decoded.metadata)
    file_spacing = decoded.spacing
    meta["file_spacing_row_mm"] = None if file_spacing.spacing_mm is None else file_spacing.spacing_mm[0]
    meta["file_spacing_col_mm"] = None if file_spacing.spacing_mm is None else file_spacing.spacing_mm[1]
    meta["file_spacing_source"] = file_spacing.source
    if user_spacing is not None:
        spacing_mm, source = user_spacing, "user"
    else:
        spacing_mm, source = file_spacing.spacing_mm, file_spacing.source
        notes.extend(file_spacing.notes)
    _emit(notes, path_str)
    return Radiograph(
        pixels=decoded.pixels,
        spacing_mm=spacing_mm,
        spacing_source=source,
        path=path_str,
        content_hash="sha256:" + hashlib.sha256(data).hexdigest(),
        bits_stored=decoded.bits_stored,
        metadata=meta,
        warnings=[note.message for note in notes],
    )


def load_mask(path: str | PathLike[str], shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a region mask or label image (TIFF, PNG) with its values unchanged: 0 outside, anything else inside.

    Parameters
    ----------
    path : str or PathLike
        The mask file; the format is recognised from its content.
    shape : (int, int), optional
        The image the mask belongs to; a mask of another shape is refused.

    Returns
    -------
    numpy.ndarray
        The 2-D mask or label array.

    Raises
    ------
    calcimg.errors.InputError
        When the file cannot be read, is not a TIFF or PNG image, is not 2-D or has the wrong shape.
    """
    data = read_file_bytes(path)
    kind = sniff_format(data)
    try:
        if kind == "tiff":
            mask = tifffile.imread(io.BytesIO(data))
        elif kind == "png":
            mask = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        else:
            raise InputError(path, "not a mask image (masks are TIFF or PNG)")
    except (ValueError, OSError, tifffile.TiffFileError) as exc:
        raise InputError(path, f"not a readable mask image ({exc})") from exc
    if mask is None or mask.ndim != 2:
        raise InputError(path, "a mask must be a single-channel 2-D image")
    if shape is not None and tuple(mask.shape) != tuple(shape):
        raise InputError(path, f"mask of shape {mask.shape} for an image of shape {tuple(shape)}")
    return mask


def _emit(notes: list[Note], path: str) -> None:
    """Raise every note as a Python warning attributed to the caller of :func:`load_radiograph`."""
    for note in notes:
        warnings.warn(f"{path}: {note.message}", note.category, stacklevel=3)
