"""The state file's text as the writer laid it out, its note lines found by GUID.

A rebuild after a small edit needs a few of a large state's records, and writes back a
state that differs in a few lines. Decoding every line, and encoding every record again,
cost a 100,000-note rebuild seconds; here the lines stay bytes, the ones wanted are found by
bisection (the writer sorts them by GUID) and decoded alone, and the new text is the old one
with those lines replaced. Reading and writing the format itself stays in `statefile`.
"""

from __future__ import annotations

import hashlib
import json
import os
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
    """A state file's text, as `statefile.save_state` wrote it: a header line, then one
    line per note sorted by GUID. Lines are found in the text itself, never split apart:
    a large state is one string of bytes, not a hundred thousand."""

    def __init__(self, data: bytes, start: int) -> None:
        self._data = data
        self._start = start  # where the first note's line starts
        self._end = len(data) - len(_NOTES_END)  # where the last one ends

    @classmethod
    def parse(cls, data: bytes) -> StateText | None:
        """The text `data`, or None if it is not laid out as the writer lays it out."""
        start = data.find(b"\n") + 1
        if not data[:start].endswith(_NOTES_START) or not data.endswith(_NOTES_END):
            return None
        text = cls(data, start)
        if text._start < text._end and not data.startswith(_GUID_START, start):
            return None
        return text

    def note_type(self) -> tuple[str, int]:
        """The note type's digest and last change, from the header."""
        header = json.loads(self._data[: self._start - len(_NOTES_START)] + b"}")
        return str(header["note_type"]["digest"]), int(header["note_type"]["mod"])

    def _line_end(self, start: int) -> int:
        end = self._data.find(_SEPARATOR, start, self._end)
        return self._end if end < 0 else end

    def _guid_at(self, start: int) -> bytes:
        return _guid_of(self._data[start : start + 256])

    def _search(self, guid: bytes) -> int:
        """Where the first line whose GUID is not below `guid` starts (the end if none)."""
        low, high = self._start, self._end  # low and high are where lines start
        while low < high:
            middle = (low + high) // 2
            start = self._data.rfind(b"\n", 0, middle) + 1  # the line `middle` is in
            start = max(start, low)
            if self._guid_at(start) < guid:
                end = self._line_end(start)
                low = end + len(_SEPARATOR) if end < self._end else self._end
            else:
                high = start
        return low

    def _find(self, guid: str) -> int | None:
        wanted = guid.encode()
        at = self._search(wanted)
        return at if at < self._end and self._guid_at(at) == wanted else None

    def __contains__(self, guid: object) -> bool:
        return isinstance(guid, str) and self._find(guid) is not None

    def record(self, guid: str) -> NoteRecord | None:
        """The note `guid` as the file records it; None if it has none."""
        at = self._find(guid)
        if at is None:
            return None
        line = self._data[at : self._line_end(at)]
        record = statefile._record_from_json(json.loads(line), {})
        return record if record.guid == guid else None

    def replaced(self, gone: set[str], records: Mapping[str, NoteRecord]) -> bytes:
        """This text without the notes `gone`, and with `records` (new or replacing)."""
        events: list[tuple[int, int, bytes]] = []
        for guid in gone | records.keys():
            at = self._find(guid)
            if at is not None:
                events.append((at, 1, b""))
        for guid in sorted(records):
            line = statefile._record_json(records[guid]).encode()
            # Before the old line of the same GUID, if any, which goes.
            events.append((self._search(guid.encode()), 0, line))
        events.sort(key=lambda event: (event[0], event[1]))
        pieces: list[bytes] = []
        done = self._start  # where the lines not yet copied start
        for at, kind, line in events:
            if at > done:  # the untouched lines before `at`, copied whole
                last = at - len(_SEPARATOR) if at < self._end else self._end
                pieces.append(self._data[done:last])
                done = at
            if kind == 0:
                pieces.append(line)
            else:
                end = self._line_end(at)
                done = end + len(_SEPARATOR) if end < self._end else self._end
        if done < self._end:
            pieces.append(self._data[done : self._end])
        header = self._data[: self._start]
        return header + _SEPARATOR.join(pieces) + _NOTES_END


def read_state_text(path: Path) -> tuple[bytes, StateText | None]:
    """The state file's bytes, and its text as laid out (None: not as the writer lays it)."""
    data = path.read_bytes()
    return data, StateText.parse(data)


def save_text_with_backup(text: bytes, path: Path, backup_folder: Path) -> str:
    """As `statefile.save_with_backup`, for a text already made; return its SHA-256.

    The backup is a second link to the last state where it can be, not a copy: the new
    state goes to a new file, so the old one stays as it was.
    """
    if path.exists():
        backup = backup_folder / statefile.STATE_BACKUP_NAME
        linked = backup.with_name(f".{backup.name}.link")
        try:
            linked.unlink(missing_ok=True)
            os.link(path, linked)
            os.replace(linked, backup)
        except OSError:  # another file system, or no hard links there
            shutil.copyfile(path, backup)

    def write(handle: IO[bytes]) -> None:
        handle.write(text)

    try:
        atomic_write(path, write, binary=True)
    except OSError as exc:
        raise AnkiGenaiError(f"{path}: cannot write the state file ({exc.strerror})") from None
    return hashlib.sha256(text).hexdigest()
