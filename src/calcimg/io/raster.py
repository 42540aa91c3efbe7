"""Read PNG, TIFF and JPEG radiographs (exports from viewers, scanned films, phantoms, test images).

Conventions
-----------
* The header's width x height is read without decoding (PNG IHDR chunk, JPEG SOF marker, TIFF first page) and
  checked against the pixel limit first.
* PNG and JPEG are decoded with ``cv2.imdecode(..., IMREAD_UNCHANGED)`` (8- and 16-bit PNG), TIFF with tifffile;
  a TIFF whose compression tifffile cannot decode without imagecodecs (LZW, JPEG, PackBits) is decoded by OpenCV.
* Raster files have no MONOCHROME1: bright is taken to mean dense. The one exception is a TIFF with
  PhotometricInterpretation MinIsWhite, which is inverted (``new = 2**BitsPerSample - 1 - value``) with a note.
* Colour (RGB, RGBA, BGR, palette) is converted to grey with a note; alpha is dropped; images whose colour
  channels are identical are taken as grey without a note.
* Multi-page TIFF: the first page only, with a note. A page that is not 2-D after that (volumes, more than four
  samples) is refused.
* Pixel types: uint8 stays uint8 (bits_stored 8), uint16 stays uint16 (bits_stored = TIFF BitsPerSample, else
  16), 1-bit becomes uint8 0/1, signed integers are shifted by ``2**(bits-1)`` to unsigned of the same size
  (offset in ``metadata["pixel_offset"]``), 32/64-bit integers become uint16 when their values fit and float32
  otherwise, floating point becomes float32. NaN or infinite values are refused with an InputError: every later
  step would have to special-case them, and they never occur in a real radiograph.
* Spacing (``"file_resolution"``): TIFF XResolution/YResolution with ResolutionUnit inch or centimetre (or an
  ImageJ ``unit`` of mm, micron, cm or inch when ResolutionUnit is none); PNG pHYs with unit metre; JPEG JFIF
  density in dots per inch or cm. A resolution of 72 or 96 dpi is what image software writes by default and is
  ignored (no spacing, with a note).
"""

from __future__ import annotations

import io
import struct
from typing import Any

import cv2
import numpy as np
import tifffile

from calcimg.errors import InputError
from calcimg.io._common import (
    Decoded,
    Note,
    SpacingChoice,
    check_finite,
    check_pixel_count,
    empty_metadata,
    no_spacing,
    spacing_from_resolution,
    to_grey,
)

_PNG_COLOUR_TYPES = {0: "grey", 2: "rgb", 3: "palette", 4: "grey_alpha", 6: "rgba"}
_JPEG_COMPONENTS = {1: "grey", 3: "colour (YCbCr or RGB)", 4: "cmyk"}
#: SOF markers that carry the frame size (C4 DHT, C8 JPG and CC DAC are not frames).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset(range(0xD0, 0xD9)) | {0x01}
#: Unit lengths in mm for TIFF ResolutionUnit values (2 inch, 3 cm; 4 and 5 are tifffile extensions).
_TIFF_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}
_IMAGEJ_UNIT_MM = {
    "mm": 1.0,
    "millimeter": 1.0,
    "cm": 10.0,
    "inch": 25.4,
    "micron": 0.001,
    "um": 0.001,
    "\u00b5m": 0.001,
    "\\u00b5m": 0.001,
    "m": 1000.0,
}
_TIFF_ERRORS = (
    tifffile.TiffFileError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    struct.error,
    EOFError,
    NotImplementedError,
    RuntimeError,
    MemoryError,
)


def png_header(data: bytes) -> tuple[int, int, int, int, tuple[int, int, int] | None]:
    """Read a PNG's size, bit depth, colour type and pHYs chunk without decoding.

    Parameters
    ----------
    data : bytes
        The whole file.

    Returns
    -------
    rows, cols, bit_depth, colour_type : int
        From the IHDR chunk.
    phys : tuple of int or None
        (x pixels per unit, y pixels per unit, unit) from pHYs, unit 1 meaning metre.

    Raises
    ------
    ValueError
        When the IHDR chunk is missing or short.
    """
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ValueError("PNG header (IHDR chunk) missing or truncated")
    cols, rows, bit_depth, colour_type = struct.unpack(">IIBB", data[16:26])
    phys = None
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind in (b"IDAT", b"IEND"):
            break
        if kind == b"pHYs" and length == 9 and pos + 17 <= len(data):
            phys = struct.unpack(">IIB", data[pos + 8 : pos + 17])
        pos += 12 + length
    return rows, cols, bit_depth, colour_type, phys


def jpeg_header(data: bytes) -> tuple[int, int, int, tuple[int, int, int] | None]:
    """Read a JPEG's size, component count and JFIF density without decoding.

    Parameters
    ----------
    data : bytes
        The whole file.

    Returns
    -------
    rows, cols, components : int
        From the first SOF marker.
    density : tuple of int or None
        (units, x density, y density) from the JFIF APP0 segment; units 1 = per inch, 2 = per cm.

    Raises
    ------
    ValueError
        When no frame header is found before the image data.
    """
    density = None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segment = data[pos + 4 : pos + 2 + length]
        if marker in _JPEG_SOF and len(segment) >= 6:
            _, rows, cols, components = struct.unpack(">BHHB", segment[:6])
            return rows, cols, components, density
        if marker == 0xE0 and segment[:5] == b"JFIF\x00" and len(segment) >= 12:
            density = struct.unpack(">BHH", segment[7:12])
        if marker == 0xDA:
            break
        pos += 2 + length
    raise ValueError("no JPEG frame header found")


def read_png(data: bytes, path: str, max_pixels: int) -> Decoded:
    """Read a PNG radiograph.

    Parameters
    ----------
    data : bytes
        The whole file.
    path : str
        The file's path, for messages.
    max_pixels : int
        Largest accepted rows x cols, checked before decoding.

    Returns
    -------
    Decoded
        Grey pixels, spacing from pHYs, metadata and notes.

    Raises
    ------
    InputError
        When the header is damaged, the image too large or not decodable.
    """
    try:
        rows, cols, bit_depth, colour_type, phys = png_header(data)
    except (ValueError, struct.error) as exc:
        raise InputError(path, f"damaged PNG file ({exc})") from exc
    check_pixel_count(path, rows, cols, max_pixels)
    _check_png_chunks(data, path)
    arr = _cv2_decode(data, path, "PNG")
    spacing = no_spacing()
    if phys is not None and phys[2] == 1:
        spacing = spacing_from_resolution(float(phys[1]), float(phys[0]), 1000.0, "PNG pHYs")
    meta = empty_metadata("png")
    meta.update(photometric=_PNG_COLOUR_TYPES.get(colour_type), bits_stored_header=bit_depth)
    return _finish(arr, "bgr", path, meta, spacing, [], bits_hint=None)


def _check_png_chunks(data: bytes, path: str) -> None:
    """Refuse a PNG whose chunk lengths run past the end of the file before OpenCV sees it: such a file is
    truncated or damaged, and libpng can spend seconds on it (found by ``benchmarks/fuzz_readers.py``)."""
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if pos + 12 + length > len(data):
            raise InputError(
                path,
                f"the PNG image could not be decoded (truncated or damaged: chunk {kind.decode('latin-1')!r} at "
                f"byte {pos} claims {length:,} bytes, only {max(0, len(data) - pos - 12):,} remain)",
            )
        if kind == b"IEND":
            return
        pos += 12 + length


def read_jpeg(data: bytes, path: str, max_pixels: int) -> Decoded:
    """Read a JPEG radiograph.

    Parameters
    ----------
    data : bytes
        The whole file.
    path : str
        The file's path, for messages.
    max_pixels : int
        Largest accepted rows x cols, checked before decoding.

    Returns
    -------
    Decoded
        Grey pixels, spacing from the JFIF density, metadata and notes.

    Raises
    ------
    InputError
        When the header is damaged, the image too large or not decodable.
    """
    try:
        rows, cols, components, density = jpeg_header(data)
    except (ValueError, struct.error) as exc:
        raise InputError(path, f"damaged JPEG file ({exc})") from exc
    check_pixel_count(path, rows, cols, max_pixels)
    arr = _cv2_decode(data, path, "JPEG")
    spacing = no_spacing()
    if density is not None and density[0] in (1, 2):
        spacing = spacing_from_resolution(
            float(density[2]), float(density[1]), 25.4 if density[0] == 1 else 10.0, "JFIF density"
        )
    meta = empty_metadata("jpeg")
    meta["photometric"] = _JPEG_COMPONENTS.get(components)
    return _finish(arr, "bgr", path, meta, spacing, [], bits_hint=None)


def read_tiff(data: bytes, path: str, max_pixels: int) -> Decoded:
    """Read the first page of a TIFF radiograph.

    Parameters
    ----------
    data : bytes
        The whole file.
    path : str
        The file's path, for messages.
    max_pixels : int
        Largest accepted rows x cols, checked before decoding.

    Returns
    -------
    Decoded
        Grey pixels, spacing from the resolution tags, metadata and notes.

    Raises
    ------
    InputError
        When the file is damaged, the image too large, not 2-D or not decodable.
    """
    notes: list[Note] = []
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages.first
            n_pages = len(tif.pages)
            check_pixel_count(path, int(page.imagelength), int(page.imagewidth), max_pixels)
            if int(page.imagedepth) > 1:
                raise InputError(path, f"not a 2-D image (a volume of depth {page.imagedepth})")
            arr, order = _tiff_pixels(page, data, path)
            photometric = int(page.photometric)
            meta = empty_metadata("tiff")
            meta.update(
                photometric=page.photometric.name,
                bits_stored_header=int(page.bitspersample),
                number_of_frames=n_pages,
            )
            spacing = tiff_spacing(page, tif.imagej_metadata if tif.is_imagej else None)
    except _TIFF_ERRORS as exc:
        raise InputError(path, f"damaged or unsupported TIFF file ({exc})") from exc
    if n_pages > 1:
        notes.append(Note(f"TIFF with {n_pages} pages: only the first page was read"))
    if photometric == 0:
        arr, note = _invert_min_is_white(arr, int(meta["bits_stored_header"]))
        meta["inversion"] = note.message
        notes.append(note)
    return _finish(arr, order, path, meta, spacing, notes, bits_hint=int(meta["bits_stored_header"]))


def _tiff_pixels(page: Any, data: bytes, path: str) -> tuple[np.ndarray, str]:
    """Decode a TIFF page with tifffile, or with OpenCV when tifffile lacks the codec; return (array, order)."""
    try:
        arr = page.asarray()
    except (ValueError, KeyError, NotImplementedError) as exc:
        fallback = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if fallback is None:
            raise InputError(
                path,
                f"the TIFF pixel data (compression {page.compression.name}) could not be decoded ({exc}); the file "
                "may be truncated, or its compression may need the imagecodecs package",
            ) from exc
        return fallback, "bgr"
    if int(page.photometric) == 3 and page.colormap is not None:
        arr = np.moveaxis(np.asarray(page.colormap)[:, arr], 0, -1)
    elif page.axes.startswith("S") and arr.ndim == 3:
        arr = np.moveaxis(arr, 0, -1)
    return arr, "rgb"


def _invert_min_is_white(arr: np.ndarray, bits: int) -> tuple[np.ndarray, Note]:
    """Invert MinIsWhite TIFF data so that bright means dense."""
    if arr.dtype.kind == "u":
        top = min((1 << bits) - 1, int(np.iinfo(arr.dtype).max))
        return (top - arr.astype(np.int64)).astype(arr.dtype), Note(f"TIFF MinIsWhite inverted: new = {top} - value")
    lo, hi = float(np.min(arr)), float(np.max(arr))
    return (lo + hi) - arr, Note(f"TIFF MinIsWhite inverted within the data range: new = {lo + hi:g} - value")


def tiff_spacing(page: Any, imagej: dict[str, Any] | None) -> SpacingChoice:
    """Spacing from a TIFF page's XResolution/YResolution and ResolutionUnit (or ImageJ unit).

    Parameters
    ----------
    page : tifffile.TiffPage
        The first page.
    imagej : dict or None
        ImageJ metadata of the file, if any.

    Returns
    -------
    SpacingChoice
        ``"file_resolution"`` or ``"none"``.
    """
    if "XResolution" not in page.tags or "YResolution" not in page.tags:
        return no_spacing()
    x_res, y_res = (float(v) for v in page.resolution)
    unit = int(page.resolutionunit)
    mm_per_unit = _TIFF_UNIT_MM.get(unit)
    what = "TIFF XResolution/YResolution"
    if mm_per_unit is None and imagej is not None:
        mm_per_unit = _IMAGEJ_UNIT_MM.get(str(imagej.get("unit", "")).strip().lower())
        what = "ImageJ resolution"
    if mm_per_unit is None:
        return no_spacing()
    return spacing_from_resolution(y_res, x_res, mm_per_unit, what)


def _cv2_decode(data: bytes, path: str, kind: str) -> np.ndarray:
    """Decode PNG/JPEG bytes with OpenCV, keeping bit depth and channels."""
    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise InputError(path, f"the {kind} image could not be decoded ({exc})") from exc
    if arr is None:
        raise InputError(path, f"the {kind} image could not be decoded (truncated or corrupt)")
    return arr


def _finish(
    arr: np.ndarray,
    order: str,
    path: str,
    meta: dict[str, Any],
    spacing: SpacingChoice,
    notes: list[Note],
    *,
    bits_hint: int | None,
) -> Decoded:
    """Make grey 2-D pixels of a supported type and fill the common metadata."""
    grey, grey_notes = to_grey(arr, order)
    if grey.ndim != 2:
        raise InputError(path, f"not a 2-D image (decoded shape {arr.shape})")
    pixels, bits, facts, type_notes = raster_pixels(grey, path, bits_hint)
    meta.update(facts)
    meta.update(rows=int(pixels.shape[0]), columns=int(pixels.shape[1]))
    if meta["number_of_frames"] is None:
        meta["number_of_frames"] = 1
    return Decoded(pixels, bits, meta, spacing, notes + grey_notes + type_notes)


def raster_pixels(
    arr: np.ndarray, path: str, bits_hint: int | None = None
) -> tuple[np.ndarray, int | None, dict[str, Any], list[Note]]:
    """Convert grey raster pixels to uint8, uint16 or float32 (rules in the module docstring).

    Parameters
    ----------
    arr : numpy.ndarray
        2-D grey pixels as decoded.
    path : str
        The file's path, for messages.
    bits_hint : int or None
        Bits per sample declared by the file (TIFF), used for bits_stored when it fits the type.

    Returns
    -------
    pixels : numpy.ndarray
        The converted pixels.
    bits_stored : int or None
        Significant bits, None for float32.
    facts : dict
        Metadata entries pixel_offset, value_min, value_max.
    notes : list of Note
        Conversions worth knowing.

    Raises
    ------
    InputError
        For NaN/infinite float pixels or an unsupported pixel type.
    """
    kind, size = arr.dtype.kind, arr.dtype.itemsize * 8
    notes: list[Note] = []
    offset = 0
    if kind == "b":
        pixels, bits = arr.astype(np.uint8), 1
    elif kind in "iu" and size <= 16:
        if kind == "i":
            offset = 1 << (size - 1)
            pixels = (arr.astype(np.int32) + offset).astype(f"uint{size}")
        else:
            pixels = arr
        bits = bits_hint if bits_hint is not None and 0 < bits_hint <= size else size
    elif kind in "iu":
        lo, hi = int(arr.min()), int(arr.max())
        if lo >= 0 and hi <= np.iinfo(np.uint16).max:
            pixels, bits = arr.astype(np.uint16), 16
            notes.append(Note(f"{size}-bit integer pixels fit in 16 bits: stored as uint16"))
        else:
            pixels, bits = arr.astype(np.float32), None
            notes.append(Note(f"{size}-bit integer pixels ({lo} to {hi}) converted to float32"))
    elif kind == "f":
        check_finite(path, arr)
        pixels, bits = arr.astype(np.float32, copy=False), None
    else:
        raise InputError(path, f"unsupported pixel type {arr.dtype}")
    if pixels.dtype.kind == "f":
        value_min, value_max = float(pixels.min()), float(pixels.max())
    else:
        value_min, value_max = 0, (1 << bits) - 1
    return pixels, bits, {"pixel_offset": offset, "value_min": value_min, "value_max": value_max}, notes
