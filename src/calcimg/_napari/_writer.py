"""napari writer: a Labels layer (lesion labels) as a compressed TIFF, as ``calcimg`` writes its label maps."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from calcimg._files import atomic_write_bytes
from calcimg.report.files import label_tiff_bytes


def write_labels(path: str | PathLike[str], data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one Labels layer as a label TIFF (uint16, or uint32 beyond 65535 labels; zlib).

    Parameters
    ----------
    path : str or PathLike
        Destination; ``.tif`` is added when it has no TIFF suffix.
    data : array-like
        The layer's 2-D label map.
    meta : dict
        The layer's attributes (``name``, ``metadata`` ...), as napari passes them.

    Returns
    -------
    list of str
        The path written.

    Raises
    ------
    ValueError
        When the data is not a 2-D map of non-negative integers.
    """
    labels = np.asarray(data)
    if labels.ndim != 2:
        raise ValueError(f"lesion labels must be 2-D, got shape {labels.shape}")
    if labels.dtype.kind not in "iu" or (labels.size and int(labels.min()) < 0):
        raise ValueError("lesion labels must be non-negative integers")
    target = Path(path)
    if target.suffix.lower() not in (".tif", ".tiff"):
        target = target.with_name(target.name + ".tif")
    from calcimg import __version__

    name = meta.get("name", "labels") if isinstance(meta, dict) else "labels"
    description = f"calcimg {__version__} lesion labels; layer {name}"
    atomic_write_bytes(target, label_tiff_bytes(labels, description))
    return [str(target)]
