from pathlib import Path

import pytest

from calcimg.errors import InputError
from calcimg.pairing import (
    DEFAULT_PSEUDONYM_KEY,
    PSEUDONYM_KEY_ENV,
    ImageRecord,
    parse_manifest,
    parse_name,
    parse_timepoint,
    place_from_header,
    place_image,
    plan_batch,
    pseudonym,
    resolve_pseudonym_key,
    safe_name,
)

ROOT = Path("/study")


def plan_of(names, also_previous=False, headers=None):
    headers = headers or {}
    records = [place_image(ROOT / name, ROOT, headers.get(name)) for name in names]
    return plan_batch(records, lambda s: s, also_previous=also_previous)


def pairs_of(plan):
    return [(p.item_id, p.baseline.relpath, p.followup.relpath) for p in plan.pairs]


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("pre", "post"),
        ("baseline", "followup"),
        ("BL", "fu1"),
        ("t0", "t1"),
        ("t1", "t10"),  # numeric, not lexical, order
        ("v1", "v2"),
        ("v2", "visit3"),
        ("20190101", "20191231"),
        ("2019-12-31", "20200101"),
        ("pre", "20190101"),  # a baseline token comes first in any kind
        ("post", "fu2"),
    ],
)
def test_timepoints_are_ordered(earlier, later):
    assert parse_timepoint(earlier) < parse_timepoint(later)


@pytest.mark.parametrize("token", ["week3", "20191340", "t", "latest", "", "v1a"])
def test_unknown_timepoints_are_refused(token):
    assert parse_timepoint(token) is None


def test_name_rule_splits_subject_site_and_timepoint():
    subject, site, tp = parse_name("P01_hand_L_fu1.png")
    assert (subject, site, tp.label, tp.rank) == ("P01", "hand_L", "fu1", (1, 1))
    assert parse_name("S01_hand_pre.dcm")[:2] == ("S01", "hand")
    assert parse_name("P1_knee_20190720.tif")[2].date == "20190720"
    assert parse_name("hand_pre.png") is None  # two parts only
    assert parse_name("P1_hand_final.png") is None  # not a timepoint
    assert parse_name("P1__pre.png") is None  # empty site


def test_two_timepoints_make_one_pair():
    plan = plan_of(["S01_hand_post.png", "S01_hand_pre.png"])
    assert pairs_of(plan) == [("S01/hand/pre_vs_post", "S01_hand_pre.png", "S01_hand_post.png")]
    assert plan.singles == [] and plan.problems == []


def test_dates_order_the_visits_not_the_names():
    plan = plan_of(["P1_knee_20200301.tif", "P1_knee_20191231.tif", "P1_knee_20190105.tif"])
    assert pairs_of(plan) == [
        ("P1/knee/20190105_vs_20191231", "P1_knee_20190105.tif", "P1_knee_20191231.tif"),
        ("P1/knee/20190105_vs_20200301", "P1_knee_20190105.tif", "P1_knee_20200301.tif"),
    ]


def test_each_followup_is_compared_with_the_baseline_and_optionally_the_previous():
    names = ["P1_hand_t0.png", "P1_hand_t1.png", "P1_hand_t2.png", "P1_hand_t10.png"]
    plan = plan_of(names)
    assert [p.item_id for p in plan.pairs] == ["P1/hand/t0_vs_t1", "P1/hand/t0_vs_t2", "P1/hand/t0_vs_t10"]
    plan = plan_of(names, also_previous=True)
    assert [(p.item_id, p.reference) for p in plan.pairs] == [
        ("P1/hand/t0_vs_t1", "baseline"),
        ("P1/hand/t0_vs_t2", "baseline"),
        ("P1/hand/t1_vs_t2", "previous"),
        ("P1/hand/t0_vs_t10", "baseline"),
        ("P1/hand/t2_vs_t10", "previous"),
    ]


def test_groups_are_subject_and_site():
    plan = plan_of(["A_hand_pre.png", "A_knee_pre.png", "A_hand_post.png", "B_hand_post.png"])
    assert [p.item_id for p in plan.pairs] == ["A/hand/pre_vs_post"]
    assert sorted(s.item_id for s in plan.singles) == ["A/knee/pre", "B/hand/post"]
    assert all(s.reason == "no other timepoint" for s in plan.singles)


def test_two_files_for_one_timepoint_are_an_ambiguity_and_left_out():
    plan = plan_of(["A_hand_pre.png", "A_hand_pre.tif", "A_hand_post.png", "A_hand_fu2.png"])
    assert [p.item_id for p in plan.pairs] == ["A/hand/post_vs_fu2"]
    (problem,) = plan.ambiguities
    assert problem.files == ("A_hand_pre.png", "A_hand_pre.tif")
    assert "2 images for timepoint pre" in problem.message
    # "post" and "fu1" are the same timepoint written two ways
    plan = plan_of(["A_hand_pre.png", "A_hand_post.png", "A_hand_fu1.png"])
    assert plan.pairs == [] and len(plan.ambiguities) == 1 and [s.item_id for s in plan.singles] == ["A/hand/pre"]


def test_mixed_timepoint_kinds_cannot_be_ordered():
    plan = plan_of(["A_hand_t1.png", "A_hand_v2.png"])
    assert plan.pairs == [] and plan.singles == []
    assert "different kinds" in plan.ambiguities[0].message


def test_unplaced_files_are_singles_with_stable_ids():
    plan = plan_of(["scan 1.png", "x/other.tif"])
    ids = [s.item_id for s in plan.singles]
    assert len(ids) == 2 and all(i.startswith("unplaced/") for i in ids)
    assert ids[0].startswith("unplaced/scan-1-")
    assert ids == [s.item_id for s in plan_of(["x/other.tif", "scan 1.png"]).singles]


HEADER_PRE = {"patient_id": "PX-1", "body_part": "HAND", "laterality": "R", "view": "PA", "study_date": "20190105"}


def test_headers_place_dicom_files_and_win_over_names():
    headers = {
        "a.dcm": HEADER_PRE,
        # the name says "pre" but the header's date says it is the later film
        "Q_hand_pre.dcm": {**HEADER_PRE, "study_date": "", "acquisition_date": "20200101"},
    }
    plan = plan_of(["a.dcm", "Q_hand_pre.dcm"], headers=headers)
    assert pairs_of(plan) == [("PX-1/hand_R_PA/20190105_vs_20200101", "a.dcm", "Q_hand_pre.dcm")]
    assert {r.source for p in plan.pairs for r in p.images} == {"header"}


def test_headers_without_a_patient_or_date_fall_back_to_the_name():
    assert place_from_header({"patient_id": "X", "body_part": "HAND"}) is None
    assert place_from_header({"body_part": "HAND", "study_date": "20190101"}) is None
    record = place_image(ROOT / "S1_knee_pre.dcm", ROOT, {"body_part": "KNEE"})
    assert (record.source, record.subject, record.site) == ("name", "S1", "knee")
    # laterality and view separate groups
    plan = plan_of(
        ["l.dcm", "r.dcm"],
        headers={"l.dcm": {**HEADER_PRE, "laterality": "L"}, "r.dcm": {**HEADER_PRE, "study_date": "20200101"}},
    )
    assert plan.pairs == [] and len(plan.singles) == 2


def test_pseudonyms_are_keyed_and_stable(monkeypatch):
    assert pseudonym("PX-1", "a") == pseudonym("PX-1", "a")
    assert pseudonym("PX-1", "a") != pseudonym("PX-1", "b")
    assert pseudonym("PX-1", "a").startswith("sub-") and "PX" not in pseudonym("PX-1", "a")
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    assert resolve_pseudonym_key(None) == (DEFAULT_PSEUDONYM_KEY, True)
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "from-env")
    assert resolve_pseudonym_key(None) == ("from-env", False)
    assert resolve_pseudonym_key("given") == ("given", False)


def test_plan_names_subjects_with_the_namer():
    records = [place_image(ROOT / n, ROOT, None) for n in ("PX_hand_pre.png", "PX_hand_post.png")]
    plan = plan_batch(records, lambda s: pseudonym(s, "k"))
    assert plan.pairs[0].item_id == f"{pseudonym('PX', 'k')}/hand/pre_vs_post"
    assert plan.pairs[0].subject == "PX"  # the raw id stays in memory only


@pytest.mark.parametrize(
    ("text", "expected"),
    [("../../etc", "etc"), ("hand L", "hand-L"), ("a/b\\c", "a-b-c"), ("..", "unknown"), ("ok.v1", "ok.v1")],
)
def test_safe_name(text, expected):
    assert safe_name(text) == expected


def manifest(rows, header="subject,site,timepoint,date,path,spacing"):
    return header + "\n" + "\n".join(rows) + "\n"


def test_manifest_rows_are_placed(tmp_path):
    text = manifest(["P1,hand,pre,20190101,img/a.png,0.15", "P1,hand,post,2020-01-01,img/b.png,"])
    records = parse_manifest(text, tmp_path, tmp_path)
    assert [(r.relpath, r.timepoint.label, r.timepoint.date, r.spacing_mm) for r in records] == [
        ("img/a.png", "pre", "20190101", 0.15),
        ("img/b.png", "post", "20200101", None),
    ]
    assert {r.source for r in records} == {"manifest"}
    plan = plan_batch(records, lambda s: s)
    assert pairs_of(plan) == [("P1/hand/pre_vs_post", "img/a.png", "img/b.png")]


def test_manifest_dates_order_free_timepoint_labels(tmp_path):
    text = manifest(["P1,hand,screening,20190101,a.png,", "P1,hand,month 6,20190701,b.png,"])
    plan = plan_batch(parse_manifest(text, tmp_path, tmp_path), lambda s: s)
    assert pairs_of(plan) == [("P1/hand/screening_vs_month-6", "a.png", "b.png")]


def test_manifest_without_date_uses_timepoint_tokens(tmp_path):
    text = manifest(["P1,hand,t1,a.png", "P1,hand,t0,b.png"], header="subject,site,timepoint,path")
    plan = plan_batch(parse_manifest(text, tmp_path, tmp_path), lambda s: s)
    assert pairs_of(plan) == [("P1/hand/t0_vs_t1", "b.png", "a.png")]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("P1,hand,pre,,../outside.png,", "leads outside the study root"),
        ("P1,hand,pre,,img/../../x.png,", "leads outside the study root"),
        ("P1,hand,pre,,/etc/passwd,", "absolute path"),
        ("P1,hand,pre,,C:\\\\x.png,", "absolute path"),
        ("P1,hand,later,,a.png,", "not understood"),
        ("P1,hand,pre,2019-13-01,a.png,", "is not YYYYMMDD"),
        ("P1,hand,pre,,a.png,zero", "not a number"),
        ("P1,hand,pre,,a.png,-1", "not a pixel spacing"),
        (",hand,pre,,a.png,", "empty subject"),
    ],
)
def test_manifest_errors_name_the_file_and_line(tmp_path, row, message):
    with pytest.raises(InputError) as info:
        parse_manifest(manifest(["P1,hand,post,,ok.png,", row]), tmp_path, tmp_path, "m.csv")
    text = str(info.value)
    assert text.startswith("m.csv: invalid manifest") and "line 3" in text and message in text


def test_manifest_inside_subfolder_may_point_next_to_it_within_the_root(tmp_path):
    records = parse_manifest(manifest(["P1,hand,pre,,../img/a.png,"]), tmp_path / "lists", tmp_path)
    assert records[0].relpath == "img/a.png"


def test_manifest_needs_its_columns(tmp_path):
    with pytest.raises(InputError, match="lacks the column"):
        parse_manifest("subject,path\nP1,a.png\n", tmp_path, tmp_path, "m.csv")
    with pytest.raises(InputError, match="timepoint or date"):
        parse_manifest("subject,site,path\nP1,hand,a.png\n", tmp_path, tmp_path, "m.csv")
    with pytest.raises(InputError, match="lists no image"):
        parse_manifest("subject,site,timepoint,path\n", tmp_path, tmp_path, "m.csv")


def test_image_record_defaults_are_unplaced():
    record = ImageRecord(ROOT / "a.png", "a.png")
    assert (record.subject, record.timepoint, record.source) == (None, None, "none")


def test_probe_reads_a_dicom_file_without_preamble_or_file_meta(tmp_path):
    """Old files without the 128-byte preamble are read by calcimg's reader (forced); the probe must agree."""
    from pydicom.dataset import Dataset
    from pydicom.filewriter import dcmwrite

    from calcimg.pairing import probe_image

    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    ds.PatientID = "P7"
    ds.BodyPartExamined = "HAND"
    ds.StudyDate = "20200101"
    path = tmp_path / "old_file"
    dcmwrite(path, ds, implicit_vr=True, little_endian=True, enforce_file_format=False)
    assert path.read_bytes()[128:132] != b"DICM"
    facts, problem = probe_image(path)
    assert problem is None
    assert facts["patient_id"] == "P7" and facts["study_date"] == "20200101"
