"""The state file's text as the writer laid it out, its note lines found by GUID.

A rebuild after a small edit needs a few of a large state's records, and writes back a
state that differs in a few lines. Decoding every line, and encoding every record again,
cost a 100,000-note rebuild seconds; here the lines stay bytes, the ones wanted are found by
bisection (the writer sorts them by GUID) and decoded alone, and the new text is the old one
with those lines replaced. Reading and writing the format itself stays in `statefile`.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from anki_genai import statefile
from anki_genai.atomic import atomic_write
from anki_genai.errors import AnkiGenaiError
from anki_genai.statefile import NoteRecord

_GUID_START = b'{"guid": "'
_NOTES_START = statefile._NOTES_START.encode()
_NOTES_END = b"\n" + statefile._NOTES_END.encode()
_SEPARATOR = statefile._NOTE_SEPARATOR.encode()


def _guid_of(line: bytes) -> bytes:
    return line[len(_GUID_START) : line.find(b'"', len(_GUID_START))]


def plain_guid(guid: str) -> bool:
    """Whether `guid` is written as itself in JSON, so its line sorts by its own bytes."""
    return guid.isprintable() and '"' not in guid and "\\" not in guid


class StateText:
    """A state file's text, as `statefile.save_state` wrote it."""

    def __init__(self, header: bytes, lines: list[bytes]) -> None:
        self.header = header  # the first line, up to the notes
        self.lines = lines  # one per note, sorted by GUID, without separators

    @classmethod
    def parse(cls, data: bytes) -> StateText | None:
        """The text `data`, or None if it is not laid out as the writer lays it out."""
        end = data.find(b"\n") + 1
        header = data[:end]
        if not header.endswith(_NOTES_START) or not data.endswith(_NOTES_END):
            return None
        body = data[end : len(data) - len(_NOTES_END)]
        lines = body.split(_SEPARATOR) if body else []
        if lines and not (lines[0].startswith(_GUID_START) and lines[-1].startswith(_GUID_START)):
            return None
        return cls(header, lines)

    def note_type(self) -> tuple[str, int]:
        """The note type's digest and last change, from the header."""
        header = json.loads(self.header[: -len(_NOTES_START)] + b"}")
        return str(header["note_type"]["digest"]), int(header["note_type"]["mod"])

    def _index(self, guid: str) -> int | None:
        wanted = guid.encode()
        index = bisect.bisect_left(self.lines, wanted, key=_guid_of)
        if index < len(self.lines) and _guid_of(self.lines[index]) == wanted:
            return index
        return None

    def __contains__(self, guid: object) -> bool:
        return isinstance(guid, str) and self._index(guid) is not None

    def record(self, guid: str) -> NoteRecord | None:
        """The note `guid` as the file records it; None if it has none."""
        index = self._index(guid)
        if index is None:
            return None
        record = statefile._record_from_json(json.loads(self.lines[index]), {})
        return record if record.guid == guid else None

    def replaced(self, gone: set[str], records: Mapping[str, NoteRecord]) -> bytes:
        """This text without the notes `gone`, and with `records` (new or replacing)."""
        removed = {i for guid in gone if (i := self._index(guid)) is not None}
        events: list[tuple[int, int, bytes]] = [(i, 1, b"") for i in removed]
        for guid in sorted(records):
            line = statefile._record_json(records[guid]).encode()
            at = bisect.bisect_left(self.lines, guid.encode(), key=_guid_of)
            events.append((at, 0, line))  # before the old line of the same GUID, if any
        events.sort(key=lambda event: (event[0], event[1]))
        out: list[bytes] = []
        done = 0
        for at, kind, line in events:
            out.extend(self.lines[done:at])
            done = max(done, at)
            if kind == 0:
                out.append(line)
            else:
                done = at + 1
        out.extend(self.lines[done:])
        return self.header + _SEPARATOR.join(out) + _NOTES_END


def read_state_text(path: Path) -> tuple[bytes, StateText | None]:
    """The state file's bytes, and its text as laid out (None: not as the writer lays it)."""
    data = path.read_bytes()
    return data, StateText.parse(data)


def save_text_with_backup(text: bytes, path: Path, backup_folder: Path) -> str:
    """As `statefile.save_with_backup`, for a text already made; return its SHA-256."""
    if path.exists():
        shutil.copyfile(path, backup_folder / statefile.STATE_BACKUP_NAME)

    def write(handle: IO[bytes]) -> None:
        handle.write(text)

    try:
        atomic_write(path, write, binary=True)
    except OSError as exc:
        raise AnkiGenaiError(f"{path}: cannot write the state file ({exc.strerror})") from None
    return hashlib.sha256(text).hexdigest()
