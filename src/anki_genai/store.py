"""Checksummed files: plain data written whole, read back only if intact.

The build cache's entries and the kept collection's index are such files. They are only
ever shortcuts, so a missing or damaged one reads as None, never as an error.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TextIO

from anki_genai.atomic import atomic_write

_MAGIC = b"agcache1"
_CHECKSUM_SIZE = 16


def write_checked(path: Path, content: dict[str, Any]) -> None:
    """Write plain data (dicts, lists, str, bytes, numbers) for `read_checked`.

    marshal, not JSON: it holds compressed HTML as bytes and reads back several times
    faster, which a rebuild of a large deck feels. A checksum guards it, since marshal is
    not meant for damaged data.
    """
    # Version 2, the last without shared references: later versions track every object
    # written, which for the kept collection's index of 100,000 notes costs 25 MB at the
    # build's peak, for a file a quarter smaller.
    payload = marshal.dumps(content, 2)
    checksum = hashlib.sha256(payload).digest()[:_CHECKSUM_SIZE]

    def write(handle: IO[bytes]) -> None:
        handle.write(_MAGIC + checksum)
        handle.write(payload)  # not joined to the header: a large index is not copied

    atomic_write(path, write, binary=True, durable=False)


def read_checked(path: Path) -> object:
    """What `write_checked` wrote at `path`; None if it is missing or damaged."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    header = len(_MAGIC) + _CHECKSUM_SIZE
    payload = data[header:]
    if data[: len(_MAGIC)] != _MAGIC:
        return None
    if data[len(_MAGIC) : header] != hashlib.sha256(payload).digest()[:_CHECKSUM_SIZE]:
        return None
    try:
        return marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return None


def dump_json(content: object, handle: TextIO) -> None:
    """Write `content` as JSON to `handle` (for `atomic_write`)."""
    # json.dumps, not json.dump: only the former takes the C encoder's fast path.
    handle.write(json.dumps(content, ensure_ascii=False))


def file_stat(path: Path) -> list[int]:
    """A file's size and modification time, the stamp every shortcut here is checked by."""
    info = os.stat(path)
    return [info.st_size, info.st_mtime_ns]


@dataclass(frozen=True, slots=True)
class StoredHtml:
    """Where a card's HTML lies in the build cache: card `index` of the entry file `entry`,
    as written with `token`. A card holds this instead of its HTML so that a large deck's
    HTML stays on disk until it is packaged."""

    entry: Path
    token: bytes  # written into the entry, new each time: a rewritten entry is not mistaken
    index: int


# The entry read_stored_html read last, by path: packaging asks for one file's cards in a row.
_LAST_READ: dict[Path, dict[str, Any]] = {}


def read_stored_html(stored: StoredHtml) -> bytes | None:
    """The compressed HTML that `stored` points at, as it was written for its file; None if
    that entry has since been rewritten or damaged."""
    entry = _LAST_READ.get(stored.entry)
    if entry is None or entry.get("token") != stored.token:
        read = read_checked(stored.entry)
        if not isinstance(read, dict) or read.get("token") != stored.token:
            return None
        _LAST_READ.clear()
        entry = _LAST_READ[stored.entry] = read
    try:
        return bytes(entry["cards"][stored.index][1])
    except (KeyError, IndexError, TypeError):
        return None
