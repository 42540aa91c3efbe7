"""The dataclasses that travel between calcimg's layers.

Only numpy is imported here so that every layer may depend on this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Where a Radiograph's pixel spacing came from, in order of preference for DICOM input.
SPACING_SOURCES = (
    "user",  # given on the command line or in the API; overrides everything
    "calibrated_pixel_spacing",  # DICOM PixelSpacing with PixelSpacingCalibrationType present
    # ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor (a factor of exactly 1 counts as no correction)
    "imager_pixel_spacing_magnification_corrected",
    "imager_pixel_spacing",  # DICOM ImagerPixelSpacing (at the detector)
    "pixel_spacing",  # DICOM PixelSpacing without a calibration type
    "file_resolution",  # TIFF/PNG resolution tags
    "none",  # uncalibrated: every length is in pixels
)


#: Metadata keys that identify a patient or a study; never written to outputs unless the user asks for them.
IDENTIFYING_KEYS = frozenset(
    {"patient_id", "patient_name", "patient_birth_date", "study_uid", "series_uid", "sop_uid", "accession_number"}
)


def public_metadata(metadata: dict[str, Any], keep_identifiers: bool = False) -> dict[str, Any]:
    """Return the metadata that may be written to an output.

    Parameters
    ----------
    metadata : dict
        A Radiograph's metadata.
    keep_identifiers : bool, default False
        Keep the keys of :data:`IDENTIFYING_KEYS` (only when the user asked for them).

    Returns
    -------
    dict
        A copy without identifying keys unless ``keep_identifiers``.

    Examples
    --------
    >>> public_metadata({"patient_id": "123", "modality": "DX"})
    {'modality': 'DX'}
    """
    if keep_identifiers:
        return dict(metadata)
    return {key: value for key, value in metadata.items() if key not in IDENTIFYING_KEYS}


@dataclass
class Radiograph:
    """A 2-D radiograph with bright meaning more attenuation (MONOCHROME2 sense).

    Attributes
    ----------
    pixels : numpy.ndarray
        2-D array (row, col). Integer data stays integer: uint16 for DICOM (shifted to start at zero when the
        source is signed), uint8 or uint16 for raster files; floating-point or non-integral rescaled data is
        float32.
    spacing_mm : tuple of float or None
        (row, col) pixel spacing in mm; None when uncalibrated.
    spacing_source : str
        One of :data:`SPACING_SOURCES`.
    path : str or None
        The file the pixels were read from.
    content_hash : str
        ``"sha256:<hex>"`` of the file's bytes (or of the pixel buffer when built in memory).
    bits_stored : int or None
        Significant bits of integer data.
    metadata : dict
        JSON-safe facts from the header: modality, body_part, laterality, view, study_date, acquisition_date,
        manufacturer, photometric (as stored), transfer_syntax, and the identifiers patient_id, patient_name,
        patient_birth_date, study_uid, series_uid, sop_uid. Identifiers must never be written to outputs unless
        the user asks for them.
    warnings : list of str
        What the reader had to assume or correct (for example a missing spacing).
    """

    pixels: np.ndarray
    spacing_mm: tuple[float, float] | None = None
    spacing_source: str = "none"
    path: str | None = None
    content_hash: str = ""
    bits_stored: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.pixels.ndim != 2:
            raise ValueError(f"Radiograph pixels must be 2-D, got shape {self.pixels.shape}")
        if self.spacing_source not in SPACING_SOURCES:
            raise ValueError(f"unknown spacing_source {self.spacing_source!r}")
        if (self.spacing_mm is None) != (self.spacing_source == "none"):
            raise ValueError("spacing_mm must be None exactly when spacing_source is 'none'")

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the image."""
        return (int(self.pixels.shape[0]), int(self.pixels.shape[1]))

    @property
    def calibrated(self) -> bool:
        """True when lengths can be given in mm."""
        return self.spacing_mm is not None

    @property
    def pixel_area_mm2(self) -> float | None:
        """Area of one pixel in mm^2, or None when uncalibrated."""
        if self.spacing_mm is None:
            return None
        return float(self.spacing_mm[0] * self.spacing_mm[1])

    def identity(self) -> dict[str, Any]:
        """The input's identity and calibration as recorded in every output (no patient identifiers)."""
        return {
            "path": self.path,
            "content_hash": self.content_hash,
            "shape": list(self.shape),
            "dtype": str(self.pixels.dtype),
            "bits_stored": self.bits_stored,
            "spacing_mm": None if self.spacing_mm is None else [float(s) for s in self.spacing_mm],
            "spacing_source": self.spacing_source,
        }
