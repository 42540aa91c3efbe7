"""Re-measuring a reader's edited label maps and re-comparing the pair with the pipeline's own steps.

A reader's corrections (deleted, merged, painted or added lesions) change only the label maps. Each visit is
measured again with :func:`calcimg.pipeline.measure_lesions` on its :class:`~calcimg.pipeline.CandidateStage` (the
intermediate images :func:`calcimg.segment_image` measures on), and the pair is matched and summarised again with
:func:`calcimg.pipeline.match_and_summarise`, keeping the registration the reader has seen. On unedited labels this
reproduces the pipeline's tables and summary exactly.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from calcimg import pipeline
from calcimg.model import Params
from calcimg.pipeline import CandidateStage, PairResult, SegmentResult


def updated_segment_summary(summary: dict[str, Any], lesions: pd.DataFrame, calibrated: bool) -> dict[str, Any]:
    """A visit's summary with its counts, areas and burden taken from a re-measured lesion table."""
    return {**summary, **pipeline.lesion_totals(lesions, calibrated)}


def remeasure_visit(result: SegmentResult, labels: np.ndarray, stage: CandidateStage) -> SegmentResult:
    """A visit's result with new labels, re-measured (candidates and rejected stay as segmented).

    Each lesion's ``score`` and ``support`` are those of its best accepted candidate; a lesion the reader left as it
    was keeps what the segmentation said of it (a piece or a faint counterpart holds no accepted candidate), and one
    made without any accepted candidate (painted) has none.
    """
    labels = np.ascontiguousarray(labels, dtype=np.int32)
    lesions = pipeline.measure_lesions(stage, labels)
    lesions["score"], lesions["support"] = pipeline.edited_lesion_evidence(stage, result, labels, lesions)
    summary = updated_segment_summary(result.summary, lesions, result.radiograph.calibrated)
    return replace(result, labels=labels, lesions=lesions, summary=summary)


def remeasure_pair(
    result: PairResult,
    pre_labels: np.ndarray,
    post_labels: np.ndarray,
    params: Params,
    stages: dict[str, CandidateStage] | None = None,
) -> PairResult:
    """Re-measure both visits from edited label maps and redo the matching and the pair summary.

    Parameters
    ----------
    result : PairResult
        The comparison being corrected (its radiographs and registration are kept).
    pre_labels, post_labels : numpy.ndarray
        The edited label maps, each in its own visit's frame.
    params : Params
    stages : dict, optional
        ``{"pre": CandidateStage, "post": CandidateStage}`` already computed; filled in when given empty.

    Returns
    -------
    PairResult
    """
    stages = {} if stages is None else stages
    visits = {}
    for visit, segment, labels in (("pre", result.pre, pre_labels), ("post", result.post, post_labels)):
        if visit not in stages:
            stages[visit] = pipeline.detect_candidates(segment.radiograph, params)
        visits[visit] = remeasure_visit(segment, labels, stages[visit])
    return pipeline.match_and_summarise(visits["pre"], visits["post"], result.transform, params)
