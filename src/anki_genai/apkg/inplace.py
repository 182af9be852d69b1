"""A package made from the kept collection patched where it lies, and its kept segments.

After a small edit, copying a large collection, reading it back to deflate it and summing
its CRC cost more than everything else a rebuild does (a second at 100,000 notes). Here the
kept collection is patched in place; its write-ahead log says which pages changed; only the
segments holding them are read and deflated again; the package's zip is written by hand
around the kept deflated bytes, its CRC-32 combined from each segment's own.
"""

from __future__ import annotations

import functools
import json
import struct
import time
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import IO

from anki_genai.apkg import deflate
from anki_genai.apkg.collection import PackagedNote
from anki_genai.apkg.kept import KeptCollection
from anki_genai.atomic import staged_write
from anki_genai.media import MediaFile

_ZIP_LIMIT = 1 << 31  # larger packages are written by zipfile, which knows ZIP64


def write_patched(
    kept: KeptCollection,
    notes: Sequence[PackagedNote],
    replaced: Collection[str],
    held: dict[str, bytes],
    decks: Mapping[str, int],
    note_type_mod: int,
    path: Path,
    media: Sequence[MediaFile],
    before_replacing: Callable[[], None] = lambda: None,
) -> bool | None:
    """Patch `kept` in place and write its package to `path`. False: this way does not
    apply (nothing was touched); None: it failed once the kept collection was touched, so
    that collection is no longer trusted (nothing was written to `path`). The package
    replaces the old one only once `before_replacing` has returned."""
    order = kept.order
    live = sum(kept.segments[key].length for key in set(order))
    try:
        garbage = kept.segments_path.stat().st_size > 2 * live + (8 << 20)
        too_large = kept.collection_path.stat().st_size >= _ZIP_LIMIT
    except OSError:
        return False
    if not order or garbage or too_large:
        return False  # the copying way records the segments anew
    patched = kept.patch_in_place(notes, replaced, held, decks, note_type_mod)
    if patched is None:
        return None
    index, pages, page_size = patched
    try:
        segments, new_order = _segments_after(kept, pages, page_size)
        write = functools.partial(_write_zip, kept=kept, segments=segments, order=new_order)
        staged = staged_write(path, functools.partial(write, media=media), binary=True)
        with staged as replace_old:
            before_replacing()
            replace_old()
    except OSError:
        return None
    kept.keep_in_place(index, segments, new_order)
    return True


def _segments_after(
    kept: KeptCollection, pages: set[int], page_size: int
) -> tuple[dict[bytes, deflate.Segment], list[bytes]]:
    """Every segment of the patched collection: the kept ones its pages left alone, and the
    others deflated again and added to the segments file."""
    size = kept.collection_path.stat().st_size
    count = -(-size // deflate.SEGMENT_SIZE)
    touched = {(page - 1) * page_size // deflate.SEGMENT_SIZE for page in pages}
    touched.update(range(len(kept.order), count))
    segments = dict(kept.segments)
    order = []
    with kept.collection_path.open("rb") as collection, kept.segments_path.open("r+b") as out:
        out.seek(0, 2)
        for position in range(count):
            if position not in touched:
                order.append(kept.order[position])
                continue
            collection.seek(position * deflate.SEGMENT_SIZE)
            data = collection.read(deflate.SEGMENT_SIZE)
            key, deflated = deflate.deflate_segment(data, deflate.segment_key(data))
            if key not in segments:
                segments[key] = _append(out, deflated, data)
            order.append(key)
    return segments, order


def _append(out: IO[bytes], deflated: bytes, data: bytes) -> deflate.Segment:
    offset = out.tell()
    out.write(deflated)
    return deflate.Segment(
        offset,
        len(deflated),
        deflate.segment_key(deflated),
        zlib.crc32(data),
        len(data),
        zlib.adler32(deflated),
    )


def _write_zip(
    handle: IO[bytes],
    kept: KeptCollection,
    segments: dict[bytes, deflate.Segment],
    order: list[bytes],
    media: Sequence[MediaFile],
) -> None:
    """The package: the collection from its deflated segments, then the media."""
    entries: list[tuple[str, int, int, int, int]] = []  # name, crc, sizes, header offset
    stamp = _dos_time()  # one time for every entry, as zipfile gives a file written at once
    crc, size = 0, 0
    for key in order:
        segment = segments[key]
        crc = combine_crc(crc, segment.crc, segment.size)
        size += segment.size
    packed = sum(segments[key].length for key in order) + len(deflate.FINAL_BLOCK)
    entries.append(("collection.anki2", crc, packed, size, handle.tell()))
    handle.write(_local_header("collection.anki2", crc, packed, size, stamp))
    with (
        kept.segments_path.open("rb") as source,
        kept.collection_path.open("rb") as collection,
    ):
        for position, key in enumerate(order):
            segment = segments[key]
            source.seek(segment.offset)
            deflated = source.read(segment.length)
            if zlib.adler32(deflated) != segment.check:
                # Damaged since it was written: deflate that part of the collection again.
                collection.seek(position * deflate.SEGMENT_SIZE)
                data = collection.read(deflate.SEGMENT_SIZE)
                _, deflated = deflate.deflate_segment(data, key)
                if len(deflated) != segment.length:
                    raise OSError("a kept segment no longer matches its collection")
            handle.write(deflated)
    handle.write(deflate.FINAL_BLOCK)
    names = json.dumps({str(i): f.name for i, f in enumerate(media)}).encode()
    for name, data in (
        ("media", names),
        *((str(i), f.path.read_bytes()) for i, f in enumerate(media)),
    ):
        compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
        deflated = compressor.compress(data) + compressor.flush()
        crc = zlib.crc32(data)
        entries.append((name, crc, len(deflated), len(data), handle.tell()))
        handle.write(_local_header(name, crc, len(deflated), len(data), stamp))
        handle.write(deflated)
    directory = handle.tell()
    for name, crc, packed, size, offset in entries:
        handle.write(_central_header(name, crc, packed, size, offset, stamp))
    end = handle.tell()
    handle.write(
        struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries),
                    end - directory, directory, 0)
    )  # fmt: skip


def _dos_time() -> tuple[int, int]:
    t = time.localtime()
    return (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2), (
        ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday
    )


def _local_header(name: str, crc: int, packed: int, size: int, stamp: tuple[int, int]) -> bytes:
    clock, date = stamp
    encoded = name.encode()
    return (
        struct.pack(
            "<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, clock, date, crc, packed, size, len(encoded), 0
        )
        + encoded
    )


def _central_header(
    name: str, crc: int, packed: int, size: int, offset: int, stamp: tuple[int, int]
) -> bytes:
    clock, date = stamp
    encoded = name.encode()
    return struct.pack(
        "<4s6H3L5H2L", b"PK\x01\x02", (3 << 8) | 20, 20, 0, 8, clock, date, crc, packed, size,
        len(encoded), 0, 0, 0, 0, 0o644 << 16, offset,
    ) + encoded  # fmt: skip


def combine_crc(first: int, second: int, second_size: int) -> int:
    """The CRC-32 of two byte strings one after the other, from each one's CRC-32."""
    return _shift(second_size)(first) ^ second


@functools.cache
def _shift(size: int) -> _Shift:
    return _Shift(size)


class _Shift:
    """What appending `size` bytes does to a CRC-32 register, as tables: the operation is
    linear, so it is known from what it does to each bit (zlib's crc32_combine, which
    Python's zlib does not offer)."""

    def __init__(self, size: int) -> None:
        zeros = bytes(size)
        base = zlib.crc32(zeros, 0)
        bits = [zlib.crc32(zeros, 1 << i) ^ base for i in range(32)]
        self._tables = []
        for byte in range(4):
            table = []
            for value in range(256):
                out = 0
                for bit in range(8):
                    if value >> bit & 1:
                        out ^= bits[8 * byte + bit]
                table.append(out)
            self._tables.append(table)

    def __call__(self, crc: int) -> int:
        t = self._tables
        return t[0][crc & 255] ^ t[1][crc >> 8 & 255] ^ t[2][crc >> 16 & 255] ^ t[3][crc >> 24]
