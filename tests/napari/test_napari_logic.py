"""The plugin's pure parts, without a viewer: re-measuring, edits and their history, the review session, readers,
writer, sample data, preview and the Params form's documentation."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from calcimg import Params, segment_image
from calcimg._napari import _edits
from calcimg._napari._layers import (
    change_colour_dict,
    radiograph_from_layer,
    radiograph_kwargs,
    registered_affine,
    to_baseline_px,
)
from calcimg._napari._measure import remeasure_pair
from calcimg._napari._params_form import field_label, params_docs
from calcimg._napari._preview import preview_segmentation, view_region
from calcimg._napari._reader import (
    get_radiograph_reader,
    get_result_folder_reader,
    read_radiographs,
    read_result_folder_layers,
)
from calcimg._napari._review import ReviewSession
from calcimg._napari._sample import phantom_pair
from calcimg._napari._writer import write_labels
from calcimg.core.registration import Registration, warp_labels
from calcimg.model import IDENTIFYING_KEYS

#: As in conftest: the scripted scenarios pin paired support off.
SCENARIO_PARAMS = Params(paired_support_min_score=1.0)

SAMPLES = Path(__file__).resolve().parents[2] / "sample_images"


# ------------------------------------------------------------------------------------------------------------
# re-measuring


def test_remeasure_of_unedited_labels_reproduces_the_pipeline(phantom_result):
    again = remeasure_pair(phantom_result, phantom_result.pre.labels, phantom_result.post.labels, SCENARIO_PARAMS)
    for visit in ("pre", "post"):
        pd.testing.assert_frame_equal(getattr(again, visit).lesions, getattr(phantom_result, visit).lesions)
    pd.testing.assert_frame_equal(again.matches, phantom_result.matches)
    assert json.dumps(again.summary, default=str) == json.dumps(phantom_result.summary, default=str)


def test_registration_round_trips_through_its_record(phantom_result):
    assert Registration.from_dict(phantom_result.transform.to_dict()).to_dict() == phantom_result.transform.to_dict()


# ------------------------------------------------------------------------------------------------------------
# edits and history


def test_label_edits_on_literal_arrays():
    labels = np.array([[1, 1, 0, 2], [0, 0, 0, 2], [3, 0, 0, 0]], np.int32)
    assert _edits.delete_labels(labels, [2, 9]).tolist() == [[1, 1, 0, 0], [0, 0, 0, 0], [3, 0, 0, 0]]
    merged, into = _edits.merge_labels(labels, [3, 1])
    assert into == 1 and merged.tolist() == [[1, 1, 0, 2], [0, 0, 0, 2], [1, 0, 0, 0]]
    with pytest.raises(ValueError, match="at least two"):
        _edits.merge_labels(labels, [2])
    added, new_id = _edits.add_lesion(labels, np.array([[1, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]], bool))
    assert new_id == 4 and added[0].tolist() == [1, 1, 4, 2]  # existing lesions are not overwritten
    patch = _edits.diff_patch("pre", labels, added)
    assert patch.box == (slice(0, 1), slice(2, 3)) and patch.before.tolist() == [[0]]
    assert _edits.diff_patch("pre", labels, labels.copy()) is None


def test_history_undoes_and_redoes_edits_across_visits():
    maps = {"pre": np.array([[1, 2]], np.int32), "post": np.array([[0, 5]], np.int32)}
    history = _edits.EditHistory(maps)
    assert history.apply({"action": "delete"}, {"pre": np.array([[1, 0]])})
    assert history.apply({"action": "paint"}, {"post": np.array([[7, 5]])})
    assert not history.apply({"action": "noop"}, {"pre": maps["pre"].copy()})
    assert [r["action"] for r in history.records] == ["delete", "paint"]
    assert history.undo() == ["post"] and maps["post"].tolist() == [[0, 5]]
    assert history.undo() == ["pre"] and maps["pre"].tolist() == [[1, 2]]
    assert history.undo() == [] and not history.can_undo
    assert history.redo() == ["pre"] and maps["pre"].tolist() == [[1, 0]]
    history.apply({"action": "merge"}, {"pre": np.array([[1, 1]])})
    assert not history.can_redo  # a new edit drops the undone ones


# ------------------------------------------------------------------------------------------------------------
# the review session


def test_review_delete_merge_remeasure_and_undo(phantom_result):
    session = ReviewSession(phantom_result, SCENARIO_PARAMS)
    before = phantom_result.summary
    pre = phantom_result.pre.lesions.set_index("lesion_id")
    assert session.delete("pre", [1]) and session.dirty
    result = session.remeasure()
    assert not session.dirty
    assert result.summary["pre_count"] == before["pre_count"] - 1
    assert result.summary["pre_area_mm2"] == pytest.approx(before["pre_area_mm2"] - pre.loc[1, "area_mm2"])
    assert 1 not in set(result.pre.lesions["lesion_id"])
    assert session.undo() == ["pre"]
    assert session.remeasure().summary["pre_count"] == before["pre_count"]
    assert before["post_count"] >= 2, "the scenario phantom needs two follow-up lesions to merge"
    into = session.merge("post", [2, 1])
    result = session.remeasure()
    merged = result.post.lesions.set_index("lesion_id")
    post = phantom_result.post.lesions.set_index("lesion_id")
    assert into == 1 and result.summary["post_count"] == before["post_count"] - 1
    assert merged.loc[1, "area_px"] == post.loc[1, "area_px"] + post.loc[2, "area_px"]
    assert [e["action"] for e in session.edits] == ["merge"]


def test_review_add_and_replace_labels(phantom_result):
    session = ReviewSession(phantom_result, SCENARIO_PARAMS)
    mask = np.zeros(phantom_result.pre.radiograph.shape, bool)
    mask[10:16, 200:206] = True
    new_id = session.add("pre", mask)
    assert new_id == int(phantom_result.pre.labels.max()) + 1
    result = session.remeasure()
    added = result.pre.lesions.set_index("lesion_id").loc[new_id]
    assert added["area_px"] == 36
    assert added["area_mm2"] == pytest.approx(36 * 0.6511**2)
    painted = session.labels["post"].copy()
    last = int(painted.max())
    painted[painted == last] = 0
    assert session.replace_labels("post", painted, action="erase")
    assert session.edits[-1] == {
        "action": "erase",
        "visit": "post",
        "removed_ids": [last],
        "pixels_changed": int((phantom_result.post.labels == last).sum()),
    }


def test_review_accepts_a_rejected_candidate_with_its_outline(phantom_result):
    """A rejected candidate becomes a lesion with the segmentation's own outline and the next free id; the edit
    records the candidate, its reason and score; undo removes it; an accepted or unknown id is refused."""
    session = ReviewSession(phantom_result, SCENARIO_PARAMS)
    rejected, table = session.rejected_candidates("pre")
    assert set(np.unique(rejected[rejected > 0])) == set(table["candidate_id"])
    assert not (rejected.astype(bool) & (phantom_result.pre.labels > 0)).any()
    low = table[table["reason"] == "low_score"].sort_values("area_px").iloc[-1]
    candidate = int(low["candidate_id"])
    before = phantom_result.summary["pre_count"]
    new_id = session.accept_candidate("pre", candidate)
    assert new_id == int(phantom_result.pre.labels.max()) + 1
    result = session.remeasure()
    assert result.summary["pre_count"] == before + 1
    added = result.pre.lesions.set_index("lesion_id").loc[new_id]
    assert added["area_px"] == int((phantom_result.pre.candidates == candidate).sum()) == low["area_px"]
    assert session.edits[-1] == {
        "action": "accept_candidate",
        "visit": "pre",
        "candidate_id": candidate,
        "rejected_as": "low_score",
        "score": round(float(low["score"]), 6),
        "lesion_id": new_id,
        "pixels_changed": int(low["area_px"]),
    }
    json.dumps(session.review_record())  # the record goes into the exported summaries
    with pytest.raises(ValueError, match="wholly inside lesions"):
        session.accept_candidate("pre", candidate)
    accepted_id = int(phantom_result.pre.candidate_table.query("reason == 'accepted'")["candidate_id"].iloc[0])
    with pytest.raises(ValueError, match="not a rejected candidate"):
        session.accept_candidate("pre", accepted_id)
    assert session.undo() == ["pre"]
    assert session.remeasure().summary["pre_count"] == before


def test_regions_reach_the_followup_through_the_registration(phantom_result):
    matrix = phantom_result.transform.matrix
    mask = np.zeros(phantom_result.pre.radiograph.shape, bool)
    row, col = (int(v) for v in phantom_result.pre.lesions[["centroid_row", "centroid_col"]].iloc[1])
    mask[row - 3 : row + 4, col - 3 : col + 4] = True
    post_mask = (
        warp_labels(mask.view(np.uint8), phantom_result.transform, phantom_result.post.radiograph.shape, inverse=True)
        > 0
    )
    rows, cols = np.nonzero(post_mask)
    back_r, back_c = to_baseline_px(matrix, rows.mean(), cols.mean())
    assert abs(back_r - row) < 1.5 and abs(back_c - col) < 1.5
    session = ReviewSession(phantom_result, SCENARIO_PARAMS)
    assert session.apply_regions(None, mask)  # exclude the grown lesion at both visits
    result = session.remeasure()
    assert result.summary["pre_count"] == phantom_result.summary["pre_count"] - 1
    assert session.undo() == ["post", "pre"]


def test_export_is_marked_reviewed_and_reopens(phantom_files, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session = ReviewSession.run(*(compare_input(phantom_files)), SCENARIO_PARAMS)
    n_post = session.result.summary["post_count"]
    deleted = session.result.post.lesions.set_index("lesion_id").loc[n_post]
    session.delete("post", [n_post])
    written = session.export(tmp_path / "review")
    summary = json.loads(written["summary"].read_text())
    assert summary["review"]["reviewed"] is True
    assert summary["review"]["edits"][0]["action"] == "delete"
    assert summary["review"]["automatic"]["post_count"] == n_post
    assert summary["post_count"] == n_post - 1
    assert summary["post_area_measured_mm2"] == pytest.approx(
        session.automatic["post_area_mm2"] * summary["magnification_correction"] - deleted["area_mm2"]
    )
    table = pd.read_csv(written["lesions"])
    assert sorted(table.loc[table["visit"] == "post", "lesion_id"]) == list(range(1, n_post))
    assert set(written) >= {"summary", "lesions", "pair_overlay", "pre_labels", "post_labels"}
    assert written["pre_labels"].name == f"{phantom_files['pre'].stem}_labels.tif"  # calcimg compare's names
    reopened = ReviewSession.from_folder(tmp_path / "review")
    assert reopened.result.summary["post_count"] == n_post - 1
    assert reopened.result.summary["pre_area_mm2"] == pytest.approx(summary["pre_area_mm2"])
    assert [e["action"] for e in reopened.edits] == ["delete"]
    reopened.delete("pre", [1])
    second = json.loads(reopened.export(tmp_path / "again")["summary"].read_text())
    assert [e["action"] for e in second["review"]["edits"]] == ["delete", "delete"]
    assert second["review"]["automatic"]["pre_count"] == session.automatic["pre_count"]


def compare_input(files):
    from calcimg import load_radiograph

    return load_radiograph(files["pre"]), load_radiograph(files["post"])


# ------------------------------------------------------------------------------------------------------------
# readers, writer, sample


@pytest.mark.parametrize("name", ["S01_hand_pre.dcm", "S02_forearm_pre.png", "S03_knee_pre.tif"])
def test_radiograph_reader_sets_scale_in_mm_and_hides_identifiers(name):
    path = SAMPLES / name
    reader = get_radiograph_reader(str(path))
    assert reader is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ((data, kwargs, kind),) = reader(str(path))
    info = kwargs["metadata"]["calcimg"]
    assert kind == "image" and data.ndim == 2 and kwargs["units"] == "mm"
    assert kwargs["scale"] == tuple(info["spacing_mm"]) and 0.05 < kwargs["scale"][0] < 0.3
    assert not IDENTIFYING_KEYS & set(info["header"])
    assert "PHANTOM" not in json.dumps(info)
    assert info["content_hash"].startswith("sha256:")
    rebuilt = radiograph_from_layer(data, kwargs["metadata"], kwargs["scale"])
    assert rebuilt.spacing_mm == tuple(info["spacing_mm"]) and rebuilt.content_hash == info["content_hash"]


def test_dicom_without_extension_is_read_and_other_files_declined(tmp_path):
    bare = tmp_path / "IM0001"
    shutil.copy(SAMPLES / "S01_hand_post.dcm", bare)
    assert get_radiograph_reader(str(bare)) is not None
    (tmp_path / "notes.txt").write_text("not an image")
    assert get_radiograph_reader(str(tmp_path / "notes.txt")) is None
    assert get_radiograph_reader(str(tmp_path)) is None
    assert get_result_folder_reader(str(tmp_path)) is None


def test_label_writer_round_trips_through_the_reader(tmp_path):
    labels = np.zeros((20, 30), np.int32)
    labels[2:5, 3:9] = 4
    (path,) = write_labels(str(tmp_path / "edited"), labels, {"name": "lesions"})
    assert path.endswith("edited.tif")
    assert tifffile.imread(path).dtype == np.uint16
    ((data, _kwargs, kind),) = read_radiographs(path)  # recognised as calcimg labels, not as a radiograph
    assert kind == "labels" and np.array_equal(data, labels)
    with pytest.raises(ValueError, match="2-D"):
        write_labels(str(tmp_path / "bad.tif"), np.zeros((2, 2, 2), np.int32), {})


def test_result_folder_reader_restores_images_lesions_and_classes(phantom_result, tmp_path):
    from calcimg.report.pair import write_comparison

    write_comparison(phantom_result, tmp_path, "pre", "post")
    reader = get_result_folder_reader(str(tmp_path))
    assert reader is read_result_folder_layers
    layers = reader(str(tmp_path))
    assert [kind for *_, kind in layers] == ["image", "labels", "image", "labels"]
    (pre_image, pre_image_kwargs, _), (pre_labels, pre_kwargs, _) = layers[:2]
    (_post_image, post_image_kwargs, _), (post_labels, post_kwargs, _) = layers[2:]
    assert np.array_equal(pre_image, phantom_result.pre.radiograph.pixels)
    assert np.array_equal(pre_labels, phantom_result.pre.labels)
    assert np.array_equal(post_labels, phantom_result.post.labels)
    assert pre_kwargs["colormap"] == change_colour_dict(phantom_result.matches, "pre")
    post_rows = phantom_result.matches.query("visit == 'post'").sort_values("lesion_id")
    assert list(post_kwargs["features"]["change_class"]) == list(post_rows["change_class"])
    assert pre_kwargs["metadata"]["calcimg"]["summary"]["post_count"] == phantom_result.summary["post_count"]
    expected = registered_affine(phantom_result.transform.matrix, (0.6511, 0.6511), (0.6511, 0.6511))
    np.testing.assert_allclose(post_kwargs["affine"], expected)
    np.testing.assert_allclose(post_image_kwargs["affine"], expected)
    assert "affine" not in pre_kwargs and pre_kwargs["scale"] == pre_image_kwargs["scale"] == (0.6511, 0.6511)


def test_result_folder_reader_without_its_images_shows_the_lesions(phantom_result, tmp_path):
    from calcimg.report.pair import write_comparison

    write_comparison(phantom_result, tmp_path, "pre", "post")
    summary = json.loads((tmp_path / "summary.json").read_text())
    for visit in ("pre", "post"):
        summary["inputs"][visit]["path"] = str(tmp_path / "moved" / f"{visit}.dcm")
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    with pytest.warns(UserWarning, match="not found"):
        layers = read_result_folder_layers(str(tmp_path))
    assert [kind for *_, kind in layers] == ["labels", "labels"]


def test_registered_affine_maps_followup_pixels_onto_the_baseline(phantom_result):
    matrix = phantom_result.transform.matrix
    affine = registered_affine(matrix, (0.5, 0.5), (0.25, 0.25))
    rows, cols = to_baseline_px(matrix, 100.0, 50.0)
    world = affine @ [100 * 0.25, 50 * 0.25, 1.0]
    np.testing.assert_allclose(world[:2], [rows * 0.5, cols * 0.5])


def test_sample_is_a_phantom_pair_with_truth():
    layers = phantom_pair()
    assert [(kwargs["name"], kind) for _, kwargs, kind in layers] == [
        ("phantom baseline", "image"),
        ("phantom follow-up", "image"),
        ("truth baseline", "labels"),
        ("truth follow-up", "labels"),
    ]
    image, kwargs, _ = layers[0]
    truth, truth_kwargs, _ = layers[2]
    assert image.shape == truth.shape and kwargs["scale"] == (0.3, 0.3)
    assert set(np.unique(truth)) - {0} == set(truth_kwargs["features"]["index"])
    assert kwargs["metadata"]["calcimg"]["truth"]["n_lesions_pre"] == len(truth_kwargs["features"])


def test_radiograph_kwargs_of_an_uncalibrated_image():
    from calcimg.model import Radiograph

    kwargs = radiograph_kwargs(Radiograph(np.arange(100, dtype=np.uint16).reshape(10, 10)), "x")
    assert kwargs["scale"] == (1.0, 1.0) and kwargs["units"] == "pixel"
    assert kwargs["contrast_limits"][0] < kwargs["contrast_limits"][1]


# ------------------------------------------------------------------------------------------------------------
# preview and Params documentation


def test_view_region_clips_and_declines():
    assert view_region(np.array([[-5.0, -5.0], [50.0, 60.0]]), (40, 40)) == (slice(0, 40), slice(0, 40))
    assert view_region(np.array([[100.0, 100.0], [120.0, 130.0]]), (40, 40)) is None


def test_preview_reduces_a_large_region_and_places_it(phantom_radiographs):
    radiograph = phantom_radiographs["pre"]
    full = preview_segmentation(radiograph, Params(), max_pixels=10**7)
    assert full.factor == (1.0, 1.0) and full.origin == (0, 0)
    # The whole image at full resolution is Run's segmentation.
    run = segment_image(radiograph, Params())
    assert full.n_lesions == len(run.lesions) >= 1
    assert np.array_equal(full.labels, run.labels)
    part = preview_segmentation(radiograph, Params(), (slice(100, 384), slice(50, 384)), max_pixels=20_000)
    assert part.origin == (100, 50)
    assert part.factor[0] > 1.9 and part.labels.shape[0] * part.factor[0] == pytest.approx(284)
    assert set(part.reasons.values()) <= {
        "outside_field", "outside_body", "excluded_region", "marker", "too_small", "too_large", "ridge",
        "low_contrast", "faint", "low_score",
    }  # fmt: skip


def test_params_docs_cover_every_field():
    from dataclasses import fields

    docs = params_docs()
    for spec in fields(Params):
        if spec.name != "schema_version":
            assert docs.get(spec.name), spec.name
    assert docs["min_area_mm2"] == docs["max_area_mm2"] == "Accepted lesion area range."
    assert field_label("progression_pct") == "progression (%)"
