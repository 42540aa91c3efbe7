"""The plugin in a napari viewer (headless, under Xvfb): manifest contributions, both widgets, a whole review, and a
screenshot check that lesion colours are drawn where the lesions are."""

from __future__ import annotations

import json
import os
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")
if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    # Without a screen Qt aborts the whole run; pytest-xvfb (and xvfb) provide one.
    pytest.skip("no display: install xvfb and pytest-xvfb (docs/napari.md)", allow_module_level=True)

from calcimg._napari._layers import CHANGE_COLOURS  # noqa: E402
from calcimg._napari._widgets import PairReviewWidget, SegmentWidget  # noqa: E402

#: As in conftest: the scripted scenarios pin paired support off.
SCENARIO_PARAMS_MIN_SCORE = 1.0

pytestmark = pytest.mark.gui


def _open(viewer, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return viewer.open(str(path), plugin="calcimg")


def _run_review(viewer, files, widget=None):
    """Open the scenario pair, choose it in a Pair review widget (a new one unless given) and run it."""
    (pre,) = _open(viewer, files["pre"])
    (post,) = _open(viewer, files["post"])
    widget = widget or PairReviewWidget(viewer)
    widget.baseline.value, widget.followup.value = pre, post
    widget.params["paired_support_min_score"].value = SCENARIO_PARAMS_MIN_SCORE
    return pre, post, widget, widget.run()


def test_manifest_reader_and_sample(make_napari_viewer, phantom_files):
    viewer = make_napari_viewer()
    (layer,) = _open(viewer, phantom_files["pre"])
    assert isinstance(layer, napari.layers.Image)
    assert tuple(layer.scale) == (0.6511, 0.6511)
    assert "patient_id" not in layer.metadata["calcimg"]["header"]
    layers = viewer.open_sample("calcimg", "phantom_pair")
    assert [lay.name for lay in layers] == [
        "phantom baseline",
        "phantom follow-up",
        "truth baseline",
        "truth follow-up",
    ]
    assert isinstance(layers[2], napari.layers.Labels) and not layers[2].visible
    assert "index" in layers[2].features.columns


def test_segment_widget_runs_and_previews(make_napari_viewer, phantom_files, qtbot):
    viewer = make_napari_viewer()
    (image,) = _open(viewer, phantom_files["pre"])
    _, widget = viewer.window.add_plugin_dock_widget("calcimg", "Segment")
    assert isinstance(widget, SegmentWidget)
    widget.image.value = image
    assert "times the noise scale" in widget.params["seed_k"].tooltip
    result = widget.run()
    lesions = viewer.layers[f"{image.name} lesions"]
    rejected = viewer.layers[f"{image.name} rejected"]
    n = len(result.lesions)
    assert n >= 1 and int(lesions.data.max()) == n
    assert list(lesions.features["index"]) == list(range(1, n + 1))
    assert lesions.features["area_mm2"].sum() == pytest.approx(result.summary["total_area_mm2"])
    np.testing.assert_allclose(lesions.affine.affine_matrix[:2, :2], np.diag([0.6511, 0.6511]))
    assert set(rejected.features["reason"]) and (rejected.data > 0).any()
    widget.show_rejected.value = False
    assert not rejected.visible
    # A parameter change schedules one debounced preview of the region in view.
    widget.params["seed_k"].value = 5.0
    widget.params["seed_k"].value = 4.5
    assert widget._timer.isActive()
    qtbot.waitUntil(lambda: f"{image.name} preview" in viewer.layers, timeout=5000)
    assert widget.last_preview is not None and widget.last_preview.seconds < 2
    assert "preview:" in widget.status.value


def test_whole_review_flow(make_napari_viewer, phantom_files, phantom_result, tmp_path):
    # The scenario is written in terms of what the pipeline finds, so that it tests the widget, not the engine.
    n_pre, n_post = phantom_result.summary["pre_count"], phantom_result.summary["post_count"]
    assert n_pre >= 1 and n_post >= 1, "the scenario phantom needs a lesion at each visit"
    viewer = make_napari_viewer()
    _, docked = viewer.window.add_plugin_dock_widget("calcimg", "Pair review")
    assert isinstance(docked, PairReviewWidget)
    pre, post, widget, session = _run_review(viewer, phantom_files, docked)
    assert session is not None and f"count</b> {n_pre} &rarr; {n_post}" in widget.summary.value
    assert widget.table.rowCount() == n_pre + n_post
    # The follow-up image shows in the baseline frame through its affine.
    np.testing.assert_allclose(post.affine.affine_matrix, widget.layers["post"].affine.affine_matrix @ np.diag(
        [1 / 0.6511, 1 / 0.6511, 1]), atol=1e-9)  # fmt: skip
    # Sorting by area sorts numbers.
    widget.table.sortItems(3)
    areas = [float(widget.table.item(r, 3).text()) for r in range(widget.table.rowCount())]
    assert areas == sorted(areas)
    # Choosing a row centres the view on that lesion and outlines it at both visits.
    assert widget.table.select_key("post", n_post)
    lesion = session.result.post.lesions.set_index("lesion_id").loc[n_post]
    world = widget._world["post"] @ [lesion["centroid_row"], lesion["centroid_col"], 1]
    np.testing.assert_allclose(viewer.scene.camera.center[-2:], world[:2], atol=3.0)
    assert len(widget.layers["pre_highlight"].data) == len(widget.layers["post_highlight"].data) == 1
    # Modes.
    widget.mode.value = "side by side"
    assert viewer.canvas.grid.enabled and viewer.canvas.grid.stride == 4
    widget.mode.value = "overlay"
    assert not viewer.canvas.grid.enabled and post.blending == "additive"
    assert widget.flicker() == "post" and post.visible and not pre.visible
    assert widget.flicker() == "pre" and pre.visible and not post.visible
    # Delete the selected lesion, undo, redo, re-measure.
    assert widget.delete_selected()
    assert not (widget.layers["post"].data == n_post).any() and "Re-measure" in widget.summary.value
    widget.undo()
    assert (widget.layers["post"].data == n_post).any()
    widget.redo()
    widget.remeasure()
    assert session.result.summary["post_count"] == n_post - 1 and widget.table.rowCount() == n_pre + n_post - 1
    # Paint a missed lesion on the baseline layer (as the brush would), then re-measure.
    layer = widget.layers["pre"]
    viewer.layers.selection.active = layer
    new_id = widget.new_lesion()
    assert layer.mode == "paint" and layer.selected_label == new_id == n_pre + 1
    data = layer.data.copy()
    data[20:24, 200:204] = new_id
    layer.data = data
    widget.remeasure()
    assert session.result.summary["pre_count"] == n_pre + 1
    assert session.edits[-1]["action"] == "paint" and session.edits[-1]["added_ids"] == [new_id]
    # Export, then reopen with the folder reader.
    written = widget.export(tmp_path / "reviewed")
    summary = json.loads(written["summary"].read_text())
    assert summary["review"]["reviewed"] is True
    assert [e["action"] for e in summary["review"]["edits"]] == ["delete", "paint"]
    assert summary["post_count"] == n_post - 1 and summary["pre_count"] == n_pre + 1
    lesions = pd.read_csv(written["lesions"])
    assert len(lesions) == n_pre + n_post
    painted = lesions.loc[(lesions["visit"] == "pre") & (lesions["lesion_id"] == new_id)].iloc[0]
    assert painted["area_mm2"] == pytest.approx(16 * 0.6511**2, rel=1e-4)
    assert summary["pre_area_mm2"] == pytest.approx(lesions.loc[lesions["visit"] == "pre", "area_mm2"].sum(), rel=1e-4)
    reopened = _open(viewer, tmp_path / "reviewed")
    assert [lay.name for lay in reopened][1].endswith("lesions")
    assert reopened[1].metadata["calcimg"]["reviewed"] is True
    assert widget.open_folder(tmp_path / "reviewed") is not None
    assert widget.session.result.summary["pre_count"] == n_pre + 1


def test_merge_and_regions_in_the_widget(make_napari_viewer, phantom_files, phantom_result):
    n_pre = phantom_result.summary["pre_count"]
    assert n_pre >= 2, "the scenario phantom needs two baseline lesions to merge"
    viewer = make_napari_viewer()
    _, _, widget, session = _run_review(viewer, phantom_files)
    widget.table.select_key("pre", 1)
    rows = range(widget.table.rowCount())
    widget.table.selectRow(next(r for r in rows if widget.table.row_key(r) == ("pre", 2)))
    widget.table.setSelectionMode(widget.table.SelectionMode.MultiSelection)
    widget.table.select_key("pre", 1)
    assert sorted(widget.table.selected_keys()) == [("pre", 1), ("pre", 2)]
    assert widget.merge_selected() == 1
    widget.remeasure()
    assert session.result.summary["pre_count"] == n_pre - 1
    regions = widget.draw_region("exclude")
    lesion = phantom_result.pre.lesions.set_index("lesion_id").loc[2]
    r, c = lesion["centroid_row"], lesion["centroid_col"]
    regions.add_rectangles(np.array([[r - 5, c - 5], [r + 5, c + 5]]))
    assert widget.apply_regions()
    widget.remeasure()
    # Regions segment again: lesion 2 is excluded, the merge before is replaced (undo brings it back).
    found = session.result.pre.lesions
    assert len(found) == n_pre - 1
    assert (np.hypot(found["centroid_row"] - r, found["centroid_col"] - c) > 5).all()
    assert session.edits[-1]["action"] == "regions"
    widget.undo()
    widget.remeasure()
    assert sorted(session.result.pre.lesions["lesion_id"]) == [1, *range(3, n_pre + 1)]


def test_accepting_a_rejected_candidate_in_the_widget(make_napari_viewer, phantom_files, phantom_result):
    """Rejected candidates are shown per visit on request (hidden at first); a candidate picked on the baseline's
    rejected layer becomes a lesion with its outline, leaves the rejected layer, and counts after Re-measure."""
    viewer = make_napari_viewer()
    _, _, widget, session = _run_review(viewer, phantom_files)
    rejected = widget.layers["pre_rejected"]
    assert not rejected.visible and not widget.layers["post_rejected"].visible
    widget.show_rejected.value = True
    assert rejected.visible and widget.layers["post_rejected"].visible
    table = phantom_result.pre.rejected
    candidate = int(table.loc[table["reason"] == "low_score"].sort_values("area_px")["candidate_id"].iloc[-1])
    assert widget.accept_candidate() == 0  # nothing picked on a rejected layer: a hint, no edit
    viewer.layers.selection.active = rejected
    rejected.selected_label = candidate
    label = widget.accept_candidate()
    assert label == int(phantom_result.pre.labels.max()) + 1
    outline = phantom_result.pre.candidates == candidate
    assert (np.asarray(widget.layers["pre"].data)[outline] == label).all()
    assert not np.asarray(rejected.data)[outline].any()
    widget.remeasure()
    assert session.result.summary["pre_count"] == phantom_result.summary["pre_count"] + 1
    assert session.edits[-1]["action"] == "accept_candidate"
    widget.flicker()  # the follow-up alone: the baseline's rejected layer hides with its image
    assert not rejected.visible and widget.layers["post_rejected"].visible


def test_screenshot_shows_lesion_colours_on_the_lesions(make_napari_viewer, phantom_files, phantom_result):
    # One follow-up lesion of each of two change classes, as the pipeline classed them.
    post_classes = phantom_result.matches.query("visit == 'post'").drop_duplicates("change_class")
    shown = list(zip(post_classes["lesion_id"], post_classes["change_class"], strict=True))[:2]
    assert len(shown) == 2, "the scenario phantom needs follow-up lesions of two change classes"
    viewer = make_napari_viewer(show=True)
    _, _, widget, session = _run_review(viewer, phantom_files)
    assert widget.flicker() == "post"  # the follow-up alone, grey, with its lesions
    for lesion_id, change in shown:
        widget.focus("post", lesion_id)
        shot = viewer.screenshot(canvas_only=True, flash=False)
        widget.layers["post"].visible = False
        plain = viewer.screenshot(canvas_only=True, flash=False)
        widget.layers["post"].visible = True
        h, w = shot.shape[:2]
        centre = (slice(h // 2 - 2, h // 2 + 3), slice(w // 2 - 2, w // 2 + 3))
        colour = np.asarray(CHANGE_COLOURS[change][:3]) * 255
        grey = plain[centre][..., :3].reshape(-1, 3).mean(axis=0)
        seen = shot[centre][..., :3].reshape(-1, 3).mean(axis=0)
        opacity = widget.layers["post"].opacity
        np.testing.assert_allclose(seen, opacity * colour + (1 - opacity) * grey, atol=30)
        assert np.abs(grey - grey.mean()).max() < 3  # the image alone is grey there
        # Far from every lesion the screenshot is the image alone.
        diff = np.abs(shot[..., :3].astype(int) - plain[..., :3].astype(int)).sum(axis=-1) > 30
        rows, cols = np.nonzero(diff)
        assert diff.mean() < 0.25 and abs(rows.mean() - h / 2) < h / 4 and abs(cols.mean() - w / 2) < w / 4
    assert session.result.summary["post_count"] == phantom_result.summary["post_count"]
