"""The state file: what it holds, how it is read and written, and its backup.

The state file (`anki-genai-state.json`, beside the sources and committed with them) keeps
each note's GUID and last-changed time between builds. It is not a cache: losing it would
make the next build look brand new to Anki, so it is written atomically, never reset
silently when it is unreadable, and the last good copy is kept in the output folder.

Its text is laid out for version control: a header line, then one JSON object a line
for each note, sorted by GUID. A diff shows exactly the notes that changed, and branches
that add or edit different notes merge without conflict (nothing in it changes on every
build, and no line changes when its neighbour does). When git does leave conflict markers
(the same note on both branches, or two notes added at the same place), reading resolves
them: every note of both sides, and of a note on both, the record changed last. Files of
version 1 (one JSON document, a line per note) are still read, and keep every GUID and mod.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from anki_genai.conflicts import (
    ConflictMarkerError,
    NumberedLine,
    has_conflict_marker,
    merge_sides,
    split_conflict,
)
from anki_genai.errors import RepeatedGuidError, SourceLocation, StateError
from anki_genai.staterecords import (
    NoteRecord,
    Repair,
    State,
    drop_tombstones,
    legacy_project_id,
)
from anki_genai.statewrite import (
    STATE_BACKUP_NAME,
    STATE_FILE_NAME,
    STATE_FORMAT,
    STATE_VERSION,
    check_writable,
    save_state,
    save_with_backup,
    staged_save,
)

__all__ = [
    "STATE_BACKUP_NAME",
    "STATE_FILE_NAME",
    "STATE_FORMAT",
    "STATE_VERSION",
    "NoteRecord",
    "Repair",
    "State",
    "check_writable",
    "drop_tombstones",
    "legacy_project_id",
    "load_state",
    "read_state_bytes",
    "save_state",
    "save_with_backup",
    "staged_save",
]

_READ_VERSIONS = (1, 2)  # version 1: one JSON document, a line per note


# --- reading ----------------------------------------------------------------------------------

_RESTORE = (
    "Put back its last good copy, from version control or the backup in the output folder "
    f"({STATE_BACKUP_NAME}). Do not delete it: without it every note would get a new "
    "identity and Anki would duplicate your cards."
)

_V1_NOTES_START = '"notes": ['  # how a version 1 header line ends
_V1_END = "]}"  # a version 1 file's last line


class _NotAsWritten(Exception):
    """A version 1 file not laid out a line per note (an editor re-indented it): read it
    as one JSON document."""


class _Conflicted(Exception):
    """The file holds git's conflict markers."""


def load_state(path: Path, known: Mapping[str, str] | None = None) -> State:
    """Read the state file at `path`; a missing file is an empty state, a bad one an error.

    Merge conflicts and repeated GUIDs are set right, and said so in the state's `repairs`.
    Strings equal to one in `known` are that string, not a copy: most of a large state's
    questions and digests are those of cards already in memory.
    """
    known = known or {}
    decode = json.JSONDecoder(object_hook=lambda entry: _note_or_object(entry, known)).decode
    try:
        try:
            with path.open(encoding="utf-8") as handle:
                # A line at a time, records decoded as they are read: a large state's text
                # is never held whole, which would cost a build tens of megabytes at its peak.
                return _read_lines(path, enumerate(handle, 1), decode)
        except _NotAsWritten:
            return _read_document(path, decode)
        except _Conflicted:
            return _read_conflicted(path, decode)
    except FileNotFoundError:
        return State()
    except OSError as exc:
        raise StateError(f"{path}: cannot read the state file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise StateError(f"{path}: the state file is damaged (not UTF-8). {_RESTORE}") from None


def _read_lines(
    path: Path, lines: Iterator[NumberedLine], decode: Callable[[str], Any], side: bool = False
) -> State:
    """The state in `lines` (numbered as in the file); `side` is one side of a conflict,
    whose version 1 commas and end git may have shuffled."""
    header = _header(path, lines, decode)
    version = header["version"]
    notes = _Notes(path)
    ended = version != 1
    for number, text in _content(lines):
        if version == 1:
            if text == _V1_END:
                ended = True
                continue
            if ended and not side:
                raise _damaged(path, number, "something after the end")
            text = text.removesuffix(",")
        notes.add(_decoded_record(path, number, text, decode), number)
    if not ended and not side:
        raise _damaged(path, None, "it ends early")
    return notes.state(header)


def _content(lines: Iterator[NumberedLine]) -> Iterator[NumberedLine]:
    """The lines that are not blank, stripped; a conflict marker is read another way."""
    for number, line in lines:
        if has_conflict_marker(line):
            raise _Conflicted
        text = line.strip()
        if text:
            yield number, text


def _header(
    path: Path, lines: Iterator[NumberedLine], decode: Callable[[str], Any]
) -> dict[str, Any]:
    """The header, from the first line that is not blank; checked."""
    for number, text in _content(lines):
        if text.endswith(_V1_NOTES_START):
            text = text.removesuffix(_V1_NOTES_START).rstrip().removesuffix(",") + "}"
        try:
            header = decode(text)
        except (ValueError, KeyError, TypeError):
            raise _NotAsWritten from None  # reading the whole document says what is wrong
        if not isinstance(header, dict) or "notes" in header:
            raise _NotAsWritten  # perhaps a whole version 1 document on one line
        return _checked_header(path, number, header)
    raise _damaged(path, None, "it is empty")


def _checked_header(path: Path, number: int, header: dict[str, Any]) -> dict[str, Any]:
    if header.get("format") != STATE_FORMAT:
        raise StateError(f"{path}: this is not an anki-genai state file. {_RESTORE}")
    version = header.get("version")
    if version not in _READ_VERSIONS:
        raise StateError(
            f"{path}: state file version {version!r} is not supported by this anki-genai "
            f"(it reads versions {', '.join(map(str, _READ_VERSIONS))}); upgrade anki-genai."
        )
    try:
        note_type = header["note_type"]
        if not isinstance(note_type, dict):
            raise TypeError
        header["note_type"] = (str(note_type["digest"]), int(note_type["mod"]))
        header["project"] = str(header.get("project", ""))
    except KeyError as exc:
        raise _damaged(path, number, f"entry {exc} is missing") from None
    except (TypeError, ValueError):
        raise _damaged(path, number, "an entry is malformed") from None
    return header


def _decoded_record(path: Path, number: int, text: str, decode: Callable[[str], Any]) -> NoteRecord:
    try:
        record = decode(text)
    except json.JSONDecodeError as exc:
        raise _damaged(path, number, exc.msg) from None
    except KeyError as exc:
        raise _damaged(path, number, f"entry {exc} is missing") from None
    except (TypeError, ValueError):
        raise _damaged(path, number, "an entry is malformed") from None
    if not isinstance(record, NoteRecord):
        raise _damaged(path, number, "entry 'guid' is missing")
    return record


class _Notes:
    """The records read so far; of a GUID recorded twice, the one changed last."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, NoteRecord] = {}
        self.repeated: list[tuple[int, str]] = []  # (line, GUID)

    def add(self, record: NoteRecord, number: int) -> None:
        kept = self.records.get(record.guid)
        if kept is not None:
            if kept.question != record.question:
                raise self._two_notes_one_guid(kept, record, number)
            # The same note twice (a copied line): its later record is what Anki has.
            self.repeated.append((number, record.guid))
            if record.mod <= kept.mod:
                return
        self.records[record.guid] = record

    def _two_notes_one_guid(
        self, kept: NoteRecord, record: NoteRecord, number: int
    ) -> RepeatedGuidError:
        """Two questions under one GUID: only one of them is that note in Anki, and which
        one the file cannot tell, so guessing could send the other one as a duplicate."""
        first = _first_line_naming(self.path, record.guid)
        return RepeatedGuidError(
            f"{self.path}:{number}: note {record.guid} is recorded here a second time, for "
            f"another question ({_short(record.question)} here, {_short(kept.question)} at "
            f"{f'line {first}' if first else 'an earlier line'}): a line was copied or edited "
            "by hand. Delete the line whose question is not that note's in Anki, or put back "
            f"the last good copy, from version control or the backup in the output folder "
            f"({STATE_BACKUP_NAME})."
        )

    def state(self, header: Mapping[str, Any]) -> State:
        digest, mod = header["note_type"]
        project = header["project"] or legacy_project_id(self.records, mod)
        repairs: tuple[Repair, ...] = ()
        if self.repeated:
            number, guid = self.repeated[0]
            more = len(self.repeated) - 1
            repairs = (
                Repair(
                    SourceLocation(self.path, number),
                    f"note {guid} is recorded here a second time"
                    + (f" ({more} more GUIDs repeated after it)" if more else "")
                    + "; kept of each the record changed last (the larger mod)",
                ),
            )
        return State(self.records, digest, mod, project, repairs)


def _first_line_naming(path: Path, guid: str) -> int | None:
    """The number of the first line of the file that records `guid` (an error's detail)."""
    needle = f'"guid": {json.dumps(guid, ensure_ascii=False)}'
    with path.open(encoding="utf-8") as handle:
        return next((n for n, line in enumerate(handle, 1) if needle in line), None)


def _short(text: str, limit: int = 40) -> str:
    return json.dumps(text if len(text) <= limit else text[: limit - 1] + "…", ensure_ascii=False)


def _read_document(path: Path, decode: Callable[[str], Any]) -> State:
    """A version 1 file as one JSON document, however it is laid out."""
    try:
        data = decode(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise _damaged(path, exc.lineno, exc.msg) from None
    except KeyError as exc:
        raise _damaged(path, None, f"entry {exc} is missing") from None
    except (TypeError, ValueError):
        raise _damaged(path, None, "an entry is malformed") from None
    if not isinstance(data, dict):
        raise StateError(f"{path}: this is not an anki-genai state file. {_RESTORE}")
    entries = data.pop("notes", None)
    header = _checked_header(path, 1, data)
    if not isinstance(entries, list):
        raise _damaged(path, None, "its notes are not a list")
    notes = _Notes(path)
    for entry in entries:
        if not isinstance(entry, NoteRecord):
            raise _damaged(path, None, "entry 'guid' is missing")
        notes.add(entry, 1)
    return notes.state(header)


def _read_conflicted(path: Path, decode: Callable[[str], Any]) -> State:
    """The state both sides of git's conflict markers hold together: every note of either,
    and of a note on both, the record changed last (the larger mod)."""
    # Split at "\n" only, as git does: str.splitlines would also split at "\u2028".
    lines = path.read_text(encoding="utf-8").split("\n")
    try:
        sides = split_conflict(lines)
    except ConflictMarkerError as exc:
        raise StateError(
            f"{path}:{exc.line}: git's conflict markers do not pair up ({exc}); "
            "keep the lines of both sides and remove the markers by hand."
        ) from None
    assert sides is not None  # a marker was seen
    try:
        ours = _read_lines(path, iter(sides.ours), decode, side=True)
        theirs = _read_lines(path, iter(sides.theirs), decode, side=True)
    except _NotAsWritten:
        raise StateError(
            f"{path}:{sides.first_line}: git left conflict markers in a state file laid out "
            f"by hand, which cannot be read around them. {_RESTORE}"
        ) from None
    return merge_sides(ours, theirs, SourceLocation(path, sides.first_line), sides.conflicts)


def _damaged(path: Path, line: int | None, problem: str) -> StateError:
    where = f"{path}:{line}" if line is not None else str(path)
    return StateError(f"{where}: the state file is damaged ({problem}). {_RESTORE}")


def _note_or_object(entry: dict[str, Any], known: Mapping[str, str]) -> object:
    # Each note becomes its record as soon as it is decoded: a large state would otherwise
    # be held as parsed JSON and as records at once.
    return _record_from_json(entry, known) if "guid" in entry else entry


def _record_from_json(entry: Mapping[str, Any], known: Mapping[str, str]) -> NoteRecord:
    question, answer, digest, file = (
        str(entry["question"]),
        str(entry["answer"]),
        str(entry["digest"]),
        str(entry["file"]),
    )
    return NoteRecord(
        guid=str(entry["guid"]),
        question=known.get(question, question),
        answer=known.get(answer, answer),
        digest=known.get(digest, digest),
        mod=int(entry["mod"]),
        file=known.get(file, file),
        removed=bool(entry.get("removed", False)),
        deck=str(entry.get("deck", "")),
        fields=tuple(str(f) for f in entry.get("fields", ())),
        tags=tuple(str(t) for t in entry.get("tags", ())),
    )


def read_state_bytes(path: Path) -> bytes | None:
    """The state file's bytes, or None when there is none to read."""
    try:
        return path.read_bytes()
    except OSError:
        return None
