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


#: Spacing assumed wherever a length in mm must become pixels on an uncalibrated image (a typical CR/DX pixel):
#: it sizes filters, the registration grid and the matching distance; measurements of such an image stay in pixels.
NOMINAL_SPACING_MM = 0.15


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


#: Version of the Params schema; bumped when a parameter's meaning changes, so stored results can be compared.
PARAMS_SCHEMA_VERSION = 9  # 2: background_radius_mm, a disk opening beside the line openings; 3: mass channel;
# 4: cluster_distance_mm, grains of a cluster matched as one deposit; marker_core_mm and marker_zone_min_score;
# 5: marker_flat_fraction, burned-in graphics rejected as markers; 6: outline_* (outlines completed against a plane
# fitted around each lesion); 7: paired_piece_fraction (pieces of rejected candidates under the other film's lesions);
# 8: counterpart_min_area_mm2 (faint counterparts of the other film's large lesions); 9: unmatched_min_score (a
# lesion that matches nothing on the other film needs a higher score)

#: Transform models of the follow-up-to-baseline registration.
REGISTRATION_MODELS = ("similarity", "affine")


@dataclass(frozen=True)
class Params:
    """Every tunable of segmentation and measurement, in physical units (mm, mm^2).

    On an uncalibrated image every length is read as pixels and every area as pixels^2 (and the outputs say so).

    Attributes
    ----------
    background_line_mm : float
        Length of the straight lines whose grey openings (in every direction) make one of the two backgrounds:
        bright structures that contain such a line are in it, while deposits shorter than this in every direction
        stand out of it.
    n_orientations : int
        Number of line directions over 180 degrees.
    background_radius_mm : float
        Radius of the disk whose grey opening is the other background: what is narrower than the disk's diameter
        stands out of it, the long bands of sheet-like calcinosis among them (a line fits inside a band). The local
        background is the lower of the two, so a deposit stands out when it is short or narrow; cortical edges and
        bone texture stand out too, and the candidate model rejects them.
    mass_line_mm : float
        Length of the lines of the mass channel's background: deposits wider than ``background_line_mm`` (masses,
        12 to 40 mm) rise above it whole, where the film's background takes them in and leaves only their rim; 0
        turns the channel off.
    mass_min_area_mm2 : float
        Smallest region kept from the mass channel (smaller deposits are found by the film's own background).
    smoothing_mm : float
        Standard deviation of the Gaussian that smooths the image before detection (a matched filter for the
        smallest deposits; below 0.3 pixel no smoothing is done).
    extent_smoothing_mm : float
        Standard deviation of the lighter smoothing of the image on which each lesion's extent is grown.
    noise_quantile : float
        Quantile of the response, per background level, that measures what noise and texture alone reach.
    noise_window_mm : float
        Side of the window over which the local noise-and-texture scale is averaged.
    noise_bin_min_area_mm2 : float
        Least area of the field each background-level bin of the noise model stands for (a small crop gets fewer
        bins): deposits move a bin's quantile only when they cover a tenth of it.
    seed_k : float
        A lesion must rise above the local background by ``seed_k`` times the noise scale somewhere.
    grow_k : float
        Its extent is every connected pixel above ``grow_k`` times the noise scale (hysteresis).
    edge_fraction : float
        A lesion ends where its response falls below this fraction of its peak (the blurred skirt is not lesion).
    outline_min_area_mm2 : float
        Lesions of at least this area have their outline completed against their own surroundings
        (:mod:`calcimg.core.outline`): a plane fitted to a ring around the lesion, where the film's background,
        an opening, misses the downhill rim of a deposit lying on a slope of the tissue. Only lesions whose ring
        lies off bone and at least 70 % in the field and the body; pixels are only added. 0 turns this off.
    outline_ring_mm : tuple of float
        Inner and outer distance from the lesion of the ring the plane is fitted to (pixels of no candidate).
    outline_reach_mm : float
        The outline grows by at most this distance ...
    outline_ring_k : float
        ... into pixels above the plane by ``edge_fraction`` of the lesion's peak over it and by more than this
        many robust deviations of the ring's residuals, connected to the lesion.
    min_area_mm2, max_area_mm2 : float
        Accepted lesion area range.
    min_contrast_k : float
        Smallest mean excess of an accepted lesion over its background, in noise scales.
    min_relative_excess : float
        Smallest mean excess of an accepted lesion as a fraction of the image's tissue range (dense bone over
        the darkest tissue): calcinosis is nearly as dense as bone, faint blobs are not calcinosis.
    neighbour_window_mm : float
        Side of the square around each candidate in which the candidate model measures how crowded it is by
        other candidates (texture and noise breed crowds; a deposit in clean tissue stands alone).
    min_score : float
        Smallest accepted score of the learned candidate model (:mod:`calcimg.core.candidate_model`); 0 turns
        it off.
    ridge_elongation : float
        Candidates longer than this many times their width ...
    ridge_max_width_mm : float
        ... and thinner than this are rejected as ridges (cortical edges, skin folds, collimation edges).
    fill_holes : bool
        Fill holes inside lesions before measuring.
    fov_margin_mm : float
        Candidates closer than this to the edge of the field of view are rejected.
    min_tissue_fraction : float
        Candidates whose background is within this fraction of the tissue range above the air level (1st
        percentile of the field's background) lie on air, outside the body, and are rejected.
    marker_factor : float
        Candidates whose brightest pixel exceeds the dense-bone level by this fraction of the tissue range, or
        reaches a saturated plateau, are lead markers.
    marker_min_area_mm2 : float
        Smallest bright region taken for a lead marker (single hot pixels and small dense deposits are not).
    marker_margin_mm : float
        Candidates lying mostly within this distance of a marker (its blurred edge, processing halo and plastic
        plate) are rejected as markers, unless their score reaches ``marker_zone_min_score`` ...
    marker_core_mm : float
        ... and they lie outside this distance of it.
    marker_zone_min_score : float
        Score that clears a candidate in a marker's zone but outside its core: a deposit beside the lead letter.
        Without the score (``min_score`` 0) the whole zone is rejected.
    marker_flat_fraction : float
        Candidates of which at least this fraction of pixels equal all their neighbours are graphics burned into
        the pixels (a laterality letter, text), rejected as markers: exposed anatomy always carries noise. Not
        applied on a film whose field is flat in more than 1 % of its pixels (a lossy 8-bit export, where
        compression flattens deposits too). Above 1 this is off.
    size_classes_mm : tuple of float
        Equivalent-diameter limits between the size classes punctate / small / medium / large / mass.
    registration_model : str
        "similarity" (rotation, isotropic scale, shift) or "affine": how the follow-up is aligned to the baseline.
    match_distance_mm : float
        A lesion that overlaps no lesion of the other visit is matched to the nearest one within this distance
        (in the baseline frame, between their nearest pixels, or centroids for a lesion the warping dropped).
    cluster_distance_mm : float
        A lesion still matched to nothing joins the match group of a lesion of its own visit that is matched, when
        their nearest pixels lie within this distance (baseline frame): the grains of a cluster of which one film
        shows fewer are one deposit that changed, not grains that resolved or appeared. 0 turns this off.
    change_band : float
        Relative area change of a matched lesion (group) beyond which it is "grown" or "shrunk" (0.2 = 20%).
    progression_pct, response_pct : float
        Pair categories on the % change of the total area: progression above +``progression_pct``, improvement
        below -``progression_pct``; a response needs a reduction of at least ``response_pct`` and no new lesion.
    paired_support_min_score : float
        In a comparison, a candidate rejected only for its score is still accepted when its score reaches this
        and the other film shows an accepted lesion at the same place (within ``match_distance_mm``): a deposit
        seen clearly on one film and faintly on the other is neither new nor resolved. At or above
        ``min_score`` this is off.
    paired_piece_fraction : float
        In a comparison, where a lesion the other film accepted lies at least half inside a candidate this film
        rejected as a marker, too large, a ridge, too faint or for its score (a stone merged with a bone, a deposit
        beside a lead letter), the part of that candidate within ``match_distance_mm`` of the lesion whose response
        reaches this share of the candidate's peak under the lesion is accepted as a lesion
        (:mod:`calcimg.core.paired`). 0 turns this off.
    counterpart_min_area_mm2 : float
        In a comparison, a lesion of at least this area on one film with no lesion within ``match_distance_mm`` on
        the other is looked for there: what rises clearly above a plane fitted around it and lies mostly under it
        is accepted as that film's lesion, measured on its own pixels (a large deposit too faint on one film for
        its detection; :func:`calcimg.core.paired.faint_counterparts`). 0 turns this off.
    unmatched_min_score : float
        In a comparison, a lesion that matches nothing on the other film although that film sees its place (it
        would be called new or resolved) stands only when the highest score of its candidates reaches this;
        otherwise they are rejected as "unconfirmed". False detections rarely repeat at the same place on two
        films, so a lesion seen on one film alone needs stronger evidence than one the other film confirms.
        Lesions taken on the other film's evidence are left alone. At or below ``min_score`` this is off.
    correct_magnification : bool
        Divide the follow-up's areas by the square of the registration's relative scale before comparing them, so
        that a change of magnification (patient-detector distance) is not counted as a change of the deposits.
    schema_version : int
        :data:`PARAMS_SCHEMA_VERSION` when written.
    """

    background_line_mm: float = 12.0
    n_orientations: int = 12
    background_radius_mm: float = 2.0
    mass_line_mm: float = 50.0
    mass_min_area_mm2: float = 50.0
    smoothing_mm: float = 0.3
    extent_smoothing_mm: float = 0.1
    noise_quantile: float = 0.9
    noise_window_mm: float = 10.0
    noise_bin_min_area_mm2: float = 250.0
    seed_k: float = 3.0
    grow_k: float = 1.0
    edge_fraction: float = 0.1
    outline_min_area_mm2: float = 5.0
    outline_ring_mm: tuple[float, float] = (1.0, 2.0)
    outline_reach_mm: float = 1.0
    outline_ring_k: float = 2.0
    min_area_mm2: float = 0.1
    max_area_mm2: float = 2500.0
    min_contrast_k: float = 0.0
    min_relative_excess: float = 0.0
    neighbour_window_mm: float = 4.0
    min_score: float = 0.94
    ridge_elongation: float = 4.0
    ridge_max_width_mm: float = 2.0
    fill_holes: bool = True
    fov_margin_mm: float = 1.0
    marker_factor: float = 0.5
    marker_min_area_mm2: float = 5.0
    marker_margin_mm: float = 8.0
    marker_core_mm: float = 3.0
    marker_zone_min_score: float = 0.999
    marker_flat_fraction: float = 0.5
    min_tissue_fraction: float = 0.08
    size_classes_mm: tuple[float, ...] = (1.0, 3.0, 8.0, 20.0)
    registration_model: str = "similarity"
    match_distance_mm: float = 2.0
    cluster_distance_mm: float = 4.0
    change_band: float = 0.2
    progression_pct: float = 25.0
    response_pct: float = 20.0
    paired_support_min_score: float = 0.5
    paired_piece_fraction: float = 0.3
    counterpart_min_area_mm2: float = 5.0
    unmatched_min_score: float = 0.99
    correct_magnification: bool = True
    schema_version: int = PARAMS_SCHEMA_VERSION

    def __post_init__(self) -> None:
        positive = (
            "background_line_mm",
            "background_radius_mm",
            "neighbour_window_mm",
            "n_orientations",
            "seed_k",
            "grow_k",
            "max_area_mm2",
            "ridge_elongation",
        )
        for name in positive:
            if not (float(getattr(self, name)) > 0):
                raise ValueError(f"Params.{name} must be positive, got {getattr(self, name)!r}")
        non_negative = (
            "min_area_mm2",
            "min_contrast_k",
            "min_relative_excess",
            "ridge_max_width_mm",
            "fov_margin_mm",
            "smoothing_mm",
            "mass_line_mm",
            "mass_min_area_mm2",
            "min_tissue_fraction",
            "match_distance_mm",
            "cluster_distance_mm",
            "change_band",
            "progression_pct",
            "response_pct",
            "paired_support_min_score",
            "paired_piece_fraction",
            "counterpart_min_area_mm2",
            "unmatched_min_score",
            "marker_min_area_mm2",
            "marker_core_mm",
            "marker_zone_min_score",
            "noise_bin_min_area_mm2",
            "marker_flat_fraction",
            "outline_min_area_mm2",
            "outline_reach_mm",
            "outline_ring_k",
        )
        for name in non_negative:
            if not (float(getattr(self, name)) >= 0):
                raise ValueError(f"Params.{name} must be zero or positive, got {getattr(self, name)!r}")
        if self.paired_piece_fraction > 1:
            raise ValueError(f"Params.paired_piece_fraction must be at most 1, got {self.paired_piece_fraction!r}")
        if self.unmatched_min_score > 1:
            # A score never exceeds 1: every lesion that matches nothing would be rejected.
            raise ValueError(f"Params.unmatched_min_score must be at most 1, got {self.unmatched_min_score!r}")
        if self.registration_model not in REGISTRATION_MODELS:
            raise ValueError(f"Params.registration_model must be one of {REGISTRATION_MODELS}")
        if self.grow_k > self.seed_k:
            raise ValueError("Params.grow_k must not exceed seed_k")
        if self.min_area_mm2 >= self.max_area_mm2:
            raise ValueError("Params.min_area_mm2 must be below max_area_mm2")
        ring = tuple(float(v) for v in self.outline_ring_mm)
        if len(ring) != 2 or not 0 <= ring[0] < ring[1]:
            raise ValueError("Params.outline_ring_mm must be (inner, outer) with 0 <= inner < outer")
        object.__setattr__(self, "outline_ring_mm", ring)
        if list(self.size_classes_mm) != sorted(self.size_classes_mm):
            raise ValueError("Params.size_classes_mm must be increasing")
        object.__setattr__(self, "size_classes_mm", tuple(float(v) for v in self.size_classes_mm))

    @property
    def context_mm(self) -> float:
        """How far around a pixel the film's own detection looks (the background's line and disk, the noise window):
        the margin a region needs so that segmenting it alone decides its middle's deposits of up to the line's size
        as the whole film would. The mass channel looks further (``mass_line_mm``) and is left out: with its margin a
        zoomed-in preview would no longer fit its pixel budget at full resolution, and masses are seen whole on the
        whole film."""
        return max(self.background_line_mm, 2 * self.background_radius_mm, self.noise_window_mm)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every parameter."""
        return {name: (list(value) if isinstance(value, tuple) else value) for name, value in self.__dict__.items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Params:
        """Build Params from a dict as written by :meth:`to_dict`; unknown keys are an error, and a dict of an older
        schema is read as the current one, its missing keys taking their defaults.

        Raises
        ------
        ValueError
            On an unknown key, a newer schema version, or an invalid value.
        """
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown parameter(s): {', '.join(unknown)}")
        if int(values.get("schema_version", PARAMS_SCHEMA_VERSION)) > PARAMS_SCHEMA_VERSION:
            raise ValueError("these Params were written by a newer calcimg")
        # An older file is read as this schema (the keys it lacks take their defaults), so that the Params a result
        # records are the ones that ran.
        cleaned = {**values, "schema_version": PARAMS_SCHEMA_VERSION}
        return cls(**cleaned)  # __post_init__ makes the lists of numbers tuples
