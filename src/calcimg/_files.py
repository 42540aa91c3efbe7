"""Writing result files so that a reader never sees a half-written one.

Every result is written to a temporary name in the destination folder and renamed into place, which is atomic
on POSIX file systems: a run killed at any moment leaves either the old file, the new file, or no file.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from calcimg.errors import CalcimgError


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that :func:`json.dumps` accepts: numpy scalars as Python numbers, tuples as lists,
    keys as strings, NaN and infinities as None.

    Examples
    --------
    >>> json_safe({"a": np.int64(3), "b": (np.float32(0.5), float("nan")), 1: np.bool_(True)})
    {'a': 3, 'b': [0.5, None], '1': True}
    """
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename).

    Parameters
    ----------
    path : str or PathLike
        Destination; its folder is created if needed.
    data : bytes
        The whole content.

    Returns
    -------
    pathlib.Path
        The destination path.

    Raises
    ------
    CalcimgError
        When the file cannot be written (disk full, permissions); no partial file is left behind.
    """
    path = Path(path)
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        raise CalcimgError(f"{path}: cannot write result ({exc.strerror or exc})") from exc
    finally:
        if tmp_name is not None and os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; see :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON (keys in insertion order, trailing newline) atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")
