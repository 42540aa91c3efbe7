"""A short, deterministic run of the reader fuzzer (benchmarks/fuzz_readers.py) in the test suite, and the
regressions it found. The long run is outside CI: ``python benchmarks/fuzz_readers.py --seconds 300``."""

from __future__ import annotations

import importlib.util
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calcimg.errors import InputError
from calcimg.io import DEFAULT_MAX_PIXELS, _decode, load_radiograph

_SPEC = importlib.util.spec_from_file_location(
    "fuzz_readers", Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_readers.py"
)
fuzz = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fuzz)
SEEDS = fuzz.seeds()


@pytest.mark.timeout(300)  # a hang guard for the whole run, not a speed check
@settings(max_examples=300, deadline=None, derandomize=True)
@given(name=st.sampled_from(sorted(SEEDS)), seed=st.integers(0, 2**32 - 1))
def test_mutated_files_give_a_result_or_input_error(name: str, seed: int) -> None:
    data = fuzz.mutate(SEEDS[name], np.random.default_rng(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            decoded = _decode(data, name, DEFAULT_MAX_PIXELS)
        except InputError as exc:
            assert str(exc).startswith(f"{name}: ")
        else:
            assert decoded.pixels.ndim == 2


def _chunk(kind: bytes, body: bytes, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return struct.pack(">I", size) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


@pytest.mark.timeout(30)  # libpng took 6 s on this file before the length check
def test_png_chunk_longer_than_the_file_is_refused_at_once(tmp_path: Path) -> None:
    """Found by the fuzzer: a 175-byte PNG whose IDAT claims 2.4 GB kept libpng busy for 6 s."""
    header = struct.pack(">IIBBBBB", 24, 20, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"\x78\x9c" + b"\0" * 40, 0x90000000)
    path = tmp_path / "long_chunk.png"
    path.write_bytes(data)
    with pytest.raises(InputError, match=r"could not be decoded .*claims 2,415,919,104 bytes"):
        load_radiograph(path)


def test_decoder_failures_of_any_type_become_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the fuzzer: pydicom, tifffile and the Rust RLE decoder raise AttributeError, TypeError,
    OverflowError or a PanicException (a BaseException) on damaged bytes."""
    import calcimg.io as io_module

    class PanicException(BaseException):
        """Stands for pyo3's PanicException."""

    def panic(data: bytes, path: str, max_pixels: int) -> None:
        raise PanicException("attempt to subtract with overflow")

    monkeypatch.setattr(io_module, "_dispatch", panic)
    with pytest.raises(InputError, match=r"damaged or unsupported file: the decoder failed \(PanicException"):
        _decode(b"whatever", "x.dcm", 100)

    def interrupted(data: bytes, path: str, max_pixels: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(io_module, "_dispatch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _decode(b"whatever", "x.dcm", 100)
