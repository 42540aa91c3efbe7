"""A reader's review of one pair, without any GUI: run, edit lesions, undo/redo, re-measure, export, reopen.

:class:`ReviewSession` holds a :class:`calcimg.PairResult`, the label maps being edited (one per visit, each in its
own frame), the history of the edits and the Params. The napari widget is a thin view of it, so the whole review
flow is tested without a viewer.
"""

from __future__ import annotations

import datetime as _dt
import json
import warnings
from collections.abc import Iterable
from dataclasses import replace
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from calcimg import __version__
from calcimg.core.registration import Registration, warp_labels
from calcimg.errors import InputError
from calcimg.io import load_mask, load_radiograph
from calcimg.model import Params, Radiograph
from calcimg.pipeline import CandidateStage, PairResult, compare_pair, match_and_summarise, segment_image

from . import _edits
from ._measure import remeasure_pair

VISITS = ("pre", "post")
#: Figures of the automatic result kept in the review record, to show what the corrections changed.
_AUTOMATIC_KEYS = ("pre_count", "post_count", "area_change_pct", "category", "response", "new", "resolved")


class ReviewSession:
    """The state of one pair under review.

    Parameters
    ----------
    result : PairResult
        The comparison to review.
    params : Params
        The Params it was made with (used again to re-measure).
    stems : dict, optional
        File-name stems of the visits' files on export (default: the input files' stems, as ``calcimg compare``).
    previous_review : dict, optional
        The ``review`` record of a reopened export: its edits are kept in front of the new ones.

    Attributes
    ----------
    result : PairResult
        The latest measured comparison.
    labels : dict of str to numpy.ndarray
        ``{"pre": ..., "post": ...}``: the label maps being edited (int32).
    history : EditHistory
        Undo/redo of the edits.
    """

    def __init__(
        self,
        result: PairResult,
        params: Params,
        stems: dict[str, str] | None = None,
        previous_review: dict[str, Any] | None = None,
    ) -> None:
        self.result = result
        self.params = params
        self.labels = {visit: np.array(getattr(result, visit).labels, dtype=np.int32, copy=True) for visit in VISITS}
        self.history = _edits.EditHistory(self.labels)
        self.stems = stems or _default_stems(result)
        self.previous_review = previous_review or {}
        self.automatic = self.previous_review.get("automatic") or {
            k: result.summary.get(k) for k in (*_AUTOMATIC_KEYS, *_area_keys(result.summary))
        }
        self._stages: dict[str, CandidateStage] = {}

    # --------------------------------------------------------------------------------------------------------
    # making a session

    @classmethod
    def run(
        cls,
        pre: Radiograph,
        post: Radiograph,
        params: Params | None = None,
        include: dict[str, np.ndarray | None] | None = None,
        exclude: dict[str, np.ndarray | None] | None = None,
    ) -> ReviewSession:
        """Compare a pair (as :func:`calcimg.compare_pair`, with optional region masks) and start its review."""
        params = params or Params()
        return cls(compare_pair(pre, post, params, include=include, exclude=exclude), params)

    @classmethod
    def from_folder(cls, folder: str | PathLike[str]) -> ReviewSession:
        """Reopen a result folder written by ``calcimg compare``, ``calcimg batch`` or :meth:`export`.

        The radiographs are read again from the paths recorded in ``summary.json`` (or beside the folder), each
        visit is segmented again for its field of view and rejected candidates, and the saved label maps replace
        the segmentation's, so the review continues from the saved lesions.

        Raises
        ------
        calcimg.errors.InputError
            When the folder is not a pair result or an input image cannot be found.
        """
        folder = Path(folder)
        summary, visits = read_result_folder(folder)
        params = Params.from_dict(summary["params"])
        transform = Registration.from_dict(summary["registration"])
        segments = {}
        for visit in VISITS:
            info = visits[visit]
            radiograph = load_input(info["input"], folder)
            segment = segment_image(radiograph, params)
            labels = load_mask(info["labels"], radiograph.shape).astype(np.int32)
            segments[visit] = replace(segment, labels=labels)
        result = remeasure_pair(
            match_and_summarise(segments["pre"], segments["post"], transform, params),
            segments["pre"].labels,
            segments["post"].labels,
            params,
        )
        stems = {visit: visits[visit]["stem"] for visit in VISITS}
        session = cls(result, params, stems=stems, previous_review=summary.get("review"))
        return session

    # --------------------------------------------------------------------------------------------------------
    # state

    @property
    def edits(self) -> list[dict[str, Any]]:
        """Records of every edit in effect (those of a reopened review first)."""
        return [*self.previous_review.get("edits", []), *self.history.records]

    @property
    def dirty(self) -> bool:
        """True when the labels were edited since the last measurement."""
        return any(not np.array_equal(self.labels[v], getattr(self.result, v).labels) for v in VISITS)

    def lesion_ids(self, visit: str) -> list[int]:
        """Ids present in a visit's edited label map."""
        ids = np.unique(self.labels[visit])
        return [int(i) for i in ids if i > 0]

    # --------------------------------------------------------------------------------------------------------
    # edits

    def delete(self, visit: str, ids: Iterable[int]) -> bool:
        """Delete lesions of one visit; False when none of them was present."""
        ids = sorted({int(i) for i in ids})
        new = _edits.delete_labels(self.labels[visit], ids)
        return self.history.apply({"action": "delete", "visit": visit, "lesion_ids": ids}, {visit: new})

    def merge(self, visit: str, ids: Iterable[int]) -> int:
        """Merge lesions of one visit into one (the smallest id); returns that id.

        Raises
        ------
        ValueError
            With fewer than two lesions.
        """
        ids = sorted({int(i) for i in ids})
        new, into = _edits.merge_labels(self.labels[visit], ids)
        self.history.apply({"action": "merge", "visit": visit, "lesion_ids": ids, "into": into}, {visit: new})
        return into

    def add(self, visit: str, mask: np.ndarray) -> int:
        """Add a missed lesion drawn as a mask (its background pixels); returns its id (0 when nothing added)."""
        new, label = _edits.add_lesion(self.labels[visit], mask)
        changed = self.history.apply({"action": "add", "visit": visit, "lesion_id": label}, {visit: new})
        return label if changed else 0

    def rejected_candidates(self, visit: str) -> tuple[np.ndarray, pd.DataFrame]:
        """A visit's rejected candidates: their label map (candidate ids where no lesion of the edited labels lies,
        0 elsewhere) and table (id, reason, score, area).

        These are the segmentation's candidates, decided against; :meth:`accept_candidate` makes one a lesion.
        """
        segment = getattr(self.result, visit)
        rejected = segment.rejected_labels()
        rejected[self.labels[visit] > 0] = 0
        table = segment.rejected[[c for c in ("candidate_id", "reason", "score", "area_px") if c in segment.rejected]]
        return rejected, table.reset_index(drop=True)

    def accept_candidate(self, visit: str, candidate_id: int) -> int:
        """Make a rejected candidate a lesion, with the outline the segmentation found; returns its new id.

        A deposit that calcimg found but rejected (for its score, as a ridge, near a marker, ...) is added with
        the engine's own outline rather than painted by hand. Its pixels already in a lesion stay in that lesion.
        The edit records the candidate, why it was rejected and its score.

        Raises
        ------
        ValueError
            When ``candidate_id`` is not a rejected candidate of the visit, or lies wholly inside lesions.
        """
        candidate_id = int(candidate_id)
        rejected, table = self.rejected_candidates(visit)
        row = table.loc[table["candidate_id"] == candidate_id]
        if row.empty:
            raise ValueError(f"{candidate_id} is not a rejected candidate of the {visit} visit")
        new, label = _edits.add_lesion(self.labels[visit], rejected == candidate_id)
        score = row["score"].iloc[0] if "score" in row else float("nan")
        record = {
            "action": "accept_candidate",
            "visit": visit,
            "candidate_id": candidate_id,
            "rejected_as": str(row["reason"].iloc[0]),
            "score": None if not np.isfinite(score) else round(float(score), 6),
            "lesion_id": label,
        }
        if not self.history.apply(record, {visit: new}):
            raise ValueError(f"candidate {candidate_id} of the {visit} visit lies wholly inside lesions")
        return label

    def replace_labels(self, visit: str, labels: np.ndarray, action: str = "paint") -> bool:
        """Take a visit's label map as edited elsewhere (a Labels layer painted or erased); False when unchanged."""
        labels = np.asarray(labels)
        if labels.shape != self.labels[visit].shape:
            raise ValueError(f"{visit} labels of shape {labels.shape}, expected {self.labels[visit].shape}")
        before = set(self.lesion_ids(visit))
        after = {int(i) for i in np.unique(labels) if i > 0}
        record = {"action": action, "visit": visit}
        if after - before:
            record["added_ids"] = sorted(after - before)
        if before - after:
            record["removed_ids"] = sorted(before - after)
        return self.history.apply(record, {visit: labels.astype(np.int32, copy=False)})

    def undo(self) -> list[str]:
        """Undo the last edit; returns the visits whose labels changed."""
        return self.history.undo()

    def redo(self) -> list[str]:
        """Redo the last undone edit; returns the visits whose labels changed."""
        return self.history.redo()

    def apply_regions(self, include: np.ndarray | None, exclude: np.ndarray | None) -> bool:
        """Segment both visits again with include/exclude regions drawn in the baseline frame (an undoable edit).

        The regions are carried into the follow-up's frame by the registration; the alignment is kept. Manual
        edits made before are replaced by the new segmentation (undo brings them back).

        Parameters
        ----------
        include, exclude : numpy.ndarray or None
            bool masks of the baseline's shape.

        Returns
        -------
        bool
            True when the labels changed.
        """
        pre_shape = self.result.pre.radiograph.shape
        post_shape = self.result.post.radiograph.shape
        transform = self.result.transform
        masks: dict[str, dict[str, np.ndarray | None]] = {"include": {}, "exclude": {}}
        for kind, mask in (("include", include), ("exclude", exclude)):
            if mask is not None and np.asarray(mask).shape != pre_shape:
                raise ValueError(f"{kind} mask of shape {np.asarray(mask).shape}, the baseline is {pre_shape}")
            masks[kind]["pre"] = None if mask is None else np.asarray(mask, bool)
            masks[kind]["post"] = (
                None
                if mask is None
                else warp_labels(np.asarray(mask, bool).view(np.uint8), transform, post_shape, inverse=True) > 0
            )
        fresh = compare_pair(
            self.result.pre.radiograph,
            self.result.post.radiograph,
            self.params,
            include=masks["include"],
            exclude=masks["exclude"],
            transform=transform,
        )
        record = {
            "action": "regions",
            "include_area_px": None if include is None else int(np.count_nonzero(include)),
            "exclude_area_px": None if exclude is None else int(np.count_nonzero(exclude)),
        }
        changed = self.history.apply(record, {"pre": fresh.pre.labels, "post": fresh.post.labels})
        # The candidates and their decisions now follow the regions; measurements follow the labels.
        self.result = replace(
            self.result,
            pre=replace(fresh.pre, labels=self.result.pre.labels, lesions=self.result.pre.lesions),
            post=replace(fresh.post, labels=self.result.post.labels, lesions=self.result.post.lesions),
        )
        return changed

    # --------------------------------------------------------------------------------------------------------
    # measuring and exporting

    def remeasure(self) -> PairResult:
        """Measure the edited labels, redo the matching and the pair summary; the new result is kept and returned."""
        self.result = remeasure_pair(self.result, self.labels["pre"], self.labels["post"], self.params, self._stages)
        # The session's maps stay separate from the result's (edits must not change a measured result).
        self.labels["pre"] = self.result.pre.labels.copy()
        self.labels["post"] = self.result.post.labels.copy()
        return self.result

    def review_record(self) -> dict[str, Any]:
        """The ``review`` entry of the exported summaries."""
        return {
            "reviewed": True,
            "reviewed_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "tool": f"calcimg {__version__} napari",
            "edits": self.edits,
            "n_edits": len(self.edits),
            "automatic": self.automatic,
        }

    def reviewed_result(self) -> PairResult:
        """The current labels measured, with ``summary["review"]`` (also in each visit's summary)."""
        result = self.remeasure() if self.dirty else self.result
        review = self.review_record()
        visits = {
            visit: replace(getattr(result, visit), summary={**getattr(result, visit).summary, "review": review})
            for visit in VISITS
        }
        return replace(result, pre=visits["pre"], post=visits["post"], summary={**result.summary, "review": review})

    def export(self, out_dir: str | PathLike[str]) -> dict[str, Path]:
        """Write the same files as ``calcimg compare``, marked reviewed, from the current labels.

        Returns
        -------
        dict of str to pathlib.Path
            What :func:`calcimg.report.pair.write_comparison` wrote.
        """
        from calcimg.report.pair import write_comparison

        result = self.reviewed_result()
        return write_comparison(result, out_dir, self.stems["pre"], self.stems["post"])


# ------------------------------------------------------------------------------------------------------------
# helpers


def _area_keys(summary: dict[str, Any]) -> tuple[str, ...]:
    units = summary.get("units", "mm")
    return (f"pre_area_{units}2", f"post_area_{units}2")


def _default_stems(result: PairResult) -> dict[str, str]:
    stems = {}
    for visit in VISITS:
        path = getattr(result, visit).radiograph.path
        stems[visit] = Path(path).stem if path else visit
    if stems["pre"] == stems["post"]:
        stems = {"pre": "pre", "post": "post"}
    return stems


def read_result_folder(folder: str | PathLike[str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Find a pair result's files: its summary and, per visit, its stem, labels TIFF, lesion CSV and input.

    Parameters
    ----------
    folder : str or PathLike
        A folder holding ``summary.json`` of a comparison and ``<stem>_labels.tif`` / ``<stem>_summary.json`` of
        each visit.

    Returns
    -------
    summary : dict
        The pair summary.
    visits : dict
        ``{"pre": {...}, "post": {...}}`` with ``stem``, ``labels`` (path), ``lesions`` (path or None),
        ``summary`` (the visit's summary) and ``input`` (its identity: path, content hash, spacing).

    Raises
    ------
    calcimg.errors.InputError
        When the folder holds no pair summary or a visit's files are missing.
    """
    folder = Path(folder)
    path = folder / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(folder, "no summary.json: not a calcimg result folder") from exc
    except (OSError, ValueError) as exc:
        raise InputError(path, f"unreadable summary ({exc})") from exc
    if not isinstance(summary, dict) or "inputs" not in summary or "registration" not in summary:
        raise InputError(path, "not the summary of a pair comparison (no inputs or registration)")
    visit_files = {}
    for candidate in sorted(folder.glob("*_summary.json")):
        try:
            record = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        stem = candidate.name[: -len("_summary.json")]
        visit_files[stem] = record
    visits: dict[str, dict[str, Any]] = {}
    for visit in VISITS:
        identity = summary["inputs"][visit]
        stem = next(
            (
                s
                for s, record in visit_files.items()
                if record.get("input", {}).get("content_hash") == identity.get("content_hash")
                and s not in {v["stem"] for v in visits.values()}
            ),
            None,
        )
        if stem is None:  # fall back to batch's names, then the input's stem
            input_stem = Path(identity.get("path") or visit).stem
            for guess in (visit, f"{visit}_{input_stem}", input_stem):
                if guess and (folder / f"{guess}_labels.tif").exists():
                    stem = guess
                    break
        if stem is None or not (folder / f"{stem}_labels.tif").exists():
            raise InputError(folder, f"no label map of the {'baseline' if visit == 'pre' else 'follow-up'}")
        lesions = folder / f"{stem}_lesions.csv"
        visits[visit] = {
            "stem": stem,
            "labels": folder / f"{stem}_labels.tif",
            "lesions": lesions if lesions.exists() else None,
            "summary": visit_files.get(stem, {}),
            "input": identity,
        }
    return summary, visits


def load_input(identity: dict[str, Any], folder: str | PathLike[str] | None = None) -> Radiograph:
    """Read a result's input radiograph again from its recorded path (as given, or beside ``folder``).

    The spacing is the one recorded when it was given by the user; a file whose content changed is read with a
    warning.

    Raises
    ------
    calcimg.errors.InputError
        When the file is found nowhere.
    """
    recorded = identity.get("path")
    if not recorded:
        raise InputError(folder, "the result does not record where its input image is")
    candidates = [Path(recorded)]
    if folder is not None:
        base = Path(folder)
        candidates += [base / Path(recorded).name, base.parent / Path(recorded).name, base / recorded]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise InputError(recorded, "input image of the result not found (moved or deleted?)")
    spacing = identity.get("spacing_mm") if identity.get("spacing_source") == "user" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        radiograph = load_radiograph(found, spacing=None if spacing is None else tuple(spacing))
    expected = identity.get("content_hash")
    if expected and radiograph.content_hash != expected:
        note = f"{found}: content differs from the file the result was made from"
        warnings.warn(note, stacklevel=2)
        radiograph.warnings.append(note)
    if str(found) != str(recorded):
        radiograph = replace(radiograph, path=str(recorded))
    return radiograph
