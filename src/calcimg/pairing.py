"""Which films of a study are compared with which: timepoints, grouping, pairing and the batch plan.

The rules (documented for users in ``docs/batch.md``):

* Every image is *placed* as (subject, site, timepoint) from, in order of precedence, a manifest row, its DICOM
  header (PatientID + BodyPartExamined [+ laterality + view], dated by StudyDate or AcquisitionDate) or its file
  name ``<subject>_<site>_<timepoint>.<ext>``. An image that none of them places is a single.
* Images with the same subject and site form a group, ordered by timepoint. Within a group every timepoint must be
  of one kind (dates, ``t<N>``, ``v<N>``, or post/follow-up) apart from baseline tokens, which come first in any kind.
* Two images of one group at the same timepoint are an ambiguity: both are left out and reported.
* Each follow-up is compared with the first timepoint (the baseline), and with the previous one too on request.
  A group with one image gives a single (segmented only).

Everything here except :func:`read_header` and :func:`probe_image` is a pure function of its arguments.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import os
import re
import stat
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from calcimg.errors import InputError
from calcimg.io import sniff_format

#: Key of the pseudonyms when the user gives none. It is published here, so it is **not secret**: anyone holding
#: a subject id can recompute its pseudonym. Give your own with ``--pseudonym-key`` or ``CALCIMG_PSEUDONYM_KEY``.
DEFAULT_PSEUDONYM_KEY = "calcimg-default-pseudonym-key-NOT-SECRET"

#: Environment variable read for the pseudonym key.
PSEUDONYM_KEY_ENV = "CALCIMG_PSEUDONYM_KEY"

#: Hex digits of HMAC-SHA256 kept in a pseudonym (48 bits: collisions are negligible for any study's size).
PSEUDONYM_DIGITS = 12

_BASELINE_TOKENS = frozenset({"pre", "baseline", "base", "bl"})
_FOLLOWUP_RE = re.compile(r"^(?:post|followup|follow-up|fu)(\d*)$")
_T_RE = re.compile(r"^t(\d+)$")
_V_RE = re.compile(r"^(?:v|visit)(\d+)$")
_DATE_RE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")

#: Manifest columns: required, one of, optional.
MANIFEST_REQUIRED = ("subject", "site", "path")
MANIFEST_TIME = ("timepoint", "date")
MANIFEST_OPTIONAL = ("spacing",)


@dataclass(frozen=True, order=True)
class Timepoint:
    """A visit's place in time.

    Attributes
    ----------
    rank : tuple
        Sort key within a group: ``(0,)`` for baseline tokens, ``(1, n)`` otherwise (``n`` the number or the
        date's ordinal).
    kind : str
        ``"baseline"`` (pre, baseline, base, bl: first in any group), ``"followup"`` (post, followup, fu with
        an optional number), ``"t"``, ``"v"`` or ``"date"``.
    label : str
        The token as written (lower case), used in output names.
    date : str or None
        ``YYYYMMDD`` when the timepoint is a date.
    """

    rank: tuple[int, ...]
    kind: str = field(compare=False)
    label: str = field(compare=False)
    date: str | None = field(default=None, compare=False)


def parse_date(text: str) -> str | None:
    """``YYYYMMDD`` of a date written ``YYYYMMDD`` or ``YYYY-MM-DD``; None when it is not a valid date.

    Examples
    --------
    >>> parse_date("2019-07-20"), parse_date("20190720"), parse_date("20191340")
    ('20190720', '20190720', None)
    """
    match = _DATE_RE.match(text.strip())
    if not match:
        return None
    try:
        day = dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None
    return day.strftime("%Y%m%d")


def parse_timepoint(token: str) -> Timepoint | None:
    """Understand a timepoint token (case-insensitive).

    Parameters
    ----------
    token : str
        ``pre``, ``baseline``, ``base``, ``bl`` (baseline); ``post``, ``followup``, ``follow-up``, ``fu``,
        optionally numbered (``fu2``: second follow-up; a bare ``post`` is number 1); ``t0``, ``t1``, ...;
        ``v1``, ``visit2``, ...; a date ``YYYYMMDD`` or ``YYYY-MM-DD``.

    Returns
    -------
    Timepoint or None
        None when the token is none of these.

    Examples
    --------
    >>> parse_timepoint("Baseline").kind, parse_timepoint("fu2").rank, parse_timepoint("t1").rank
    ('baseline', (1, 2), (1, 1))
    >>> parse_timepoint("20190720").date, parse_timepoint("week3") is None
    ('20190720', True)
    """
    label = token.strip().lower()
    if label in _BASELINE_TOKENS:
        return Timepoint((0,), "baseline", label)
    if match := _FOLLOWUP_RE.match(label):
        return Timepoint((1, int(match[1] or 1)), "followup", label)
    if match := _T_RE.match(label):
        return Timepoint((1, int(match[1])), "t", label)
    if match := _V_RE.match(label):
        return Timepoint((1, int(match[1])), "v", label)
    if (date := parse_date(label)) is not None:
        return Timepoint(
            (1, dt.date.fromisoformat(f"{date[:4]}-{date[4:6]}-{date[6:]}").toordinal()), "date", date, date
        )
    return None


def date_timepoint(date: str, label: str | None = None) -> Timepoint:
    """The Timepoint of a date (``YYYYMMDD``), labelled ``label`` or the date."""
    ordinal = dt.date(int(date[:4]), int(date[4:6]), int(date[6:])).toordinal()
    return Timepoint((1, ordinal), "date", (label or date).lower(), date)


def parse_name(path: str | os.PathLike[str]) -> tuple[str, str, Timepoint] | None:
    """Subject, site and timepoint from a file name ``<subject>_<site>_<timepoint>.<ext>``.

    The stem is split at underscores: the first part is the subject, the last the timepoint, and the parts
    between (one or more, joined by ``_``) the site, so ``P01_hand_L_fu1.png`` is subject ``P01``, site
    ``hand_L``, first follow-up.

    Returns
    -------
    (str, str, Timepoint) or None
        None when the stem has fewer than three parts or its last part is not a timepoint.

    Examples
    --------
    >>> subject, site, tp = parse_name("S01_hand_pre.dcm")
    >>> subject, site, tp.kind
    ('S01', 'hand', 'baseline')
    >>> parse_name("scan.png") is None
    True
    """
    name = Path(path).name
    stem = name[: -len("".join(Path(name).suffixes))] if Path(name).suffixes else name
    parts = stem.split("_")
    if len(parts) < 3 or not all(parts):
        return None
    timepoint = parse_timepoint(parts[-1])
    if timepoint is None:
        return None
    return parts[0], "_".join(parts[1:-1]), timepoint


@dataclass(frozen=True)
class ImageRecord:
    """One input image and where it was placed.

    Attributes
    ----------
    path : pathlib.Path
        The file (absolute).
    relpath : str
        Its path relative to the study root (POSIX form): what outputs record.
    subject, site : str or None
        The group it belongs to (None when it could not be placed). ``subject`` is the raw id: never write it
        to an output without :func:`pseudonym`.
    timepoint : Timepoint or None
    source : str
        ``"manifest"``, ``"header"``, ``"name"`` or ``"none"``.
    spacing_mm : float or None
        Pixel spacing given by the manifest.
    """

    path: Path
    relpath: str
    subject: str | None = None
    site: str | None = None
    timepoint: Timepoint | None = None
    source: str = "none"
    spacing_mm: float | None = None


@dataclass(frozen=True)
class Problem:
    """Something the plan could not use: an unreadable file or an ambiguity."""

    kind: str  # "unreadable" or "ambiguity"
    files: tuple[str, ...]  # relative paths
    message: str


@dataclass(frozen=True)
class PairItem:
    """A follow-up to compare with an earlier film of the same subject and site."""

    item_id: str
    subject: str
    site: str
    baseline: ImageRecord
    followup: ImageRecord
    reference: str  # "baseline" or "previous"

    @property
    def images(self) -> tuple[ImageRecord, ...]:
        return (self.baseline, self.followup)


@dataclass(frozen=True)
class SingleItem:
    """An image without a partner: segmented only."""

    item_id: str
    subject: str | None
    site: str | None
    image: ImageRecord
    reason: str

    @property
    def images(self) -> tuple[ImageRecord, ...]:
        return (self.image,)


@dataclass
class Plan:
    """What a batch will do."""

    pairs: list[PairItem] = field(default_factory=list)
    singles: list[SingleItem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def items(self) -> list[PairItem | SingleItem]:
        """Pairs then singles, in a stable order."""
        return [*self.pairs, *self.singles]

    @property
    def unreadable(self) -> list[Problem]:
        return [p for p in self.problems if p.kind == "unreadable"]

    @property
    def ambiguities(self) -> list[Problem]:
        return [p for p in self.problems if p.kind == "ambiguity"]


# --- identifiers and names -------------------------------------------------------------------------------------


def resolve_pseudonym_key(key: str | None) -> tuple[str, bool]:
    """The pseudonym key to use and whether it is the published default.

    Order: ``key``, the environment variable :data:`PSEUDONYM_KEY_ENV`, :data:`DEFAULT_PSEUDONYM_KEY`.
    """
    for candidate in (key, os.environ.get(PSEUDONYM_KEY_ENV)):
        if candidate:
            return candidate, False
    return DEFAULT_PSEUDONYM_KEY, True


def pseudonym(subject: str, key: str) -> str:
    """Keyed pseudonym of a subject id: ``sub-`` and the first 12 hex digits of HMAC-SHA256(key, subject).

    Examples
    --------
    >>> pseudonym("P001", "k") == pseudonym("P001", "k") != pseudonym("P002", "k")
    True
    >>> len(pseudonym("P001", "k"))
    16
    """
    digest = hmac.new(key.encode("utf-8"), subject.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"sub-{digest[:PSEUDONYM_DIGITS]}"


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_name(text: str, max_length: int = 64) -> str:
    """A file-name-safe form of ``text``: runs of other characters than letters, digits and ``._+-`` become
    ``-``; no leading dot or dash; at most ``max_length`` characters; ``"unknown"`` when nothing is left.

    Examples
    --------
    >>> safe_name("../hand L/ä"), safe_name(".."), safe_name("")
    ('hand-L', 'unknown', 'unknown')
    """
    cleaned = _UNSAFE.sub("-", text).strip(".-")[:max_length].strip(".-")
    return cleaned or "unknown"


# --- reading what a file says about itself ------------------------------------------------------------------------


#: DICOM keywords read for placement, by metadata key (the same keys :mod:`calcimg.io.dicom` fills).
HEADER_TAGS = {
    "patient_id": "PatientID",
    "body_part": "BodyPartExamined",
    "laterality": ("ImageLaterality", "Laterality"),
    "view": "ViewPosition",
    "study_date": "StudyDate",
    "acquisition_date": ("AcquisitionDate", "ContentDate"),
}


def probe_image(path: Path) -> tuple[dict[str, str] | None, str | None]:
    """Check cheaply that a file can be an image and read its DICOM header.

    Returns
    -------
    (dict or None, str or None)
        The placement facts of a DICOM header (empty strings dropped) or None for a raster file, and a problem
        in words when the file cannot be an image (then the first item is None).
    """
    try:
        # a FIFO would block the open for ever and a device never end: only regular files can be images
        if not stat.S_ISREG(path.stat().st_mode):
            return None, "not a regular file (a device, pipe or socket)"
        with path.open("rb") as handle:
            head = handle.read(132)
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    if not head:
        return None, "empty file"
    kind = sniff_format(head)
    if kind in ("png", "tiff", "jpeg"):
        return None, None
    if kind in ("dicom", "dicom_bare") or path.suffix.lower() in (".dcm", ".dicom", ""):
        # A file without preamble and file meta is read as calcimg's reader reads it (forced).
        return read_header(path, force=kind == "dicom_bare")
    return None, "not a PNG, TIFF, JPEG or DICOM file (unknown signature)"


def read_header(path: Path, force: bool = False) -> tuple[dict[str, str] | None, str | None]:
    """The placement facts of a DICOM file's header (no pixel data read); see :func:`probe_image`."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=force)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError, AttributeError) as exc:
        return None, f"not a readable DICOM file ({type(exc).__name__})"
    facts: dict[str, str] = {}
    for key, keywords in HEADER_TAGS.items():
        for keyword in (keywords,) if isinstance(keywords, str) else keywords:
            value = str(ds.get(keyword, "") or "").strip()
            if value:
                facts[key] = value
                break
    return facts, None


def place_from_header(facts: dict[str, str]) -> tuple[str, str, Timepoint] | None:
    """Subject, site and timepoint from DICOM header facts; None unless PatientID, BodyPartExamined and a
    date are all present.

    The site is the body part in lower case, then the laterality and the view when given (``hand_L_PA``).

    Examples
    --------
    >>> subject, site, tp = place_from_header(
    ...     {"patient_id": "X1", "body_part": "HAND", "laterality": "L", "view": "PA", "study_date": "20180423"})
    >>> subject, site, tp.label
    ('X1', 'hand_L_PA', '20180423')
    """
    subject, body_part = facts.get("patient_id"), facts.get("body_part")
    date = next((d for d in (parse_date(facts.get(k, "")) for k in ("study_date", "acquisition_date")) if d), None)
    if not subject or not body_part or date is None:
        return None
    site = "_".join([body_part.lower(), *(facts[k] for k in ("laterality", "view") if facts.get(k))])
    return subject, site, date_timepoint(date)


# --- manifest ---------------------------------------------------------------------------------------------------


def read_manifest(manifest: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> list[ImageRecord]:
    """Read and validate a manifest CSV.

    Parameters
    ----------
    manifest : str or PathLike
        CSV with a header row: ``subject``, ``site``, ``path`` and at least one of ``timepoint`` and ``date``;
        optional ``spacing`` (mm). Paths are relative to the manifest's folder.
    root : str or PathLike, optional
        The study root: no path may lead outside it (default: the manifest's folder).

    Returns
    -------
    list of ImageRecord
        One per row, placed with source ``"manifest"``.

    Raises
    ------
    InputError
        Naming the manifest and every faulty line: a missing column, an empty field, a timepoint that is not
        understood without a date, an invalid date or spacing, an absolute path or one leading outside the
        study root (``..``).
    """
    manifest = Path(manifest)
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(manifest, f"cannot read the manifest ({exc})") from exc
    return parse_manifest(text, manifest.parent, Path(root) if root is not None else manifest.parent, str(manifest))


def parse_manifest(text: str, base: Path, root: Path, name: str = "manifest") -> list[ImageRecord]:
    """Validate manifest text; see :func:`read_manifest` (``base``: the folder paths are relative to)."""
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip().lower() for c in reader.fieldnames or []]
    missing = [c for c in MANIFEST_REQUIRED if c not in columns]
    if missing or not any(c in columns for c in MANIFEST_TIME):
        need = [*missing] + ([] if any(c in columns for c in MANIFEST_TIME) else ["timepoint or date"])
        raise InputError(name, f"manifest lacks the column(s) {', '.join(need)} (found: {', '.join(columns)})")
    reader.fieldnames = columns
    root_resolved = root.resolve()
    records: list[ImageRecord] = []
    errors: list[str] = []
    for line, row in enumerate(reader, start=2):
        values = {k: (v or "").strip() for k, v in row.items() if k is not None}
        try:
            records.append(_manifest_record(values, base, root_resolved))
        except ValueError as exc:
            errors.append(f"line {line}: {exc}")
    if errors:
        shown = "; ".join(errors[:10]) + (f"; and {len(errors) - 10} more" if len(errors) > 10 else "")
        raise InputError(name, f"invalid manifest: {shown}")
    if not records:
        raise InputError(name, "the manifest lists no image")
    return records


def _manifest_record(values: dict[str, str], base: Path, root: Path) -> ImageRecord:
    for column in MANIFEST_REQUIRED:
        if not values.get(column):
            raise ValueError(f"empty {column}")
    raw = values["path"]
    pure = PurePosixPath(raw.replace("\\", "/"))
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", raw):
        raise ValueError(f"absolute path {raw!r} (paths are relative to the manifest)")
    path = (base / pure).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"path {raw!r} leads outside the study root {root}")
    label, date_text = values.get("timepoint", ""), values.get("date", "")
    if date_text:
        date = parse_date(date_text)
        if date is None:
            raise ValueError(f"date {date_text!r} is not YYYYMMDD or YYYY-MM-DD")
        timepoint = date_timepoint(date, label or None)
    elif (timepoint := parse_timepoint(label)) is None:
        raise ValueError(f"timepoint {label!r} is not understood and no date is given")
    spacing = None
    if values.get("spacing"):
        try:
            spacing = float(values["spacing"])
        except ValueError:
            raise ValueError(f"spacing {values['spacing']!r} is not a number") from None
        if not (spacing > 0 and spacing < 10):
            raise ValueError(f"spacing {values['spacing']!r} mm is not a pixel spacing (0 < spacing < 10)")
    return ImageRecord(
        path=path,
        relpath=path.relative_to(root).as_posix(),
        subject=values["subject"],
        site=values["site"],
        timepoint=timepoint,
        source="manifest",
        spacing_mm=spacing,
    )


# --- placing discovered files -------------------------------------------------------------------------------------


def place_image(path: Path, root: Path, header: dict[str, str] | None) -> ImageRecord:
    """Place a discovered file: by its DICOM header when that says enough, else by its name, else not at all."""
    relpath = _relative(path, root)
    if header is not None and (placed := place_from_header(header)) is not None:
        return ImageRecord(path, relpath, *placed, source="header")
    if (placed := parse_name(path)) is not None:
        return ImageRecord(path, relpath, *placed, source="name")
    return ImageRecord(path, relpath)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        pass
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except (ValueError, RuntimeError, OSError):  # outside the root, or a symbolic link loop
        return path.name


# --- the plan -----------------------------------------------------------------------------------------------------


def plan_batch(
    records: Iterable[ImageRecord],
    name_subject: Callable[[str], str],
    also_previous: bool = False,
    problems: Sequence[Problem] = (),
) -> Plan:
    """Group placed images and decide the pairs and singles.

    Parameters
    ----------
    records : iterable of ImageRecord
        Every readable input.
    name_subject : callable
        Maps a subject id to the name used in item ids and outputs (a pseudonym, or the id sanitised).
    also_previous : bool
        Compare each follow-up with the previous timepoint as well as with the baseline.
    problems : sequence of Problem
        Problems found before (unreadable files), carried into the plan.

    Returns
    -------
    Plan
        Items in a stable order (by subject name, site, timepoint); item ids are
        ``<subject>/<site>/<baseline>_vs_<followup>`` for pairs (``..._vs_..._prev`` is never needed: a pair
        with the previous timepoint that is not the baseline has its own timepoints), ``<subject>/<site>/<tp>``
        for singles and ``unplaced/<name>`` for images without placement.
    """
    plan = Plan(problems=list(problems))
    groups: dict[tuple[str, str], list[ImageRecord]] = defaultdict(list)
    unplaced: list[ImageRecord] = []
    for record in records:
        if record.subject is None or record.site is None or record.timepoint is None:
            unplaced.append(record)
        else:
            groups[(record.subject, record.site)].append(record)

    for (subject, site), members in sorted(groups.items(), key=lambda kv: (name_subject(kv[0][0]), kv[0][1])):
        subject_name, site_name = name_subject(subject), safe_name(site)
        ordered = _usable_timepoints(members, subject_name, site, plan)
        prefix = f"{subject_name}/{site_name}"
        if not ordered:
            continue
        if len(ordered) == 1:
            image = ordered[0]
            plan.singles.append(SingleItem(f"{prefix}/{_tp_name(image)}", subject, site, image, "no other timepoint"))
            continue
        baseline = ordered[0]
        for k, followup in enumerate(ordered[1:], start=1):
            plan.pairs.append(_pair(prefix, subject, site, baseline, followup, "baseline"))
            if also_previous and k >= 2:
                plan.pairs.append(_pair(prefix, subject, site, ordered[k - 1], followup, "previous"))

    for record in sorted(unplaced, key=lambda r: r.relpath):
        digest = hashlib.sha256(record.relpath.encode("utf-8")).hexdigest()[:8]
        item_id = f"unplaced/{safe_name(Path(record.relpath).stem, 40)}-{digest}"
        plan.singles.append(
            SingleItem(item_id, None, None, record, "no subject/site/timepoint from manifest, header or name")
        )
    _check_unique_ids(plan)
    return plan


def _tp_name(record: ImageRecord) -> str:
    assert record.timepoint is not None
    return safe_name(record.timepoint.label, 32)


def _pair(prefix: str, subject: str, site: str, a: ImageRecord, b: ImageRecord, reference: str) -> PairItem:
    return PairItem(f"{prefix}/{_tp_name(a)}_vs_{_tp_name(b)}", subject, site, a, b, reference)


def _usable_timepoints(members: list[ImageRecord], subject_name: str, site: str, plan: Plan) -> list[ImageRecord]:
    """The group's images in time order, leaving out (and reporting) what cannot be ordered."""
    where = f"subject {subject_name}, site {site}"
    kinds = {m.timepoint.kind for m in members if m.timepoint is not None and m.timepoint.kind != "baseline"}
    if len(kinds) > 1:
        plan.problems.append(
            Problem(
                "ambiguity",
                tuple(sorted(m.relpath for m in members)),
                f"{where}: timepoints of different kinds ({', '.join(sorted(kinds))}) cannot be ordered",
            )
        )
        return []
    by_rank: dict[tuple[int, ...], list[ImageRecord]] = defaultdict(list)
    for member in members:
        assert member.timepoint is not None
        by_rank[member.timepoint.rank].append(member)
    usable = []
    for rank in sorted(by_rank):
        same = by_rank[rank]
        if len(same) > 1:
            labels = sorted({m.timepoint.label for m in same if m.timepoint is not None})
            plan.problems.append(
                Problem(
                    "ambiguity",
                    tuple(sorted(m.relpath for m in same)),
                    f"{where}: {len(same)} images for timepoint {'/'.join(labels)}; none of them is used",
                )
            )
            continue
        usable.append(same[0])
    return usable


def _check_unique_ids(plan: Plan) -> None:
    """Items whose sanitised names collide cannot share a folder: keep the first, report the others."""
    seen: dict[str, Any] = {}
    kept_pairs, kept_singles = [], []
    for item in plan.items:
        if item.item_id in seen:
            other = ", ".join(r.relpath for r in seen[item.item_id].images)
            plan.problems.append(
                Problem(
                    "ambiguity",
                    tuple(r.relpath for r in item.images),
                    f"output folder {item.item_id} would also hold {other}; rename the sites or timepoints",
                )
            )
            continue
        seen[item.item_id] = item
        (kept_pairs if isinstance(item, PairItem) else kept_singles).append(item)
    plan.pairs, plan.singles = kept_pairs, kept_singles
