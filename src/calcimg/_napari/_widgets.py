"""The Segment and Pair review widgets (magicgui Containers docked in napari).

Both are thin views: computation is :func:`calcimg.segment_image`, :mod:`calcimg._napari._preview` and
:class:`calcimg._napari._review.ReviewSession`, all usable without a viewer.
"""

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from magicgui import widgets
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

import napari
from calcimg.core.matching import pair_counts
from calcimg.errors import CalcimgError
from calcimg.pipeline import segment_image
from calcimg.report.pair import pair_lesion_table

from . import _edits
from ._layers import (
    CHANGE_COLOURS,
    change_colour_dict,
    legend_html,
    lesion_features,
    radiograph_from_layer,
    radiograph_kwargs,
    rc_affine,
    reason_colour_dict,
    summary_html,
)
from ._params_form import form_params, make_params_form
from ._preview import preview_segmentation, view_region
from ._review import VISITS, ReviewSession

#: Delay between the last parameter change and the preview (ms): a spin box held down runs one preview, not ten.
PREVIEW_DEBOUNCE_MS = 150
#: Auto-flicker period (ms).
FLICKER_MS = 700


# ------------------------------------------------------------------------------------------------------------
# napari version shims (0.9 moved camera and grid under scene and canvas)


def _camera(viewer: napari.Viewer) -> Any:
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def _grid(viewer: napari.Viewer) -> Any:
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


def _canvas_hw(viewer: napari.Viewer) -> tuple[float, float]:
    canvas = getattr(viewer, "canvas", None)
    size = canvas.size if canvas is not None and hasattr(canvas, "size") else viewer._canvas_size
    return float(size[0]), float(size[1])


def _physical_matrix(layer: Any) -> np.ndarray:
    """3x3 data-to-world matrix of a 2-D layer from its scale, translate and affine (rotate/shear ignored)."""
    scale = np.asarray(layer.scale, dtype=np.float64)[-2:]
    translate = np.asarray(layer.translate, dtype=np.float64)[-2:]
    physical = np.array([[scale[0], 0, translate[0]], [0, scale[1], translate[1]], [0, 0, 1.0]])
    return np.asarray(layer.affine.affine_matrix, dtype=np.float64)[-3:, -3:] @ physical


def _layer_choices(viewer: napari.Viewer, kind: type) -> list[tuple[str, Any]]:
    return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, kind)]


def _upsert(viewer: napari.Viewer, name: str, data: Any, kind: str, **kwargs: Any) -> Any:
    """Update the layer called ``name`` (of the same kind) with new data and settings, or add it."""
    kinds = {"image": napari.layers.Image, "labels": napari.layers.Labels, "shapes": napari.layers.Shapes}
    if name in viewer.layers and isinstance(viewer.layers[name], kinds[kind]):
        layer = viewer.layers[name]
        layer.data = data
        for key, value in kwargs.items():
            setattr(layer, key, value)
        return layer
    return getattr(viewer, f"add_{kind}")(data, name=name, **kwargs)


# ------------------------------------------------------------------------------------------------------------
# Segment


class SegmentWidget(widgets.Container):
    """Segment one radiograph layer: Params in mm with tooltips, live preview of the visible region, Run.

    Run adds ``<image> lesions`` (accepted lesions, measurements in ``features``) and ``<image> rejected``
    (rejected candidates coloured by reason, reasons in ``features``; toggle its visibility). While live preview
    is on, a parameter change re-segments the region in view after :data:`PREVIEW_DEBOUNCE_MS` into
    ``<image> preview``.

    Parameters
    ----------
    viewer : napari.Viewer
    """

    def __init__(self, viewer: napari.Viewer) -> None:
        super().__init__(labels=False)
        self._viewer = viewer
        self.image = widgets.ComboBox(label="image", choices=self._images, tooltip="the radiograph to segment")
        self.include = widgets.ComboBox(
            label="include", choices=self._shapes, nullable=True, tooltip="accept only lesions inside these shapes"
        )
        self.exclude = widgets.ComboBox(
            label="exclude", choices=self._shapes, nullable=True, tooltip="reject lesions inside these shapes"
        )
        self.params = make_params_form()
        self.live_preview = widgets.CheckBox(text="live preview of the region in view", value=True)
        self.show_rejected = widgets.CheckBox(text="show rejected candidates (by reason)", value=True)
        self.run_button = widgets.PushButton(text="Run")
        self.status = widgets.Label(value="")
        layers = widgets.Container(widgets=[self.image, self.include, self.exclude], labels=True)
        self.extend([layers, self.params, self.live_preview, self.show_rejected, self.run_button, self.status])
        self.result: Any = None
        self.last_preview: Any = None
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(PREVIEW_DEBOUNCE_MS)
        self._timer.timeout.connect(self.update_preview)
        self.params.changed.connect(self._schedule_preview)
        self.run_button.changed.connect(self.run)
        self.show_rejected.changed.connect(self._toggle_rejected)
        viewer.layers.events.inserted.connect(self._refresh_choices)
        viewer.layers.events.removed.connect(self._refresh_choices)

    def _images(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return _layer_choices(self._viewer, napari.layers.Image)

    def _shapes(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return _layer_choices(self._viewer, napari.layers.Shapes)

    def _refresh_choices(self, _event: Any = None) -> None:
        for combo in (self.image, self.include, self.exclude):
            combo.reset_choices()

    def _schedule_preview(self, _value: Any = None) -> None:
        if self.live_preview.value:
            self._timer.start()

    def _toggle_rejected(self, visible: bool) -> None:
        layer = self.image.value
        if layer is not None and f"{layer.name} rejected" in self._viewer.layers:
            self._viewer.layers[f"{layer.name} rejected"].visible = bool(visible)

    def _masks(self, shape: tuple[int, int]) -> dict[str, np.ndarray | None]:
        masks: dict[str, np.ndarray | None] = {}
        for key, combo in (("include", self.include), ("exclude", self.exclude)):
            layer = combo.value
            masks[key] = None if layer is None or not len(layer.data) else layer.to_masks(shape).any(axis=0)
        return masks

    def run(self, _value: Any = None) -> Any:
        """Segment the chosen image at full resolution and show the lesions and the rejected candidates."""
        layer = self.image.value
        if layer is None:
            self.status.value = "choose an image layer"
            return None
        try:
            params = form_params(self.params)
            radiograph = radiograph_from_layer(layer.data, layer.metadata, layer.scale)
            start = time.perf_counter()
            result = segment_image(radiograph, params, **self._masks(radiograph.shape))
        except (CalcimgError, ValueError) as exc:
            self.status.value = f"error: {exc}"
            return None
        seconds = time.perf_counter() - start
        self.result = result
        placement = {"affine": _physical_matrix(layer), "units": layer.units}
        _upsert(
            self._viewer,
            f"{layer.name} lesions",
            result.labels,
            "labels",
            features=lesion_features(result.lesions),
            colormap={None: CHANGE_COLOURS["unmeasured"], 0: (0, 0, 0, 0)} | _accepted_colours(result.lesions),
            opacity=0.7,
            metadata={"calcimg": {"kind": "lesions", "summary": result.summary}},
            **placement,
        )
        features = result.rejected.rename(columns={"candidate_id": "index"})
        _upsert(
            self._viewer,
            f"{layer.name} rejected",
            result.rejected_labels(),
            "labels",
            features=features,
            colormap=reason_colour_dict(result.candidate_table),
            opacity=0.6,
            visible=bool(self.show_rejected.value),
            metadata={"calcimg": {"kind": "rejected"}},
            **placement,
        )
        if f"{layer.name} preview" in self._viewer.layers:
            self._viewer.layers[f"{layer.name} preview"].visible = False
        units = result.summary["units"]
        total = result.summary.get(f"total_area_{units}2", result.summary["total_area_px"])
        self.status.value = (
            f"{result.summary['count']} lesion(s), {total:.1f} {units}²; {len(result.rejected)} rejected; "
            f"{seconds:.2f} s"
        )
        return result

    def update_preview(self) -> Any:
        """Segment the region in view (reduced if large) with the current Params into ``<image> preview``."""
        layer = self.image.value
        if layer is None:
            return None
        try:
            params = form_params(self.params)
        except ValueError as exc:
            self.status.value = f"invalid parameters: {exc}"
            return None
        radiograph = radiograph_from_layer(layer.data, layer.metadata, layer.scale)
        region = view_region(
            self._view_corners(layer), radiograph.shape, margin_px=params.context_mm * _px_per_mm(layer)
        )
        if region is None:
            self.status.value = "the image is not in view"
            return None
        preview = preview_segmentation(radiograph, params, region)
        self.last_preview = preview
        fr, fc = preview.factor
        r0, c0 = preview.origin
        placement = _physical_matrix(layer) @ np.array([[fr, 0, r0], [0, fc, c0], [0, 0, 1.0]])
        _upsert(
            self._viewer,
            f"{layer.name} preview",
            preview.labels,
            "labels",
            colormap={None: (1.0, 0.84, 0.0, 1.0), 0: (0, 0, 0, 0)},
            opacity=0.8,
            visible=True,
            affine=placement,
            units=layer.units,
        )
        reduced = "" if max(fr, fc) <= 1.0 else f", reduced x{max(fr, fc):.1f}"
        rows, cols = region
        self.status.value = (
            f"preview: {preview.n_lesions} lesion(s) in view ({rows.stop - rows.start}x{cols.stop - cols.start} px"
            f"{reduced}) in {preview.seconds:.2f} s"
        )
        return preview

    def _view_corners(self, layer: Any) -> np.ndarray:
        camera = _camera(self._viewer)
        height, width = _canvas_hw(self._viewer)
        center = np.asarray(camera.center, dtype=np.float64)[-2:]
        half = np.array([height, width]) / max(float(camera.zoom), 1e-9) / 2
        corners_world = [center + half * np.array(s) for s in ((-1, -1), (-1, 1), (1, -1), (1, 1))]
        inverse = np.linalg.inv(_physical_matrix(layer))
        return np.array([(inverse @ [c[0], c[1], 1.0])[:2] for c in corners_world])


def _px_per_mm(layer: Any) -> float:
    scale = np.asarray(layer.scale, dtype=np.float64)[-2:]
    return 1.0 / float(np.mean(scale)) if np.all(scale != 1.0) else 1.0 / 0.15


def _accepted_colours(lesions: pd.DataFrame) -> dict[int, tuple[float, ...]]:
    from ._layers import REASON_COLOURS

    return {int(i): REASON_COLOURS["accepted"] for i in lesions["lesion_id"]}


# ------------------------------------------------------------------------------------------------------------
# Pair review


class _SortItem(QTableWidgetItem):
    """A table cell that sorts by its value (numbers as numbers), shown as formatted text."""

    def __init__(self, value: Any) -> None:
        if isinstance(value, (float, np.floating)):
            text = "" if not np.isfinite(value) else f"{value:.2f}"
        else:
            text = str(value)
        super().__init__(text)
        self.sort_key = value
        self.setFlags(self.flags() & ~Qt.ItemFlag.ItemIsEditable)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine, theirs = self.sort_key, getattr(other, "sort_key", other.text())
        try:
            a = float(mine) if not isinstance(mine, str) else np.nan
            b = float(theirs) if not isinstance(theirs, str) else np.nan
        except (TypeError, ValueError):
            a = b = np.nan
        if np.isnan(a) or np.isnan(b):
            return str(mine) < str(theirs)
        return a < b


#: Columns of the review table: (header, column of the pair lesion table).
TABLE_COLUMNS = (
    ("visit", "visit"),
    ("id", "lesion_id"),
    ("change", "change_class"),
    ("area mm²", "area_mm2"),
    ("group pre mm²", "group_area_pre_mm2"),
    ("group post mm²", "group_area_post_mm2"),
    ("change %", "area_change_pct"),
    ("matched", "matched_ids"),
    ("size", "size_class"),
)


class LesionTable(QTableWidget):
    """Sortable lesion table of a pair (one row per lesion per visit)."""

    def __init__(self) -> None:
        super().__init__(0, len(TABLE_COLUMNS))
        self.setHorizontalHeaderLabels([h for h, _ in TABLE_COLUMNS])
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setSortingEnabled(True)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.setMinimumHeight(180)

    def set_table(self, table: pd.DataFrame) -> None:
        """Show a pair lesion table (:func:`calcimg.report.pair.pair_lesion_table`)."""
        self.setSortingEnabled(False)
        self.clearSelection()
        self.setRowCount(len(table))
        for row, record in enumerate(table.itertuples(index=False)):
            values = record._asdict()
            for col, (_, key) in enumerate(TABLE_COLUMNS):
                value = values.get(key, "")
                if isinstance(value, float) and key in ("matched_ids", "size_class"):
                    value = "" if not np.isfinite(value) else value
                if key == "visit":
                    value = "baseline" if value == "pre" else "follow-up"
                self.setItem(row, col, _SortItem(value))
        self.setSortingEnabled(True)

    def row_key(self, row: int) -> tuple[str, int]:
        """(visit, lesion_id) of a displayed row."""
        visit = "pre" if self.item(row, 0).text() == "baseline" else "post"
        return visit, int(self.item(row, 1).text())

    def selected_keys(self) -> list[tuple[str, int]]:
        """(visit, lesion_id) of the selected rows, in display order."""
        rows = sorted({index.row() for index in self.selectedIndexes()})
        return [self.row_key(r) for r in rows]

    def select_key(self, visit: str, lesion_id: int) -> bool:
        """Select the row of a lesion; False when it is not in the table."""
        for row in range(self.rowCount()):
            if self.row_key(row) == (visit, int(lesion_id)):
                self.selectRow(row)
                return True
        return False


class PairReviewWidget(widgets.Container):
    """Review a baseline/follow-up pair: run, look (overlay, side by side, flicker), correct, re-measure, export.

    The follow-up is shown in the baseline's frame through its layers' ``affine`` (no resampling). Lesions are
    coloured by change class; the table is sortable and choosing a row centres the view on the lesion and
    outlines it (and its match) in both visits. Corrections act on the label maps: delete, merge, paint or erase on
    the lesion layers, new lesion, include/exclude regions; Re-measure updates the table and the summary; undo and
    redo cover every edit (painting included). Export writes the files of ``calcimg compare`` marked reviewed.

    Parameters
    ----------
    viewer : napari.Viewer
    """

    def __init__(self, viewer: napari.Viewer) -> None:
        super().__init__(labels=False)
        self._viewer = viewer
        self.session: ReviewSession | None = None
        self.layers: dict[str, Any] = {}
        self.images: dict[str, Any] = {}
        self._hidden_for_grid: list[Any] = []
        self._flicker_state = "pre"
        self._syncing = False
        self._ready = False  # layers built (napari resets every choice widget, mode included, on layer changes)

        self.summary = widgets.Label(value="Choose the baseline and follow-up images, then Run.")
        self.summary.native.setTextFormat(Qt.TextFormat.RichText)
        self.summary.native.setWordWrap(True)
        self.baseline = widgets.ComboBox(label="baseline", choices=self._images)
        self.followup = widgets.ComboBox(label="follow-up", choices=self._images)
        self.edit_params = widgets.CheckBox(text="edit parameters", value=False)
        self.params = make_params_form()
        self.params.visible = False
        self.run_button = widgets.PushButton(text="Run comparison")
        self.mode = widgets.RadioButtons(
            label="view", choices=["overlay", "side by side"], value="overlay", orientation="horizontal"
        )
        self.flicker_button = widgets.PushButton(text="Flicker (swap visits)")
        self.auto_flicker = widgets.CheckBox(text="auto flicker", value=False)
        self.legend = widgets.Label(value=legend_html())
        self.legend.native.setTextFormat(Qt.TextFormat.RichText)
        self.table = LesionTable()
        self.delete_button = widgets.PushButton(text="Delete")
        self.merge_button = widgets.PushButton(text="Merge")
        self.new_button = widgets.PushButton(text="New lesion (paint)")
        self.erase_button = widgets.PushButton(text="Erase")
        self.show_rejected = widgets.CheckBox(text="show rejected candidates (by reason)", value=False)
        self.accept_button = widgets.PushButton(text="Accept candidate")
        self.undo_button = widgets.PushButton(text="Undo")
        self.redo_button = widgets.PushButton(text="Redo")
        self.include_button = widgets.PushButton(text="Draw include")
        self.exclude_button = widgets.PushButton(text="Draw exclude")
        self.regions_button = widgets.PushButton(text="Apply regions")
        self.remeasure_button = widgets.PushButton(text="Re-measure")
        self.export_dir = widgets.FileEdit(label="export to", mode="d")
        self.export_button = widgets.PushButton(text="Export reviewed result")
        self.open_dir = widgets.FileEdit(label="result folder", mode="d")
        self.open_button = widgets.PushButton(text="Open saved result")
        self.status = widgets.Label(value="")

        row = widgets.Container
        self.extend(
            [
                self.summary,
                row(widgets=[self.baseline, self.followup], labels=True),
                row(widgets=[self.run_button, self.edit_params], layout="horizontal", labels=False),
                self.params,
                row(widgets=[self.mode, self.flicker_button, self.auto_flicker], layout="horizontal", labels=False),
                self.legend,
                row(
                    widgets=[self.delete_button, self.merge_button, self.new_button, self.erase_button],
                    layout="horizontal",
                    labels=False,
                ),
                row(widgets=[self.show_rejected, self.accept_button], layout="horizontal", labels=False),
                row(
                    widgets=[self.include_button, self.exclude_button, self.regions_button],
                    layout="horizontal",
                    labels=False,
                ),
                row(
                    widgets=[self.undo_button, self.redo_button, self.remeasure_button],
                    layout="horizontal",
                    labels=False,
                ),
                row(widgets=[self.export_dir, self.export_button], layout="horizontal", labels=True),
                row(widgets=[self.open_dir, self.open_button], layout="horizontal", labels=True),
                self.status,
            ]
        )
        self.native.layout().insertWidget(6, self.table)

        self._flicker_timer = QTimer()
        self._flicker_timer.setInterval(FLICKER_MS)
        self._flicker_timer.timeout.connect(self.flicker)
        self.edit_params.changed.connect(lambda on: setattr(self.params, "visible", bool(on)))
        self.run_button.changed.connect(self.run)
        self.mode.changed.connect(self.set_mode)
        self.flicker_button.changed.connect(self.flicker)
        self.auto_flicker.changed.connect(self._auto_flicker)
        self.table.itemSelectionChanged.connect(self._on_table_selection)
        self.delete_button.changed.connect(self.delete_selected)
        self.merge_button.changed.connect(self.merge_selected)
        self.new_button.changed.connect(self.new_lesion)
        self.erase_button.changed.connect(self.erase)
        self.show_rejected.changed.connect(self._toggle_rejected)
        self.accept_button.changed.connect(self.accept_candidate)
        self.undo_button.changed.connect(self.undo)
        self.redo_button.changed.connect(self.redo)
        self.include_button.changed.connect(lambda: self.draw_region("include"))
        self.exclude_button.changed.connect(lambda: self.draw_region("exclude"))
        self.regions_button.changed.connect(self.apply_regions)
        self.remeasure_button.changed.connect(self.remeasure)
        self.export_button.changed.connect(lambda: self.export(self.export_dir.value))
        self.open_button.changed.connect(lambda: self.open_folder(self.open_dir.value))
        viewer.layers.events.inserted.connect(self._refresh_choices)
        viewer.layers.events.removed.connect(self._refresh_choices)
        self._update_buttons()

    # --------------------------------------------------------------------------------------------------------
    # choices and state

    def _images(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return _layer_choices(self._viewer, napari.layers.Image)

    def _refresh_choices(self, _event: Any = None) -> None:
        self.baseline.reset_choices()
        self.followup.reset_choices()

    def _update_buttons(self) -> None:
        has = self.session is not None
        for button in (self.delete_button, self.merge_button, self.new_button, self.erase_button, self.accept_button,
                       self.include_button, self.exclude_button, self.regions_button, self.remeasure_button,
                       self.export_button, self.flicker_button):  # fmt: skip
            button.enabled = has
        self.undo_button.enabled = has and self.session.history.can_undo
        self.redo_button.enabled = has and self.session.history.can_redo

    # --------------------------------------------------------------------------------------------------------
    # running and showing

    def run(self, _value: Any = None) -> ReviewSession | None:
        """Compare the chosen images with the current Params and start a review."""
        pre_layer, post_layer = self.baseline.value, self.followup.value
        if pre_layer is None or post_layer is None or pre_layer is post_layer:
            self.status.value = "choose two different image layers"
            return None
        try:
            params = form_params(self.params)
            pre = radiograph_from_layer(pre_layer.data, pre_layer.metadata, pre_layer.scale)
            post = radiograph_from_layer(post_layer.data, post_layer.metadata, post_layer.scale)
            start = time.perf_counter()
            session = ReviewSession.run(pre, post, params)
        except (CalcimgError, ValueError) as exc:
            self.status.value = f"error: {exc}"
            return None
        self.status.value = f"compared in {time.perf_counter() - start:.1f} s"
        self.show_session(session, pre_layer, post_layer)
        return session

    def open_folder(self, folder: Any) -> ReviewSession | None:
        """Reopen a result folder (of ``calcimg compare``, ``batch`` or an export) to continue its review."""
        try:
            session = ReviewSession.from_folder(Path(folder))
        except (CalcimgError, OSError, ValueError, KeyError) as exc:
            self.status.value = f"cannot open {folder}: {exc}"
            return None
        images = {}
        for visit, label in (("pre", "baseline"), ("post", "follow-up")):
            radiograph = getattr(session.result, visit).radiograph
            kwargs = radiograph_kwargs(radiograph, f"{session.stems[visit]} ({label})")
            images[visit] = _upsert(self._viewer, kwargs.pop("name"), radiograph.pixels, "image", **kwargs)
        self._refresh_choices()
        reviewed = bool(session.previous_review.get("reviewed"))
        self.status.value = f"opened {folder}" + (" (reviewed before)" if reviewed else "")
        self.show_session(session, images["pre"], images["post"])
        return session

    def show_session(self, session: ReviewSession, pre_layer: Any, post_layer: Any) -> None:
        """Show a review: both images in the baseline frame, lesion and highlight layers, table and summary."""
        self._ready = False
        self.session = session
        self.images = {"pre": pre_layer, "post": post_layer}
        self.baseline.value, self.followup.value = pre_layer, post_layer
        pre_matrix = _physical_matrix(pre_layer)
        post_world = pre_matrix @ rc_affine(session.result.transform.matrix)
        physical_post = np.linalg.inv(np.asarray(post_layer.affine.affine_matrix)[-3:, -3:]) @ _physical_matrix(
            post_layer
        )
        post_layer.affine = post_world @ np.linalg.inv(physical_post)
        self._world = {"pre": pre_matrix, "post": post_world}
        for visit in VISITS:
            name = f"{session.stems[visit]} lesions ({'baseline' if visit == 'pre' else 'follow-up'})"
            layer = _upsert(
                self._viewer,
                name,
                session.labels[visit].copy(),
                "labels",
                affine=self._world[visit],
                units=pre_layer.units,
                opacity=0.65,
                metadata={"calcimg": {"kind": "lesions", "visit": visit}},
            )
            if self.layers.get(visit) is not layer:
                layer.events.paint.connect(lambda _e, v=visit: self._on_paint(v))
            self.layers[visit] = layer
        for visit in VISITS:
            name = f"highlight ({'baseline' if visit == 'pre' else 'follow-up'})"
            self.layers[f"{visit}_highlight"] = _upsert(
                self._viewer,
                name,
                [],
                "shapes",
                edge_color="yellow",
                face_color="transparent",
                edge_width=0.6,
                units=pre_layer.units,
                metadata={"calcimg": {"kind": "highlight", "visit": visit}},
            )
        for visit in VISITS:
            name = f"{session.stems[visit]} rejected ({'baseline' if visit == 'pre' else 'follow-up'})"
            self.layers[f"{visit}_rejected"] = _upsert(
                self._viewer,
                name,
                np.zeros_like(session.labels[visit]),
                "labels",
                affine=self._world[visit],
                units=pre_layer.units,
                opacity=0.6,
                visible=bool(self.show_rejected.value),
                metadata={"calcimg": {"kind": "rejected", "visit": visit}},
            )
        self._refresh_rejected(list(VISITS))
        self._ready = True
        self._arrange_layers()
        self._refresh_result()
        self.set_mode(self.mode.value)
        self._viewer.layers.selection.active = self.layers["pre"]
        self._viewer.reset_view()

    def _arrange_layers(self) -> None:
        """Baseline block (image, rejected candidates, lesions, highlight) then the follow-up's, at the bottom of the
        layer list."""
        order = [
            layer
            for visit in VISITS
            for layer in (
                self.images[visit],
                self.layers[f"{visit}_rejected"],
                self.layers[visit],
                self.layers[f"{visit}_highlight"],
            )
        ]
        for target, layer in enumerate(order):
            index = self._viewer.layers.index(layer)
            if index != target:
                self._viewer.layers.move(index, target)

    def _refresh_result(self) -> None:
        """Colours, features, table, legend and summary from the session's latest measured result."""
        session = self.session
        if session is None:
            return
        result = session.result
        for visit in VISITS:
            layer = self.layers[visit]
            layer.colormap = change_colour_dict(result.matches, visit)
            layer.features = lesion_features(getattr(result, visit).lesions, result.matches, visit)
        table = pair_lesion_table(result)
        self.table.set_table(table)
        self.legend.value = legend_html(pair_counts(result.matches))
        self._refresh_summary()

    def _refresh_summary(self) -> None:
        if self.session is not None:
            text = summary_html(self.session.result.summary, edited=self.session.dirty)
            n = len(self.session.edits)
            self.summary.value = text + (f"<br>{n} edit(s) in this review" if n else "")
        self._update_buttons()

    # --------------------------------------------------------------------------------------------------------
    # view modes

    def set_mode(self, mode: str) -> None:
        """``"overlay"`` (follow-up in green over the baseline in magenta) or ``"side by side"`` (grid)."""
        if self.session is None or not self._ready:
            return
        self._stop_flicker()
        grid = _grid(self._viewer)
        pre, post = self.images["pre"], self.images["post"]
        for layer in (*self.images.values(), self.layers["pre"], self.layers["post"]):
            layer.visible = True
        self._show_rejected_with_images()
        if mode == "side by side":
            pre.colormap = post.colormap = "gray"
            post.blending = "translucent"
            post.opacity = 1.0
            reviewing = {id(layer) for layer in (*self.images.values(), *self.layers.values())}
            self._hidden_for_grid = [
                layer for layer in self._viewer.layers if id(layer) not in reviewing and layer.visible
            ]
            for layer in self._hidden_for_grid:
                layer.visible = False
            self._arrange_layers()
            grid.stride = 4  # one block of layers per visit (see _arrange_layers)
            grid.enabled = True
        else:
            grid.enabled = False
            for layer in self._hidden_for_grid:
                layer.visible = True
            self._hidden_for_grid = []
            pre.colormap = "magenta"
            post.colormap = "green"
            post.blending = "additive"
            post.opacity = 1.0

    def flicker(self, _value: Any = None) -> str:
        """Show one visit only (gray), swapping at each call; returns the visit now shown."""
        if self.session is None or not self._ready:
            return ""
        _grid(self._viewer).enabled = False
        self._flicker_state = "post" if self._flicker_state == "pre" else "pre"
        shown = self._flicker_state
        for visit in VISITS:
            self.images[visit].colormap = "gray"
            self.images[visit].blending = "translucent"
            self.images[visit].visible = visit == shown
            self.layers[visit].visible = visit == shown
        self._show_rejected_with_images()
        return shown

    def _auto_flicker(self, on: bool) -> None:
        if on and self.session is not None:
            self._flicker_timer.start()
        else:
            self._stop_flicker()

    def _stop_flicker(self) -> None:
        self._flicker_timer.stop()
        if self.auto_flicker.value:
            self.auto_flicker.value = False

    # --------------------------------------------------------------------------------------------------------
    # table selection: centre and highlight

    def _on_table_selection(self) -> None:
        keys = self.table.selected_keys()
        if keys:
            self.focus(*keys[0])

    def _bbox_world(self, visit: str, lesion_id: int) -> np.ndarray | None:
        """Corners (4, 2) of a lesion's bounding box in world coordinates (baseline frame, mm)."""
        labels = self.session.labels[visit]
        rows, cols = np.nonzero(labels == lesion_id)
        if rows.size == 0:
            return None
        r0, r1, c0, c1 = rows.min() - 0.5, rows.max() + 0.5, cols.min() - 0.5, cols.max() + 0.5
        corners = np.array([[r0, c0], [r0, c1], [r1, c1], [r1, c0]], dtype=np.float64)
        world = self._world[visit]
        return np.array([(world @ [r, c, 1.0])[:2] for r, c in corners])

    def focus(self, visit: str, lesion_id: int) -> np.ndarray | None:
        """Centre the view on a lesion and outline it and its match in both visits; returns its world centre."""
        if self.session is None:
            return None
        box = self._bbox_world(visit, lesion_id)
        if box is None:
            return None
        centre = box.mean(axis=0)
        other = "post" if visit == "pre" else "pre"
        matches = self.session.result.matches
        row = matches.loc[(matches["visit"] == visit) & (matches["lesion_id"] == lesion_id)]
        partners = []
        if len(row) and str(row["matched_ids"].iloc[0]):
            partners = [int(v) for v in str(row["matched_ids"].iloc[0]).split(";") if v]
        boxes = {visit: [box], other: [b for b in (self._bbox_world(other, p) for p in partners) if b is not None]}
        if not boxes[other]:
            boxes[other] = [box]  # where it is (or was) on the other visit
        size = float(np.ptp(box, axis=0).max())
        pad = max(size * 0.4, 1.0)
        for v in VISITS:
            rectangles = [self._pad_box(b, pad) for b in boxes[v]]
            self.layers[f"{v}_highlight"].data = rectangles
            self.layers[f"{v}_highlight"].shape_type = ["rectangle"] * len(rectangles)
            self.layers[f"{v}_highlight"].edge_width = pad / 3
            self.layers[f"{v}_highlight"].edge_color = "yellow"
        camera = _camera(self._viewer)
        camera.center = tuple(centre)
        height, width = _canvas_hw(self._viewer)
        extent = max(size * 6, 15.0 * float(np.mean(np.abs(np.diag(self._world["pre"])[:2]))) / 0.15)
        if height > 0 and width > 0:
            camera.zoom = min(height, width) / extent / (2 if _grid(self._viewer).enabled else 1)
        self.layers[visit].selected_label = int(lesion_id)
        self._viewer.layers.selection.active = self.layers[visit]
        return centre

    @staticmethod
    def _pad_box(box: np.ndarray, pad: float) -> np.ndarray:
        low, high = box.min(axis=0) - pad, box.max(axis=0) + pad
        return np.array([[low[0], low[1]], [high[0], high[1]]])

    # --------------------------------------------------------------------------------------------------------
    # corrections

    def _selected_or_active(self) -> list[tuple[str, int]]:
        keys = self.table.selected_keys()
        if keys:
            return keys
        active = self._viewer.layers.selection.active
        for visit in VISITS:
            if active is self.layers.get(visit) and active.selected_label > 0:
                return [(visit, int(active.selected_label))]
        return []

    def _after_edit(self, visits: list[str]) -> None:
        self._syncing = True
        try:
            for visit in visits:
                self.layers[visit].data = self.session.labels[visit].copy()
        finally:
            self._syncing = False
        self._refresh_rejected(visits)
        self._refresh_summary()

    def _refresh_rejected(self, visits: list[str]) -> None:
        """The rejected-candidate layers: candidates where no lesion lies, coloured by reason, reasons in features."""
        for visit in visits:
            rejected, table = self.session.rejected_candidates(visit)
            layer = self.layers[f"{visit}_rejected"]
            layer.data = rejected
            layer.features = table.rename(columns={"candidate_id": "index"})
            layer.colormap = reason_colour_dict(getattr(self.session.result, visit).candidate_table)

    def _toggle_rejected(self, _visible: bool) -> None:
        if self.session is None or not self._ready:
            return
        self._show_rejected_with_images()

    def _show_rejected_with_images(self) -> None:
        """Each visit's rejected candidates are shown when asked for and while that visit's image is (flicker hides
        one visit)."""
        for visit in VISITS:
            self.layers[f"{visit}_rejected"].visible = bool(self.show_rejected.value) and self.images[visit].visible

    def accept_candidate(self, _value: Any = None) -> int:
        """Make the rejected candidate picked on a rejected-candidates layer a lesion, with its own outline."""
        active = self._viewer.layers.selection.active
        visit = next((v for v in VISITS if active is not None and active is self.layers.get(f"{v}_rejected")), None)
        if self.session is None or visit is None or active.selected_label <= 0:
            self.status.value = (
                "show rejected candidates, pick one on its layer (the picker, or its label), then Accept candidate"
            )
            return 0
        candidate = int(active.selected_label)
        try:
            label = self.session.accept_candidate(visit, candidate)
        except ValueError as exc:
            self.status.value = f"error: {exc}"
            return 0
        self._after_edit([visit])
        self.status.value = f"candidate {candidate} is lesion {label} of the {visit} visit: press Re-measure"
        return label

    def delete_selected(self, _value: Any = None) -> bool:
        """Delete the lesions selected in the table (or the selected label of the active lesion layer)."""
        keys = self._selected_or_active()
        if self.session is None or not keys:
            self.status.value = "select the lesion(s) to delete in the table"
            return False
        changed = []
        for visit in VISITS:
            ids = [i for v, i in keys if v == visit]
            if ids and self.session.delete(visit, ids):
                changed.append(visit)
        self._after_edit(changed)
        self.status.value = f"deleted {len(keys)} lesion(s): press Re-measure"
        return bool(changed)

    def merge_selected(self, _value: Any = None) -> int:
        """Merge the lesions selected in the table (at least two, of one visit)."""
        keys = self.table.selected_keys()
        visits = {v for v, _ in keys}
        if self.session is None or len(keys) < 2 or len(visits) != 1:
            self.status.value = "select two or more lesions of the same visit to merge"
            return 0
        visit = visits.pop()
        into = self.session.merge(visit, [i for _, i in keys])
        self._after_edit([visit])
        self.status.value = f"merged into lesion {into}: press Re-measure"
        return into

    def _target_visit(self) -> str:
        active = self._viewer.layers.selection.active
        for visit in VISITS:
            if active is self.layers.get(visit):
                return visit
        keys = self.table.selected_keys()
        return keys[0][0] if keys else "pre"

    def new_lesion(self, _value: Any = None) -> int:
        """Paint a missed lesion: the active visit's lesion layer gets a new label in paint mode."""
        if self.session is None:
            return 0
        visit = self._target_visit()
        layer = self.layers[visit]
        label = _edits.next_label(self.session.labels[visit])
        self._viewer.layers.selection.active = layer
        layer.selected_label = label
        layer.mode = "paint"
        self.status.value = f"paint lesion {label} on the {visit} lesions layer, then Re-measure"
        return label

    def erase(self, _value: Any = None) -> None:
        """Erase on the active visit's lesion layer."""
        if self.session is None:
            return
        layer = self.layers[self._target_visit()]
        self._viewer.layers.selection.active = layer
        layer.mode = "erase"

    def _on_paint(self, visit: str) -> None:
        if self._syncing or self.session is None:
            return
        layer = self.layers[visit]
        action = "erase" if layer.mode == "erase" else "paint"
        if self.session.replace_labels(visit, np.asarray(layer.data), action=action):
            self._refresh_summary()

    def sync_from_layers(self) -> None:
        """Take edits made on the lesion layers that no paint event reported (napari's own undo, scripts)."""
        for visit in VISITS:
            self._on_paint(visit)

    def undo(self, _value: Any = None) -> list[str]:
        """Undo the last edit (delete, merge, paint, erase, new lesion or regions)."""
        if self.session is None:
            return []
        self.sync_from_layers()
        visits = self.session.undo()
        self._after_edit(visits)
        return visits

    def redo(self, _value: Any = None) -> list[str]:
        """Redo the last undone edit."""
        if self.session is None:
            return []
        visits = self.session.redo()
        self._after_edit(visits)
        return visits

    def draw_region(self, kind: str) -> Any:
        """Start drawing include or exclude polygons (baseline frame) on their own Shapes layer."""
        if self.session is None:
            return None
        colour = "lime" if kind == "include" else "red"
        layer = _upsert(
            self._viewer,
            f"{kind} regions",
            self.layers.get(kind).data if kind in self.layers else [],
            "shapes",
            affine=self._world["pre"],
            units=self.images["pre"].units,
            edge_color=colour,
            face_color=[0, 0, 0, 0],
            edge_width=2,
            metadata={"calcimg": {"kind": f"{kind}_regions"}},
        )
        self.layers[kind] = layer
        self._viewer.layers.selection.active = layer
        layer.mode = "add_polygon"
        self.status.value = f"draw {kind} polygons on the baseline, then Apply regions"
        return layer

    def region_mask(self, kind: str) -> np.ndarray | None:
        """The union of a regions layer's shapes as a baseline-frame mask (None without shapes)."""
        layer = self.layers.get(kind)
        if layer is None or not len(layer.data):
            return None
        return np.asarray(layer.to_masks(self.session.result.pre.radiograph.shape)).any(axis=0)

    def apply_regions(self, _value: Any = None) -> bool:
        """Segment both visits again with the drawn regions (undoable)."""
        if self.session is None:
            return False
        self.sync_from_layers()
        try:
            changed = self.session.apply_regions(self.region_mask("include"), self.region_mask("exclude"))
        except (CalcimgError, ValueError) as exc:
            self.status.value = f"error: {exc}"
            return False
        self._after_edit(list(VISITS))
        self.status.value = "regions applied: press Re-measure" if changed else "the regions changed nothing"
        return changed

    def remeasure(self, _value: Any = None) -> Any:
        """Measure the edited labels, match again, update the table, the colours and the summary."""
        if self.session is None:
            return None
        self.sync_from_layers()
        start = time.perf_counter()
        result = self.session.remeasure()
        self._after_edit(list(VISITS))
        self._refresh_result()
        self.status.value = f"re-measured in {time.perf_counter() - start:.2f} s"
        return result

    def export(self, folder: Any) -> dict[str, Path]:
        """Write the reviewed result (the files of ``calcimg compare``, ``summary.json`` with ``review``)."""
        if self.session is None or folder is None or str(folder) in ("", "."):
            self.status.value = "choose an export folder"
            return {}
        self.sync_from_layers()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            written = self.session.export(Path(folder))
        self._refresh_result()
        self.status.value = f"exported the reviewed result to {folder}"
        return written
