"""Pure edits of label maps (delete, merge, add, replace) and an undo/redo history of them.

Each edit is stored as patches: the bounding box of the pixels it changed with their values before and after, so
the history of a 3000 x 2500 film costs the size of the edits, not of the film.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def delete_labels(labels: np.ndarray, ids: Iterable[int]) -> np.ndarray:
    """A copy of ``labels`` with the given lesion ids set to background.

    Examples
    --------
    >>> delete_labels(np.array([[1, 2], [2, 3]]), [2]).tolist()
    [[1, 0], [0, 3]]
    """
    out = np.array(labels, copy=True)
    out[np.isin(out, np.fromiter((int(i) for i in ids), np.int64))] = 0
    return out


def merge_labels(labels: np.ndarray, ids: Sequence[int]) -> tuple[np.ndarray, int]:
    """A copy of ``labels`` where the given lesions become one, with the smallest of their ids.

    Returns
    -------
    labels : numpy.ndarray
    into : int
        The id of the merged lesion.

    Raises
    ------
    ValueError
        With fewer than two distinct ids.

    Examples
    --------
    >>> merged, into = merge_labels(np.array([[1, 0, 4], [0, 2, 4]]), [4, 2])
    >>> merged.tolist(), into
    ([[1, 0, 2], [0, 2, 2]], 2)
    """
    distinct = sorted({int(i) for i in ids if int(i) > 0})
    if len(distinct) < 2:
        raise ValueError("choose at least two lesions of the same visit to merge")
    into = distinct[0]
    out = np.array(labels, copy=True)
    out[np.isin(out, distinct[1:])] = into
    return out, into


def next_label(labels: np.ndarray) -> int:
    """The id a new lesion gets: one above the largest present.

    Examples
    --------
    >>> next_label(np.array([[0, 3], [7, 0]]))
    8
    """
    return int(np.asarray(labels).max(initial=0)) + 1


def add_lesion(labels: np.ndarray, mask: np.ndarray, label: int | None = None) -> tuple[np.ndarray, int]:
    """A copy of ``labels`` with the pixels of ``mask`` that are background given a new id.

    Existing lesions are not overwritten (paint over them to change them).

    Returns
    -------
    labels : numpy.ndarray
    label : int
        The new id.

    Examples
    --------
    >>> new, value = add_lesion(np.array([[1, 0], [0, 0]]), np.array([[1, 1], [0, 0]], bool))
    >>> new.tolist(), value
    ([[1, 2], [0, 0]], 2)
    """
    label = next_label(labels) if label is None else int(label)
    out = np.array(labels, copy=True)
    out[np.asarray(mask, bool) & (out == 0)] = label
    return out, label


@dataclass
class Patch:
    """The pixels one edit changed in one visit's label map."""

    visit: str
    box: tuple[slice, slice]
    before: np.ndarray
    after: np.ndarray


def diff_patch(visit: str, before: np.ndarray, after: np.ndarray) -> Patch | None:
    """The smallest box holding every changed pixel, with its content before and after; None when equal."""
    changed = before != after
    if not changed.any():
        return None
    rows = np.flatnonzero(changed.any(axis=1))
    cols = np.flatnonzero(changed.any(axis=0))
    box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    return Patch(visit, box, before[box].copy(), after[box].copy())


@dataclass
class Edit:
    """One undoable edit: its record (JSON-safe, written to the review log) and its patches."""

    record: dict[str, Any]
    patches: list[Patch] = field(default_factory=list)


class EditHistory:
    """Undo/redo stacks of label edits over several label maps (one per visit).

    Parameters
    ----------
    labels : dict of str to numpy.ndarray
        The label maps, edited in place by :meth:`apply`, :meth:`undo` and :meth:`redo`.
    max_edits : int
        Oldest edits are forgotten beyond this many.

    Examples
    --------
    >>> maps = {"pre": np.array([[1, 2]])}
    >>> history = EditHistory(maps)
    >>> history.apply({"action": "delete"}, {"pre": delete_labels(maps["pre"], [2])})
    True
    >>> maps["pre"].tolist(), history.undo(), maps["pre"].tolist(), history.redo(), maps["pre"].tolist()
    ([[1, 0]], ['pre'], [[1, 2]], ['pre'], [[1, 0]])
    """

    def __init__(self, labels: dict[str, np.ndarray], max_edits: int = 200) -> None:
        self.labels = labels
        self.max_edits = max_edits
        self.done: list[Edit] = []
        self.undone: list[Edit] = []

    @property
    def records(self) -> list[dict[str, Any]]:
        """Records of the edits in effect, oldest first."""
        return [edit.record for edit in self.done]

    @property
    def can_undo(self) -> bool:
        """True when there is an edit to undo."""
        return bool(self.done)

    @property
    def can_redo(self) -> bool:
        """True when there is an undone edit to redo."""
        return bool(self.undone)

    def apply(self, record: dict[str, Any], new_labels: dict[str, np.ndarray]) -> bool:
        """Replace label maps by edited versions and remember the change; False (nothing kept) when nothing changed."""
        patches = []
        for visit, after in new_labels.items():
            patch = diff_patch(visit, self.labels[visit], after)
            if patch is not None:
                patches.append(patch)
                self.labels[visit][patch.box] = patch.after
        if not patches:
            return False
        record = dict(record)
        record.setdefault("pixels_changed", int(sum(int((p.before != p.after).sum()) for p in patches)))
        self.done.append(Edit(record, patches))
        del self.done[: -self.max_edits]
        self.undone.clear()
        return True

    def undo(self) -> list[str]:
        """Undo the last edit; returns the visits whose labels changed (empty when nothing to undo)."""
        if not self.done:
            return []
        edit = self.done.pop()
        for patch in reversed(edit.patches):
            self.labels[patch.visit][patch.box] = patch.before
        self.undone.append(edit)
        return sorted({p.visit for p in edit.patches})

    def redo(self) -> list[str]:
        """Redo the last undone edit; returns the visits whose labels changed."""
        if not self.undone:
            return []
        edit = self.undone.pop()
        for patch in edit.patches:
            self.labels[patch.visit][patch.box] = patch.after
        self.done.append(edit)
        return sorted({p.visit for p in edit.patches})
