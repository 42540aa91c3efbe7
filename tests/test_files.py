import json
import os

import pytest

from calcimg._files import atomic_write_bytes, atomic_write_json
from calcimg.errors import CalcimgError


def test_atomic_write_creates_folders_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a" / "b" / "result.json"
    atomic_write_json(target, {"count": 3})
    assert json.loads(target.read_text()) == {"count": 3}
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.json"]


def test_atomic_write_replaces_existing_file(tmp_path):
    target = tmp_path / "x.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"


def test_failed_write_keeps_old_file_and_names_it(tmp_path, monkeypatch):
    target = tmp_path / "x.bin"
    atomic_write_bytes(target, b"old")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(CalcimgError, match=r"x\.bin.*No space left"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.bin"]


def test_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "bad.json", {"value": float("nan")})
    assert not (tmp_path / "bad.json").exists()
