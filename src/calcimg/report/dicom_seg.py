"""Lesion masks as DICOM Segmentation objects (highdicom) that reference their source radiograph.

A SEG object must name the study, series and instance it segments and repeats the source's patient module, so
it carries the source's identifiers: calcimg writes it only when the user keeps identifiers (``calcimg batch
--dicom-seg --keep-identifiers``), for results that go back to a PACS.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from calcimg import __version__
from calcimg.errors import InputError

#: The segment's label and the calcimg algorithm identification written into every SEG object.
SEGMENT_LABEL = "Calcinosis"


def segmentation_bytes(labels: np.ndarray, source: str | Path, series_number: int = 900) -> bytes:
    """Encode the lesions of one radiograph as a binary DICOM Segmentation referencing the source file.

    Parameters
    ----------
    labels : numpy.ndarray
        Lesion labels in the source's pixel grid (0 background); every lesion goes into one segment.
    source : str or Path
        The source DICOM file (read again here: the SEG copies its patient and study modules and references it).
    series_number : int
        Series number of the new SEG series.

    Returns
    -------
    bytes
        The Part 10 file.

    Raises
    ------
    InputError
        When the source cannot be read as DICOM or its grid differs from ``labels``.
    """
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    try:
        dataset = pydicom.dcmread(source)
    except Exception as exc:  # pydicom raises several types on damaged files
        raise InputError(source, f"cannot read it as DICOM to reference it from a segmentation ({exc})") from exc
    shape = (int(dataset.Rows), int(dataset.Columns))
    if tuple(labels.shape) != shape:
        raise InputError(source, f"its {shape} pixel grid differs from the label map's {labels.shape}")
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=SEGMENT_LABEL,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.DCM.AbnormalCalcifications,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="calcimg", version=__version__, family=codes.cid7162.ArtificialIntelligence
        ),
    )
    seed = f"{dataset.SOPInstanceUID}|calcimg|{__version__}|{int(np.count_nonzero(labels))}"
    segmentation = hd.seg.Segmentation(
        source_images=[dataset],
        pixel_array=(labels > 0)[np.newaxis],
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=_uid(f"{seed}|series"),
        series_number=series_number,
        sop_instance_uid=_uid(f"{seed}|instance"),
        instance_number=1,
        manufacturer="calcimg",
        manufacturer_model_name="calcimg",
        software_versions=__version__,
        device_serial_number="0",
        omit_empty_frames=False,
    )
    buffer = io.BytesIO()
    segmentation.save_as(buffer)
    return buffer.getvalue()


def _uid(seed: str) -> str:
    """A UID derived from ``seed`` (2.25 form of a name-based UUID), so that a re-run writes the same bytes."""
    import uuid

    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, seed).int}"
