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

import contextlib
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator, Mapping
from json.encoder import encode_basestring
from pathlib import Path
from typing import IO, Any

from anki_genai.atomic import staged_write, unwritable_folder
from anki_genai.conflicts import (
    ConflictMarkerError,
    NumberedLine,
    has_conflict_marker,
    merge_sides,
    split_conflict,
)
from anki_genai.errors import RepeatedGuidError, SourceLocation, StateError, write_error
from anki_genai.staterecords import (
    NoteRecord,
    Repair,
    State,
    drop_tombstones,
    legacy_project_id,
)

__all__ = [
    "STATE_BACKUP_NAME",
    "STATE_FILE_NAME",
    "NoteRecord",
    "Repair",
    "State",
    "check_writable",
    "drop_tombstones",
    "file_digest",
    "legacy_project_id",
    "load_state",
    "save_state",
    "save_with_backup",
    "staged_save",
]

STATE_FILE_NAME = "anki-genai-state.json"
STATE_BACKUP_NAME = "anki-genai-state.backup.json"  # in the output folder
STATE_FORMAT = "anki-genai state"
STATE_VERSION = 2
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
    for number, line in lines:
        if has_conflict_marker(line):
            raise _Conflicted
        text = line.strip()
        if not text:
            continue
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


def _header(
    path: Path, lines: Iterator[NumberedLine], decode: Callable[[str], Any]
) -> dict[str, Any]:
    """The header, from the first line that is not blank; checked."""
    for number, line in lines:
        if has_conflict_marker(line):
            raise _Conflicted
        text = line.strip()
        if not text:
            continue
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


# --- writing ----------------------------------------------------------------------------------


def save_state(state: State, path: Path) -> str:
    """Write the state file atomically (a crash leaves the old file or the new one); return
    the SHA-256 of what was written."""
    with staged_save(state, path) as (commit, digest):
        commit()
    return digest


def save_with_backup(state: State, path: Path, backup_folder: Path) -> str:
    """Save the state over the file at `path`, first copying that file, the last good
    state, into `backup_folder`; return the new file's SHA-256."""
    with staged_save(state, path, backup_folder) as (commit, digest):
        commit()
    return digest


@contextlib.contextmanager
def staged_save(
    state: State, path: Path, backup_folder: Path | None = None
) -> Iterator[tuple[Callable[[], None], str]]:
    """Write the new state file (and, into `backup_folder`, a copy of the one at `path`,
    the last good state) under temporary names; yield the function that puts them in place,
    and the new file's SHA-256. Nothing is replaced unless that function is called.

    Staged first, a state that cannot be written stops a build before its package is
    replaced. The backup lives with the outputs, for when the committed state gets mangled.
    The text is made a line at a time as it is written and hashed: a large state is never
    held whole in memory.
    """
    digest = hashlib.sha256()

    def write(handle: IO[str]) -> None:
        for chunk in _chunks(state):
            digest.update(chunk.encode())
            handle.write(chunk)

    def copy_old(handle: IO[bytes]) -> None:
        with path.open("rb") as old:
            shutil.copyfileobj(old, handle)

    advice = _state_advice(path)
    with contextlib.ExitStack() as staged:
        commits = []
        if backup_folder is not None and path.exists():
            backup = backup_folder / STATE_BACKUP_NAME
            commits.append(
                _stage(staged, backup, copy_old, "the state backup", _OUTPUT_ADVICE, binary=True)
            )
        commits.append(_stage(staged, path, write, "the state file", advice))

        def commit_all() -> None:
            for commit in commits:
                commit()

        yield commit_all, digest.hexdigest()


def check_writable(path: Path) -> None:
    """Fail, naming the state file, if its folder cannot be written (read-only, no permission)."""
    problem = unwritable_folder(path.parent)
    if problem is not None:
        raise write_error(path, problem, "the state file", _state_advice(path))


def _state_advice(path: Path) -> str:
    return (
        f"make {path.parent} writable: the state file, which keeps each note's identity, "
        "lives beside the sources"
    )


def _stage(
    stack: contextlib.ExitStack[Any],
    path: Path,
    fill: Callable[[IO[Any]], None],
    what: str,
    advice: str,
    binary: bool = False,
) -> Callable[[], None]:
    """Stage `path` on `stack` and return the function that renames it into place; a
    failure of either is reported as one line naming `path`."""
    try:
        commit = stack.enter_context(staged_write(path, fill, binary=binary))
    except OSError as exc:
        raise write_error(path, exc, what, advice) from None

    def checked_commit() -> None:
        try:
            commit()
        except OSError as exc:
            raise write_error(path, exc, what, advice) from None

    return checked_commit


_OUTPUT_ADVICE = "choose another output with -o"


def _chunks(state: State) -> Iterator[str]:
    """The state file's text, in pieces: a header line, then one sorted line per note.

    Nothing in the header changes from build to build, and no line depends on its
    neighbours (no commas between them, no closing line), so branches merge. In pieces, so
    a large state is never one string.
    """
    header: dict[str, object] = {"format": STATE_FORMAT, "version": STATE_VERSION}
    if state.project_id:
        header["project"] = state.project_id
    header["note_type"] = {"digest": state.note_type_digest, "mod": state.note_type_mod}
    yield json.dumps(header, ensure_ascii=False) + "\n"
    for guid in sorted(state.notes):
        yield _record_json(state.notes[guid]) + "\n"


def _record_json(record: NoteRecord, quote: Callable[[str], str] = encode_basestring) -> str:
    """One note's line: what json.dumps(..., ensure_ascii=False) writes, made a few times
    faster by quoting each string directly (a large state has 100,000 of these lines)."""
    line = (
        f'{{"guid": {quote(record.guid)}, "question": {quote(record.question)}, '
        f'"answer": {quote(record.answer)}, "digest": {quote(record.digest)}, '
        f'"mod": {record.mod}, "file": {quote(record.file)}'
    )
    if record.removed:
        rest = {"deck": record.deck, "fields": list(record.fields), "tags": list(record.tags)}
        line += ', "removed": true, ' + json.dumps(rest, ensure_ascii=False)[1:-1]
    return line + "}"


def file_digest(path: Path) -> str | None:
    """The digest of the state file's bytes, or None when there is none to read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
