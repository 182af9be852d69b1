"""The collection deflated in segments is one ordinary deflate stream, however it was made."""

from __future__ import annotations

import io
import random
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from anki_genai.apkg import deflate
from anki_genai.apkg.deflate import SegmentedDeflater

SEGMENT = 4096


@pytest.fixture(autouse=True)
def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deflate, "SEGMENT_SIZE", SEGMENT)


def _database_like(seed: int, size: int = 40 * SEGMENT + 123) -> bytes:
    """Pages of text and zeros, compressible as a collection is, ending mid-segment."""
    rng = random.Random(seed)
    words = [b"<li>", b"</li>", "模型".encode(), "数据".encode(), b"\x00" * 64, b"span"]
    return b"".join(rng.choice(words) for _ in range(size))[:size]


def _deflate(data: bytes, deflater: SegmentedDeflater) -> bytes:
    chunks = [data[i : i + SEGMENT] for i in range(0, len(data), SEGMENT)]
    return b"".join(deflater.compress(chunk) for chunk in chunks) + deflater.flush()


@pytest.mark.parametrize("threads", [False, True])
def test_segments_make_one_deflate_stream(threads: bool) -> None:
    data = _database_like(1)
    if threads:
        with ThreadPoolExecutor(2) as pool:
            deflated = _deflate(data, SegmentedDeflater(pool=pool))
    else:
        deflated = _deflate(data, SegmentedDeflater())
    assert zlib.decompress(deflated, -15) == data
    assert len(deflated) < len(data) // 2


def _edited(data: bytes, offsets: list[int]) -> bytes:
    edited = bytearray(data)
    for offset in offsets:
        edited[offset] ^= 0xFF
    return bytes(edited)


def test_unchanged_segments_are_copied_from_the_last_package() -> None:
    old = _database_like(2)
    record = io.BytesIO()
    first = SegmentedDeflater(record)
    _deflate(old, first)
    new = _edited(old, [5 * SEGMENT + 7, 30 * SEGMENT])

    second = SegmentedDeflater(io.BytesIO(), io.BytesIO(record.getvalue()), first.segments)
    deflated = _deflate(new, second)

    assert zlib.decompress(deflated, -15) == new
    segments = -(-len(new) // SEGMENT)
    assert second.reused == segments - 2


def test_damaged_segments_are_deflated_again() -> None:
    data = _database_like(3)
    record = io.BytesIO()
    first = SegmentedDeflater(record)
    _deflate(data, first)
    damaged = _edited(record.getvalue(), [len(record.getvalue()) // 3])

    second = SegmentedDeflater(None, io.BytesIO(damaged), first.segments)
    deflated = _deflate(data, second)

    assert zlib.decompress(deflated, -15) == data
    assert second.reused == len(first.segments) - 1


class _FullDisk(io.BytesIO):
    def write(self, data: object) -> int:
        raise OSError(28, "No space left on device")


def test_a_record_that_cannot_be_written_costs_only_the_reuse() -> None:
    data = _database_like(4)
    deflater = SegmentedDeflater(_FullDisk())
    assert zlib.decompress(_deflate(data, deflater), -15) == data
    assert not deflater.recorded
    assert deflater.segments == {}


def test_read_segments_cuts_a_file_into_segments(tmp_path: Path) -> None:
    path = tmp_path / "collection"
    data = _database_like(5)
    path.write_bytes(data)
    pieces = list(deflate.read_segments(path))
    assert b"".join(pieces) == data
    assert {len(p) for p in pieces[:-1]} == {SEGMENT}
