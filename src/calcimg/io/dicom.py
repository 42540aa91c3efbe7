"""Read a DICOM radiograph: decode, apply the modality transform, make bright mean dense, find the spacing.

Decoding goes through pydicom's pixel backend, so the transfer syntaxes are those of pydicom and the installed
pylibjpeg plugins: uncompressed (implicit/explicit little endian, big endian, deflated), RLE lossless, JPEG lossless
(process 14), JPEG-LS, JPEG 2000. 12-bit lossy JPEG (JPEG Extended, 1.2.840.10008.1.2.4.51) has no open-source
decoder and is refused with an :class:`~calcimg.errors.InputError` that names the syntax.

Conventions
-----------
* Old ACR-NEMA style files without preamble or file meta are read with ``force=True``; when the Transfer Syntax
  UID is missing, the encoding pydicom detected while parsing is assumed (Implicit VR Little Endian for such
  files) and a note is added.
* Multi-frame files: only the first frame is decoded and returned, with a note.
* The pixel count ``Rows * Columns`` is checked against the limit before any decoding.
* Unsigned data are masked to ``BitsStored`` bits; signed data are sign-extended by pydicom.
* The Modality LUT Sequence, or else Rescale Slope/Intercept, is applied with
  :func:`pydicom.pixels.apply_modality_lut`. Let ``[lo, hi]`` be the smallest and largest value the transform
  can produce over the whole stored range (``0 .. 2**BitsStored - 1``, or the signed range); it does not depend
  on the image content.
* MONOCHROME1 is reflected within that range, ``new = lo + hi - value``; without a transform this is
  ``new = 2**BitsStored - 1 - stored``.
* When every possible value is an integer and ``hi - lo`` fits, the result is uint16; when ``lo < 0`` every
  value is shifted by ``-lo`` (recorded in ``metadata["pixel_offset"]``). Otherwise the result is float32
  without shift. ``bits_stored`` is the bit length of the largest possible output value (``BitsStored`` when no
  transform widens the range), None for float32 output.
* Colour DICOM (RGB, YBR, PALETTE COLOR) is converted to grey with a note; no modality transform applies.

Spacing, in this order (the first valid one wins; invalid values are skipped with a note):

1. PixelSpacing when PixelSpacingCalibrationType (0028,0A02) is present -> ``"calibrated_pixel_spacing"``
2. ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor (a factor of exactly 1 counts as no
   correction) -> ``"imager_pixel_spacing_magnification_corrected"``
3. ImagerPixelSpacing -> ``"imager_pixel_spacing"``
4. PixelSpacing -> ``"pixel_spacing"``
5. nothing -> ``"none"`` with a :class:`~calcimg.io.CalibrationWarning` note.
"""

from __future__ import annotations

import io
import math
import struct
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, get_decoder, pixel_array
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGExtended12Bit,
)

from calcimg.errors import InputError
from calcimg.io._common import (
    CalibrationWarning,
    Decoded,
    Note,
    SpacingChoice,
    check_finite,
    check_pixel_count,
    empty_metadata,
    no_spacing,
    to_grey,
)

#: Exceptions pydicom raises on malformed files or element values.
_PYDICOM_ERRORS = (
    InvalidDicomError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    NotImplementedError,
    OverflowError,
    RuntimeError,
    struct.error,
)

#: (7FE0,0010) Pixel Data as it appears in little and big endian files; pydicom drops an element it cannot finish.
_PIXEL_DATA_TAG_BYTES = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")
_TAG_PIXEL_SPACING = 0x00280030
_TAG_IMAGER_PIXEL_SPACING = 0x00181164
_TAG_CALIBRATION_TYPE = 0x00280A02
_TAG_MAGNIFICATION = 0x00181114
_TAG_RESCALE_SLOPE = 0x00281053
_TAG_RESCALE_INTERCEPT = 0x00281052

#: Metadata key -> DICOM keywords tried in order.
_METADATA_TAGS = {
    "modality": ("Modality",),
    "body_part": ("BodyPartExamined",),
    "laterality": ("ImageLaterality", "Laterality"),
    "view": ("ViewPosition",),
    "study_date": ("StudyDate",),
    "acquisition_date": ("AcquisitionDate", "ContentDate"),
    "manufacturer": ("Manufacturer",),
    "photometric": ("PhotometricInterpretation",),
    "patient_id": ("PatientID",),
    "patient_name": ("PatientName",),
    "patient_birth_date": ("PatientBirthDate",),
    "study_uid": ("StudyInstanceUID",),
    "series_uid": ("SeriesInstanceUID",),
    "sop_uid": ("SOPInstanceUID",),
}

_ENCODING_SYNTAX = {
    (True, True): ImplicitVRLittleEndian,
    (False, True): ExplicitVRLittleEndian,
    (False, False): ExplicitVRBigEndian,
}


def read_dicom(data: bytes, path: str, max_pixels: int, *, force: bool = False) -> Decoded:
    """Decode a DICOM file's first frame into grey, bright-is-dense pixels with spacing and metadata.

    Parameters
    ----------
    data : bytes
        The whole file.
    path : str
        The file's path, for messages.
    max_pixels : int
        Largest ``Rows * Columns`` accepted; checked before decoding.
    force : bool
        Read files without the 128-byte preamble and "DICM" marker.

    Returns
    -------
    Decoded
        Pixels, bits, metadata, spacing and notes.

    Raises
    ------
    InputError
        For an unreadable header, no pixel data, too many pixels, an undecodable or truncated pixel data.
    """
    ds = parse_dataset(data, path, force=force)
    notes: list[Note] = []
    syntax_note = ensure_transfer_syntax(ds)
    if syntax_note is not None:
        notes.append(syntax_note)
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    if not any(keyword in ds for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        if any(tag in data for tag in _PIXEL_DATA_TAG_BYTES):
            raise InputError(path, "truncated or damaged pixel data: the pixel data element cannot be read to its end")
        raise InputError(path, "DICOM file without pixel data (it holds no image)")
    rows, cols = header_int(ds, "Rows"), header_int(ds, "Columns")
    if rows is None or cols is None:
        raise InputError(path, "DICOM header lacks a valid Rows or Columns value")
    check_pixel_count(path, rows, cols, max_pixels)
    frames = header_int(ds, "NumberOfFrames") or 1
    if frames > 1:
        notes.append(Note(f"multi-frame DICOM with {frames} frames: only the first frame was read"))
    meta = dicom_metadata(ds, syntax)
    meta.update(rows=rows, columns=cols, number_of_frames=frames)
    photometric_note = ensure_photometric(ds)
    if photometric_note is not None:
        notes.append(photometric_note)
    stored = decode_first_frame(ds, path, syntax)
    if stored.shape[:2] != (rows, cols):
        raise InputError(path, f"decoded image has shape {stored.shape}, not the {rows} x {cols} of the header")
    pixels, bits, facts, transform_notes = dicom_pixels(stored, ds, path)
    meta.update(facts)
    return Decoded(pixels, bits, meta, dicom_spacing(ds), notes + transform_notes)


def parse_dataset(data: bytes, path: str, *, force: bool) -> Dataset:
    """Parse DICOM bytes with pydicom, turning its exceptions into :class:`InputError`.

    Parameters
    ----------
    data : bytes
        The whole file.
    path : str
        The file's path, for messages.
    force : bool
        Passed to :func:`pydicom.dcmread`.

    Returns
    -------
    pydicom.dataset.Dataset
        The dataset (element values are converted lazily).

    Raises
    ------
    InputError
        When pydicom cannot parse the file.
    """
    try:
        return pydicom.dcmread(io.BytesIO(data), force=force)
    except _PYDICOM_ERRORS as exc:
        raise InputError(path, f"not a readable DICOM file ({type(exc).__name__}: {exc})") from exc


def ensure_transfer_syntax(ds: Dataset) -> Note | None:
    """Give a dataset without Transfer Syntax UID the one pydicom detected while parsing.

    Modifies ``ds.file_meta`` in place.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        A dataset read from a file.

    Returns
    -------
    Note or None
        A note when a syntax had to be assumed.
    """
    if not hasattr(ds, "file_meta") or ds.file_meta is None:
        ds.file_meta = FileMetaDataset()
    if ds.file_meta.get("TransferSyntaxUID"):
        return None
    encoding = getattr(ds, "original_encoding", (True, True))
    syntax = _ENCODING_SYNTAX.get(tuple(encoding), ImplicitVRLittleEndian)
    ds.file_meta.TransferSyntaxUID = syntax
    return Note(f"no transfer syntax in the file (no file meta information): assumed {syntax.name} ({syntax})")


def ensure_photometric(ds: Dataset) -> Note | None:
    """Give a one-sample dataset without PhotometricInterpretation the value MONOCHROME2 (modifies ``ds``).

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        The dataset.

    Returns
    -------
    Note or None
        A note when the value had to be assumed.
    """
    if _keyword_text(ds, "PhotometricInterpretation") is not None or (header_int(ds, "SamplesPerPixel") or 1) != 1:
        return None
    ds.PhotometricInterpretation = "MONOCHROME2"
    return Note("no photometric interpretation in the file: assumed MONOCHROME2 (bright is dense)")


def header_int(ds: Dataset, keyword: str) -> int | None:
    """Return an integer header value, or None when absent, empty or malformed.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        The dataset.
    keyword : str
        DICOM keyword such as ``"Rows"``.

    Returns
    -------
    int or None
        The value.
    """
    try:
        value = ds.get(keyword)
        return None if value is None or value == "" else int(value)
    except _PYDICOM_ERRORS:
        return None


def decode_first_frame(ds: Dataset, path: str, syntax: UID) -> np.ndarray:
    """Decode the first frame of the pixel data.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        The dataset, with a Transfer Syntax UID in its file meta.
    path : str
        The file's path, for messages.
    syntax : pydicom.uid.UID
        The transfer syntax.

    Returns
    -------
    numpy.ndarray
        (rows, cols) or (rows, cols, samples) stored values; unsigned data masked to BitsStored bits.

    Raises
    ------
    InputError
        When no installed decoder handles the syntax, the data are truncated or decoding fails.
    """
    described = f"{syntax.name} ({syntax})" if syntax.name != str(syntax) else f"unknown transfer syntax {syntax}"
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:
        raise InputError(path, f"pixel data use the transfer syntax {described}, which calcimg cannot decode") from exc
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "no plugin installed"
        raise InputError(path, f"no installed decoder for the transfer syntax {described} ({missing})")
    if "PixelData" in ds and not syntax.is_encapsulated:
        _check_native_length(ds, path)
    try:
        arr = pixel_array(ds, index=0)
    except _PYDICOM_ERRORS as exc:
        if syntax == JPEGExtended12Bit and (header_int(ds, "BitsStored") or 8) > 8:
            problem = (
                f"the pixel data use {described}, 12-bit lossy JPEG, which none of the installed decoders "
                "(pylibjpeg-libjpeg, Pillow) can decode; convert the file to an uncompressed or lossless syntax"
            )
        elif syntax.is_encapsulated:
            problem = (
                f"the {described} pixel data could not be decoded by any installed decoder: they may be truncated "
                "or corrupt, or use a variant the open-source decoders do not support (such as 12-bit lossy JPEG)"
            )
        else:
            problem = f"the pixel data could not be decoded ({exc})"
        raise InputError(path, problem) from exc
    return _mask_bits(arr, header_int(ds, "BitsStored"))


def _check_native_length(ds: Dataset, path: str) -> None:
    """Refuse uncompressed pixel data shorter than the header requires."""
    try:
        expected = get_expected_length(ds, "bytes")
        actual = len(ds.PixelData)
    except _PYDICOM_ERRORS as exc:
        raise InputError(path, f"the image header is inconsistent ({exc})") from exc
    if actual < expected:
        raise InputError(path, f"truncated pixel data: {actual:,} of the {expected:,} bytes the header announces")


def _mask_bits(arr: np.ndarray, bits_stored: int | None) -> np.ndarray:
    """Clear the bits above BitsStored in unsigned integer data."""
    if arr.dtype.kind != "u" or bits_stored is None or not 0 < bits_stored < arr.dtype.itemsize * 8:
        return arr
    return arr & arr.dtype.type((1 << bits_stored) - 1)


def stored_range(bits_stored: int, signed: bool) -> tuple[int, int]:
    """Return the smallest and largest stored value that ``bits_stored`` bits can hold.

    Parameters
    ----------
    bits_stored : int
        BitsStored.
    signed : bool
        PixelRepresentation is 1.

    Returns
    -------
    tuple of int
        (min, max).
    """
    if signed:
        return -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1
    return 0, (1 << bits_stored) - 1


def dicom_pixels(
    stored: np.ndarray, ds: Dataset, path: str
) -> tuple[np.ndarray, int | None, dict[str, Any], list[Note]]:
    """Turn stored values into bright-is-dense output pixels.

    Parameters
    ----------
    stored : numpy.ndarray
        The decoded first frame.
    ds : pydicom.dataset.Dataset
        The dataset (photometric interpretation, bits, modality LUT).
    path : str
        The file's path, for messages.

    Returns
    -------
    pixels : numpy.ndarray
        2-D uint16 or float32.
    bits_stored : int or None
        Bit length of the largest possible output value, None for float32.
    facts : dict
        Metadata entries: bits_stored_header, modality_transform, inversion, pixel_offset, value_min, value_max.
    notes : list of Note
        What was assumed or corrected.
    """
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    bits_header = header_int(ds, "BitsStored")
    if stored.ndim == 3 or photometric == "PALETTE COLOR":
        return _colour_pixels(stored, ds, path, photometric, bits_header)
    if stored.ndim != 2:
        raise InputError(path, f"not a 2-D image (decoded shape {stored.shape})")
    notes: list[Note] = []
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        notes.append(Note(f"photometric interpretation {photometric or 'missing'!r}: assumed MONOCHROME2"))
    if stored.dtype.kind == "f":
        check_finite(path, stored)
        return _float_pixels(stored, photometric == "MONOCHROME1", bits_header, notes)
    signed = stored.dtype.kind == "i"
    bits = bits_header if bits_header and 0 < bits_header <= stored.dtype.itemsize * 8 else stored.dtype.itemsize * 8
    transform, transform_note = modality_transform_kind(ds)
    if transform_note is not None:
        notes.append(transform_note)
    lo_stored, hi_stored = stored_range(bits, signed)
    if bits <= 16:
        probe = np.arange(lo_stored, hi_stored + 1, dtype=np.int64).astype(stored.dtype)
    else:
        probe = np.array([lo_stored, hi_stored], dtype=stored.dtype)
    try:
        possible = _apply_transform(probe, ds, transform)
        values = _apply_transform(stored, ds, transform)
    except _PYDICOM_ERRORS as exc:
        notes.append(Note(f"the Modality LUT could not be applied ({exc}); stored values used"))
        transform, possible, values = "none", probe, stored
    lo, hi = possible.min().item(), possible.max().item()
    integral = possible.dtype.kind in "iu" or bool(np.all(possible == np.round(possible)))
    invert = photometric == "MONOCHROME1"
    pixels, offset = reflect_and_shift(values, lo, hi, invert=invert, integral=integral)
    facts: dict[str, Any] = {
        "bits_stored_header": bits_header,
        "modality_transform": transform,
        "inversion": f"new = {_num(lo + hi)} - value (MONOCHROME1 reflected within [{_num(lo)}, {_num(hi)}])"
        if invert
        else None,
        "pixel_offset": offset,
        "value_min": _num(lo + offset),
        "value_max": _num(hi + offset),
    }
    out_bits = round(hi + offset).bit_length() if pixels.dtype == np.uint16 else None
    return pixels, max(out_bits, 1) if out_bits is not None else None, facts, notes


def _num(value: float) -> int | float:
    """Return an int for integral numbers, a float otherwise (JSON-friendly)."""
    return int(value) if float(value).is_integer() else float(value)


def modality_transform_kind(ds: Dataset) -> tuple[str, Note | None]:
    """Decide which modality transform applies: ``"lut_sequence"``, ``"rescale"`` or ``"none"``.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        The dataset.

    Returns
    -------
    kind : str
        The transform to apply.
    note : Note or None
        Set when rescale values were present but unusable.
    """
    try:
        if ds.get("ModalityLUTSequence"):
            return "lut_sequence", None
    except _PYDICOM_ERRORS as exc:
        return "none", Note(f"unreadable Modality LUT Sequence ignored ({exc})")
    slope_text, intercept_text = raw_text(ds, _TAG_RESCALE_SLOPE), raw_text(ds, _TAG_RESCALE_INTERCEPT)
    if slope_text is None and intercept_text is None:
        return "none", None
    slope, intercept = _to_float(slope_text), _to_float(intercept_text)
    if slope is None or intercept is None or slope == 0:
        return "none", Note(
            f"rescale slope {slope_text!r} / intercept {intercept_text!r} unusable; stored values used unchanged"
        )
    if slope == 1 and intercept == 0:
        return "none", None
    return "rescale", None


def _to_float(text: str | None) -> float | None:
    """Parse one finite number, or return None."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _apply_transform(arr: np.ndarray, ds: Dataset, kind: str) -> np.ndarray:
    """Apply the modality transform chosen by :func:`modality_transform_kind` with pydicom."""
    return arr if kind == "none" else apply_modality_lut(arr, ds)


def reflect_and_shift(
    values: np.ndarray, lo: float, hi: float, *, invert: bool, integral: bool
) -> tuple[np.ndarray, int]:
    """Reflect MONOCHROME1 values within ``[lo, hi]`` and store them as uint16 (shifted) or float32.

    Parameters
    ----------
    values : numpy.ndarray
        Modality-transformed values.
    lo, hi : float
        Smallest and largest value the transform can produce.
    invert : bool
        Reflect, ``new = lo + hi - value``.
    integral : bool
        Every possible value is an integer.

    Returns
    -------
    pixels : numpy.ndarray
        uint16 when integral and ``hi - lo`` fits in 16 bits (shifted by ``-lo`` when ``lo < 0``), float32
        otherwise (not shifted).
    offset : int
        The shift added to every value (0 for float32).
    """
    offset = int(-lo) if lo < 0 else 0
    if integral and hi + offset <= np.iinfo(np.uint16).max:
        if values.dtype == np.uint16 and not invert and offset == 0:
            return values, 0
        work = np.rint(values).astype(np.int64) if values.dtype.kind == "f" else values.astype(np.int64)
        if invert:
            work = int(lo + hi) - work
        return (work + offset).astype(np.uint16), offset
    work = values.astype(np.float64)
    if invert:
        work = (lo + hi) - work
    return work.astype(np.float32), 0


def _float_pixels(
    stored: np.ndarray, invert: bool, bits_header: int | None, notes: list[Note]
) -> tuple[np.ndarray, None, dict[str, Any], list[Note]]:
    """Handle Float/Double Float Pixel Data: reflect MONOCHROME1 within the actual data range."""
    lo, hi = float(stored.min()), float(stored.max())
    pixels, _ = reflect_and_shift(stored, lo, hi, invert=invert, integral=False)
    facts = {
        "bits_stored_header": bits_header,
        "modality_transform": "none",
        "inversion": f"new = {lo + hi:g} - value (MONOCHROME1 reflected within the data range)" if invert else None,
        "pixel_offset": 0,
        "value_min": lo,
        "value_max": hi,
    }
    return pixels, None, facts, notes


def _colour_pixels(
    stored: np.ndarray, ds: Dataset, path: str, photometric: str, bits_header: int | None
) -> tuple[np.ndarray, int | None, dict[str, Any], list[Note]]:
    """Convert colour DICOM pixels (already RGB from pydicom, or palette indices) to grey uint16."""
    notes: list[Note] = []
    rgb = stored
    if photometric == "PALETTE COLOR":
        try:
            rgb = apply_color_lut(stored, ds)
        except _PYDICOM_ERRORS as exc:
            raise InputError(path, f"the PALETTE COLOR lookup table could not be applied ({exc})") from exc
    grey, grey_notes = to_grey(rgb, "rgb")
    notes.extend(grey_notes)
    if grey.ndim != 2:
        raise InputError(path, f"not a 2-D image (decoded shape {stored.shape})")
    if grey.dtype.kind == "f":
        check_finite(path, grey)
        return _float_pixels(grey, False, bits_header, notes)
    pixels = grey.astype(np.uint16)
    bits = int(bits_header) if bits_header else pixels.dtype.itemsize * 8
    facts = {
        "bits_stored_header": bits_header,
        "modality_transform": "none",
        "inversion": None,
        "pixel_offset": 0,
        "value_min": 0,
        "value_max": (1 << bits) - 1,
    }
    return pixels, bits, facts, notes


def raw_text(ds: Dataset, tag: int) -> str | None:
    """Return an element's value as text without pydicom's value conversion, or None when absent or empty.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        The dataset.
    tag : int
        The element's tag.

    Returns
    -------
    str or None
        The stored text (multiple values joined with a backslash), stripped of padding.
    """
    try:
        if tag not in ds:
            return None
        value = ds.get_item(tag).value
    except _PYDICOM_ERRORS:
        return None
    if value is None:
        return None
    if isinstance(value, bytes):
        text = value.decode("latin-1")
    elif isinstance(value, (list, tuple, MultiValue)):
        text = "\\".join(str(item) for item in value)
    else:
        text = str(value)
    text = text.strip(" \x00")
    return text or None


def parse_spacing(text: str | None, name: str) -> tuple[tuple[float, float] | None, Note | None]:
    """Parse a DICOM spacing pair such as ``"0.2\\0.2"`` (row, then column spacing, in mm).

    Parameters
    ----------
    text : str or None
        The raw value (None when the element is absent or empty).
    name : str
        The element's keyword, for the note.

    Returns
    -------
    spacing : tuple of float or None
        The (row, col) spacing, or None when absent or invalid.
    note : Note or None
        Why a present value was rejected.
    """
    if text is None:
        return None, None
    parts = [part.strip() for part in text.split("\\")]
    reason = None
    values: list[float] = []
    if len(parts) != 2:
        reason = f"needs two values, has {len(parts)}"
    else:
        try:
            values = [float(part) for part in parts]
        except ValueError:
            reason = "not a number"
    if reason is None and not all(math.isfinite(v) for v in values):
        reason = "not finite"
    if reason is None and not all(v > 0 for v in values):
        reason = "zero or negative"
    if reason is not None:
        return None, Note(f"{name} {text!r} is not a valid spacing ({reason}); ignored", CalibrationWarning)
    return (values[0], values[1]), None


def dicom_spacing(ds: Dataset) -> SpacingChoice:
    """Choose the pixel spacing of a DICOM radiograph (order in the module docstring).

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        The dataset.

    Returns
    -------
    SpacingChoice
        The spacing, its source and calibration notes.
    """
    notes: list[Note] = []
    pixel, note = parse_spacing(raw_text(ds, _TAG_PIXEL_SPACING), "PixelSpacing")
    notes.extend([note] if note else [])
    imager, note = parse_spacing(raw_text(ds, _TAG_IMAGER_PIXEL_SPACING), "ImagerPixelSpacing")
    notes.extend([note] if note else [])
    calibration = raw_text(ds, _TAG_CALIBRATION_TYPE)
    factor_text = raw_text(ds, _TAG_MAGNIFICATION)
    factor = _to_float(factor_text)
    if factor_text is not None and (factor is None or factor <= 0):
        notes.append(
            Note(f"EstimatedRadiographicMagnificationFactor {factor_text!r} is not valid; ignored", CalibrationWarning)
        )
        factor = None
    if calibration is not None and pixel is not None:
        return SpacingChoice(pixel, "calibrated_pixel_spacing", tuple(notes))
    if calibration is not None:
        notes.append(
            Note(f"PixelSpacingCalibrationType {calibration!r} without a valid PixelSpacing", CalibrationWarning)
        )
    if imager is not None and factor is not None and factor != 1:
        corrected = (imager[0] / factor, imager[1] / factor)
        return SpacingChoice(corrected, "imager_pixel_spacing_magnification_corrected", tuple(notes))
    if imager is not None:
        if pixel is not None and not np.allclose(pixel, imager, rtol=1e-6, atol=0):
            notes.append(
                Note(
                    f"PixelSpacing {pixel} differs from ImagerPixelSpacing {imager} but has no calibration type; "
                    "ImagerPixelSpacing used",
                    CalibrationWarning,
                )
            )
        return SpacingChoice(imager, "imager_pixel_spacing", tuple(notes))
    if pixel is not None:
        return SpacingChoice(pixel, "pixel_spacing", tuple(notes))
    return no_spacing(tuple(notes))


def dicom_metadata(ds: Dataset, syntax: UID) -> dict[str, Any]:
    """Collect the JSON-safe header facts listed in :data:`calcimg.io.METADATA_KEYS`.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        The dataset.
    syntax : pydicom.uid.UID
        The transfer syntax (given or assumed).

    Returns
    -------
    dict
        Every key present; missing or empty tags are None.
    """
    meta = empty_metadata("dicom")
    for key, keywords in _METADATA_TAGS.items():
        meta[key] = next((text for text in (_keyword_text(ds, kw) for kw in keywords) if text is not None), None)
    meta["transfer_syntax"] = str(syntax)
    meta["transfer_syntax_name"] = syntax.name
    return meta


def _keyword_text(ds: Dataset, keyword: str) -> str | None:
    """Return a (converted) element value as a string, or None when absent, empty or unreadable."""
    try:
        value = ds.get(keyword)
    except _PYDICOM_ERRORS:
        return None
    if value is None:
        return None
    if isinstance(value, (list, tuple, MultiValue)):
        text = "\\".join(str(item) for item in value)
    elif isinstance(value, bytes):
        text = value.decode("latin-1")
    else:
        text = str(value)
    text = text.strip(" \x00")
    return text or None
