"""The state file's text as the writer laid it out, its note lines found by GUID.

A rebuild after a small edit needs a few of a large state's records, and writes back a
state that differs in a few lines. Decoding every line, and encoding every record again,
cost a 100,000-note rebuild seconds; here the lines stay bytes, the ones wanted are found by
bisection (the writer sorts them by GUID) and decoded alone, and the new text is the old one
with those lines replaced. Only the layout `statewrite` writes now (version 2: a header
line, then one line per note) is edited so; any other text is read and written the usual way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, TypeAlias

from anki_genai.errors import write_error
from anki_genai.staterecords import NoteRecord
from anki_genai.statewrite import (
    _OUTPUT_ADVICE,
    STATE_BACKUP_NAME,
    STATE_FORMAT,
    STATE_VERSION,
    _record_json,
    _stage,
    _state_advice,
)

_GUID_START = b'{"guid": "'
_NEWLINE = b"\n"

# A text as the pieces it is written from, in order: a large state's unchanged stretches
# are views of the old text, never copied (joining them copied tens of megabytes).
Pieces: TypeAlias = tuple[bytes | memoryview, ...]


def _guid_of(line: bytes) -> bytes:
    return line[len(_GUID_START) : line.find(b'"', len(_GUID_START))]


def plain_guid(guid: str) -> bool:
    """Whether `guid` is written as itself in JSON, so its line sorts by its own bytes."""
    return guid.isprintable() and '"' not in guid and "\\" not in guid


class StateText:
    """A state file's text, as `statewrite.save_state` writes it: a header line naming the
    project, then one line per note sorted by GUID. Lines are found in the text itself,
    never split apart: a large state is one string of bytes, not a hundred thousand."""

    def __init__(self, data: bytes, start: int, header: Mapping[str, Any]) -> None:
        self._data = data
        self._start = start  # where the first note's line starts
        self._end = len(data)  # where the last one's newline ends
        self._header = header

    @classmethod
    def parse(cls, data: bytes) -> StateText | None:
        """The text `data`, or None if it is not laid out as the writer lays it out now
        (a version 1 file, one without a project id, or one edited by hand)."""
        start = data.find(_NEWLINE) + 1
        if start == 0 or not data.endswith(_NEWLINE):
            return None
        try:
            header = json.loads(data[:start])
        except ValueError:
            return None
        if not isinstance(header, dict) or header.get("format") != STATE_FORMAT:
            return None
        if header.get("version") != STATE_VERSION or not header.get("project"):
            return None
        note_type = header.get("note_type")
        if not isinstance(note_type, dict) or not {"digest", "mod"} <= note_type.keys():
            return None
        if start < len(data) and not data.startswith(_GUID_START, start):
            return None
        return cls(data, start, header)

    def note_type(self) -> tuple[str, int]:
        """The note type's digest and last change, from the header."""
        note_type = self._header["note_type"]
        return str(note_type["digest"]), int(note_type["mod"])

    @property
    def project_id(self) -> str:
        return str(self._header["project"])

    def _line_end(self, start: int) -> int:
        """Where the line at `start` ends, before its newline."""
        return self._data.find(_NEWLINE, start, self._end)

    def _guid_at(self, start: int) -> bytes:
        return _guid_of(self._data[start : start + 256])

    def _search(self, guid: bytes) -> int:
        """Where the first line whose GUID is not below `guid` starts (the end if none)."""
        low, high = self._start, self._end  # low and high are where lines start
        while low < high:
            middle = (low + high) // 2
            start = self._data.rfind(_NEWLINE, 0, middle) + 1  # the line `middle` is in
            start = max(start, low)
            if self._guid_at(start) < guid:
                low = self._line_end(start) + 1
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
        from anki_genai.statefile import _record_from_json

        at = self._find(guid)
        if at is None:
            return None
        record = _record_from_json(json.loads(self._data[at : self._line_end(at)]), {})
        return record if record.guid == guid else None

    def replaced(self, gone: set[str], records: Mapping[str, NoteRecord]) -> Pieces:
        """This text without the notes `gone`, and with `records` (new or replacing)."""
        events: list[tuple[int, int, bytes]] = []
        for guid in gone | records.keys():
            at = self._find(guid)
            if at is not None:
                events.append((at, 1, b""))
        for guid in sorted(records):
            line = _record_json(records[guid]).encode() + _NEWLINE
            # Before the old line of the same GUID, if any, which goes.
            events.append((self._search(guid.encode()), 0, line))
        events.sort(key=lambda event: (event[0], event[1]))
        data = memoryview(self._data)
        pieces: list[bytes | memoryview] = [data[: self._start]]
        done = self._start  # where the lines not yet copied start
        for at, kind, line in events:
            if at > done:  # the untouched lines before `at`, copied whole
                pieces.append(data[done:at])
                done = at
            if kind == 0:
                pieces.append(line)
            else:
                done = self._line_end(at) + 1
        pieces.append(data[done:])
        return tuple(pieces)


@contextlib.contextmanager
def staged_text_save(
    text: Pieces, path: Path, backup_folder: Path
) -> Iterator[tuple[Callable[[], None], str]]:
    """As `statewrite.staged_save`, for a text already made: stage the new state file and
    the old one's backup; yield the function that puts both in place, and the SHA-256.

    The backup is a second link to the last state where it can be, not a copy: the new
    state goes to a new file (renamed over the old name), so the old one stays as it was.
    """

    digest = hashlib.sha256()

    def write(handle: IO[bytes]) -> None:
        for piece in text:
            handle.write(piece)
            digest.update(piece)

    with contextlib.ExitStack() as staged:
        commits = []
        if path.exists():
            backup = backup_folder / STATE_BACKUP_NAME
            commits.append(_stage_backup(staged, path, backup))
        commits.append(_stage(staged, path, write, "the state file", _state_advice(path), True))

        def commit_all() -> None:
            for commit in commits:
                commit()

        yield commit_all, digest.hexdigest()


def _stage_backup(stack: contextlib.ExitStack[Any], path: Path, backup: Path) -> Callable[[], None]:
    """Stage the backup as a hard link to `path` under a temporary name (the name a copy
    would be staged under, so a dead build's is cleared the same way); a copy where the
    output folder cannot hold a link to it."""
    linked = backup.with_name(f".{backup.name}.{os.getpid()}.link.tmp")
    try:
        linked.unlink(missing_ok=True)
        os.link(path, linked)
    except OSError:  # another file system, or no hard links there

        def copy_old(handle: IO[bytes]) -> None:
            handle.write(path.read_bytes())

        return _stage(stack, backup, copy_old, "the state backup", _OUTPUT_ADVICE, binary=True)
    stack.callback(linked.unlink, missing_ok=True)  # a no-op once renamed

    def commit() -> None:
        try:
            os.replace(linked, backup)
        except OSError as exc:
            raise write_error(backup, exc, "the state backup", _OUTPUT_ADVICE) from None

    return commit
