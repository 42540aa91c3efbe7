import numpy as np
import pytest

from calcimg.model import IDENTIFYING_KEYS, Radiograph, public_metadata


def test_radiograph_reports_shape_and_pixel_area():
    radiograph = Radiograph(np.zeros((3, 5), np.uint16), spacing_mm=(0.1, 0.2), spacing_source="pixel_spacing")
    assert radiograph.shape == (3, 5)
    assert radiograph.calibrated
    assert radiograph.pixel_area_mm2 == pytest.approx(0.02)
    identity = radiograph.identity()
    assert identity["spacing_mm"] == [0.1, 0.2]
    assert identity["spacing_source"] == "pixel_spacing"


def test_uncalibrated_radiograph_has_no_pixel_area():
    radiograph = Radiograph(np.zeros((4, 4), np.uint16))
    assert not radiograph.calibrated
    assert radiograph.pixel_area_mm2 is None


@pytest.mark.parametrize(
    ("spacing", "source"),
    [((0.1, 0.1), "none"), (None, "pixel_spacing"), ((0.1, 0.1), "made_up_source")],
)
def test_radiograph_refuses_inconsistent_spacing(spacing, source):
    with pytest.raises(ValueError, match="spacing"):
        Radiograph(np.zeros((2, 2), np.uint16), spacing_mm=spacing, spacing_source=source)


def test_radiograph_refuses_non_2d_pixels():
    with pytest.raises(ValueError, match="2-D"):
        Radiograph(np.zeros((2, 2, 3), np.uint8))


def test_public_metadata_drops_every_identifier_unless_asked():
    metadata = {key: "secret" for key in IDENTIFYING_KEYS} | {"modality": "DX", "body_part": "HAND"}
    assert public_metadata(metadata) == {"modality": "DX", "body_part": "HAND"}
    assert public_metadata(metadata, keep_identifiers=True) == metadata
