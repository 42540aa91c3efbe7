"""Every tunable range of the phantom generator, with defaults that mimic clinical films.

All lengths are in mm, angles in degrees, probabilities in [0, 1]. A range is a ``(low, high)`` tuple from which
each pair (or each visit) draws uniformly unless its docstring says otherwise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: The anatomical sites a phantom can show, in the order :func:`~calcimg.phantom.write_phantoms` cycles through.
SITES: tuple[str, ...] = ("hand", "forearm", "knee", "pelvis")

#: Other names accepted for a site.
SITE_ALIASES: dict[str, str] = {"elbow": "forearm", "hip": "pelvis"}

#: Lesion kinds, from the clinical description of calcinosis cutis.
LESION_KINDS: tuple[str, ...] = ("punctate", "stone", "cluster", "sheet", "mass")

#: Change classes of a lesion between the visits.
CHANGES: tuple[str, ...] = ("stable", "grown", "shrunk", "resolved", "new")

#: Intended pair-level trends; the category written to the truth is always computed from the areas.
TRENDS: tuple[str, ...] = ("progression", "improvement", "stable", "resolution")


@dataclass(frozen=True)
class SiteSpec:
    """Fixed facts of one anatomical site.

    Attributes
    ----------
    fov_mm : tuple of float
        (height, width) of the detector field in mm.
    spacing_mm : tuple of float
        Default range of the detector pixel spacing.
    body_part : str
        DICOM BodyPartExamined.
    view : str
        DICOM ViewPosition.
    kinds : tuple of str
        Lesion kinds that occur at this site.
    """

    fov_mm: tuple[float, float]
    spacing_mm: tuple[float, float]
    body_part: str
    view: str
    kinds: tuple[str, ...]


SITE_SPECS: dict[str, SiteSpec] = {
    "hand": SiteSpec((250.0, 200.0), (0.1, 0.175), "HAND", "PA", ("punctate", "stone", "cluster", "sheet")),
    "forearm": SiteSpec((320.0, 220.0), (0.1, 0.2), "ELBOW", "AP", LESION_KINDS),
    "knee": SiteSpec((300.0, 240.0), (0.1, 0.2), "KNEE", "AP", LESION_KINDS),
    "pelvis": SiteSpec((350.0, 430.0), (0.14, 0.2), "PELVIS", "AP", LESION_KINDS),
}

_CHANGE_WEIGHTS: dict[str, dict[str, float]] = {
    "progression": {"stable": 0.25, "grown": 0.40, "shrunk": 0.05, "resolved": 0.0, "new": 0.30},
    "improvement": {"stable": 0.25, "grown": 0.05, "shrunk": 0.45, "resolved": 0.25, "new": 0.0},
    "stable": {"stable": 0.80, "grown": 0.08, "shrunk": 0.08, "resolved": 0.02, "new": 0.02},
    "resolution": {"stable": 0.0, "grown": 0.0, "shrunk": 0.0, "resolved": 1.0, "new": 0.0},
}


def _default_change_weights() -> dict[str, dict[str, float]]:
    return {k: dict(v) for k, v in _CHANGE_WEIGHTS.items()}


@dataclass(frozen=True)
class PhantomConfig:
    """Ranges and probabilities that drive :func:`~calcimg.phantom.make_pair`.

    Attributes
    ----------
    spacing_mm : tuple of float or None
        Range of the detector pixel spacing; None uses the site's range (:data:`SITE_SPECS`).
    shape : tuple of int or None
        Force the (rows, cols) of both visits (the spacing then follows from the site's field of view, which may
        take it outside ``spacing_mm``); for small, fast test images.
    max_pixels : int or None
        Coarsen the spacing until rows x cols is at most this.
    bits_stored : tuple of int
        Inclusive range of BitsStored.
    p_monochrome1 : float
        Probability that a visit is stored MONOCHROME1 (inverted).
    p_new_detector : float
        Probability that the follow-up is acquired on another detector (new spacing, bits and photometric).
    max_rotation_deg, max_shift_mm, max_magnification : float
        Repositioning limits of the follow-up: rotation, shift (each axis) and relative magnification change.
    pre_magnification : tuple of float
        Geometric magnification of the baseline (detector mm per anatomical mm).
    pose_rotation_deg, pose_shift_mm : float
        Limits of the patient's pose on the baseline film.
    n_lesions : tuple of int
        Inclusive range of the number of distinct lesions in a pair (present in either visit).
    kind_weights : dict
        Relative frequency of each lesion kind (kinds a site lacks are dropped).
    p_over_bone : float
        Fraction of lesions projected over bone.
    p_touching : float
        Probability that a lesion is placed touching an earlier one (they then share a connected component).
    trend_weights : dict
        Relative frequency of each intended pair trend.
    change_weights : dict
        For each trend, the relative frequency of each lesion change class.
    grow_factor, shrink_factor, stable_factor : tuple of float
        Ranges of the area factor (post area / pre area) per change class.
    lesion_mu_ratio : tuple of float
        Lesion attenuation per mm relative to cortical bone.
    min_lesion_px : float
        Smallest lesion radius in pixels of the coarser visit (punctate lesions are enlarged to it on coarse grids).
    aec_quanta : tuple of float
        Detected quanta per pixel behind the median anatomy (automatic exposure control; sets the quantum noise),
        drawn log-uniformly.
    heel : tuple of float
        Total relative intensity change across the field from the heel effect.
    scatter : tuple of float
        Scatter-to-primary ratio behind one unit of attenuation (it grows with the patient's thickness).
    blur_px : tuple of float
        Detector blur, Gaussian sigma in pixels.
    beam_hardness : tuple of float
        Per-visit factor on the attenuation coefficients (exposure differences between visits).
    gamma : tuple of float
        Power of the display tone curve.
    air_level, dense_level : tuple of float
        Display level of air and of the densest anatomy as a fraction of full scale.
    p_edge_enhancement : float
        Probability of vendor unsharp masking.
    usm_amount, usm_sigma_mm : tuple of float
        Unsharp mask gain and kernel sigma.
    collimation_sides : tuple of float
        Relative frequency of 0, 1, 2, 3 and 4 collimated sides.
    collimation_mm : tuple of float
        Depth of a collimation band.
    collimation_angle_deg : float
        Largest tilt of a collimation edge.
    p_black_collimation : float
        Probability that the bands are masked to black by software instead of left white (unexposed).
    marker_height_mm : tuple of float
        Height of the lead L/R letter.
    p_marker_mirrored : float
        Probability the letter is seen mirrored.
    """

    spacing_mm: tuple[float, float] | None = None
    shape: tuple[int, int] | None = None
    max_pixels: int | None = None
    bits_stored: tuple[int, int] = (10, 16)
    p_monochrome1: float = 0.3
    p_new_detector: float = 0.2
    max_rotation_deg: float = 5.0
    max_shift_mm: float = 10.0
    max_magnification: float = 0.03
    pre_magnification: tuple[float, float] = (1.0, 1.0)
    pose_rotation_deg: float = 6.0
    pose_shift_mm: float = 6.0
    n_lesions: tuple[int, int] = (2, 10)
    kind_weights: dict[str, float] = field(
        default_factory=lambda: {"punctate": 0.15, "stone": 0.5, "cluster": 0.12, "sheet": 0.15, "mass": 0.08}
    )
    p_over_bone: float = 0.2
    p_touching: float = 0.08
    trend_weights: dict[str, float] = field(
        default_factory=lambda: {"progression": 0.35, "improvement": 0.35, "stable": 0.2, "resolution": 0.1}
    )
    change_weights: dict[str, dict[str, float]] = field(default_factory=_default_change_weights)
    grow_factor: tuple[float, float] = (1.4, 3.0)
    shrink_factor: tuple[float, float] = (0.25, 0.7)
    stable_factor: tuple[float, float] = (0.93, 1.07)
    lesion_mu_ratio: tuple[float, float] = (0.8, 1.2)
    min_lesion_px: float = 1.5
    aec_quanta: tuple[float, float] = (50.0, 800.0)
    heel: tuple[float, float] = (0.03, 0.15)
    scatter: tuple[float, float] = (0.05, 0.25)
    blur_px: tuple[float, float] = (0.5, 1.0)
    beam_hardness: tuple[float, float] = (0.88, 1.12)
    gamma: tuple[float, float] = (0.6, 0.95)
    air_level: tuple[float, float] = (-0.03, 0.06)
    dense_level: tuple[float, float] = (0.8, 0.93)
    p_edge_enhancement: float = 0.5
    usm_amount: tuple[float, float] = (0.3, 1.2)
    usm_sigma_mm: tuple[float, float] = (0.8, 4.0)
    collimation_sides: tuple[float, float, float, float, float] = (0.3, 0.15, 0.25, 0.1, 0.2)
    collimation_mm: tuple[float, float] = (4.0, 30.0)
    collimation_angle_deg: float = 2.0
    p_black_collimation: float = 0.3
    marker_height_mm: tuple[float, float] = (9.0, 15.0)
    p_marker_mirrored: float = 0.25

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a JSON-safe dict (tuples become lists)."""
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def resolve_site(site: str) -> str:
    """The canonical name of a site.

    Parameters
    ----------
    site : str
        One of :data:`SITES` or :data:`SITE_ALIASES` (case-insensitive).

    Returns
    -------
    str

    Raises
    ------
    calcimg.errors.ParameterError
        When the site is unknown.

    Examples
    --------
    >>> resolve_site("Elbow")
    'forearm'
    """
    from calcimg.errors import ParameterError

    name = site.strip().lower()
    name = SITE_ALIASES.get(name, name)
    if name not in SITE_SPECS:
        raise ParameterError(f"unknown phantom site {site!r}; choose one of {', '.join(SITES)}")
    return name
