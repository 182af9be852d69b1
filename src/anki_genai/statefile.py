"""The state file: what it holds, how it is read and written, and its backup.

The state file (`anki-genai-state.json`, beside the sources and committed with them) keeps
each note's GUID and last-changed time between builds. It is not a cache: losing it would
make the next build look brand new to Anki, so it is written atomically, never reset
silently when it is unreadable, and the last good copy is kept in the output folder.

Its text is JSON laid out for version control: a header line, then one line per note,
sorted by GUID, so a diff shows exactly the notes that changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from json.encoder import encode_basestring
from pathlib import Path
from typing import IO, Any

from anki_genai.atomic import staged_write, unwritable_folder
from anki_genai.errors import StateError, write_error

STATE_FILE_NAME = "anki-genai-state.json"
STATE_BACKUP_NAME = "anki-genai-state.backup.json"  # in the output folder
STATE_FORMAT = "anki-genai state"
STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class NoteRecord:
    """What the state file remembers of one note."""

    guid: str
    question: str  # plain question text, for matching edited questions
    answer: str  # digest of the answer, a hint when the question was edited
    digest: str  # digest of everything the note shows; a change means a new mod
    mod: int
    file: str  # source file, relative to the state file's folder
    removed: bool = False
    # Only for removed notes: what keeps being packaged so the removal tag reaches Anki.
    deck: str = ""
    fields: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class State:
    """Every note the previous builds made, and the note type's last change."""

    notes: Mapping[str, NoteRecord] = field(default_factory=dict)
    note_type_digest: str = ""
    note_type_mod: int = 0

    @property
    def latest_mod(self) -> int:
        return max([self.note_type_mod, *(n.mod for n in self.notes.values())])


def drop_tombstones(state: State) -> tuple[State, int]:
    """Forget removed notes (after the user deleted them in Anki); return how many."""
    kept = {guid: r for guid, r in state.notes.items() if not r.removed}
    return replace(state, notes=kept), len(state.notes) - len(kept)


# --- reading ----------------------------------------------------------------------------------

_RESTORE = (
    "Restore it from version control (git checkout -- FILE) or from the backup in the "
    "output folder. Do not delete it: without it every note would get a new identity "
    "and Anki would duplicate your cards."
)

# How the writer lays the file out, which the fast reader relies on.
_NOTES_START = ', "notes": [\n'  # how the header line ends
_NOTE_SEPARATOR = ",\n"
_NOTES_END = "]}\n"  # the last line


def load_state(path: Path, known: Mapping[str, str] | None = None) -> State:
    """Read the state file at `path`; a missing file is an empty state, a bad one an error.

    Strings equal to one in `known` are that string, not a copy: most of a large state's
    questions and digests are those of cards already in memory.
    """
    known = known or {}
    decode = json.JSONDecoder(object_hook=lambda entry: _note_or_object(entry, known)).decode
    try:
        try:
            with path.open(encoding="utf-8") as handle:
                return _state_from_document(path, *_document_from_lines(handle, decode))
        except (_NotAsWritten, StateError):
            # The file is not as the writer left it: read it whole, which says exactly what
            # is wrong when something is.
            return _state_from_document(path, *_document_from_text(path, decode))
    except FileNotFoundError:
        return State()
    except OSError as exc:
        raise StateError(f"{path}: cannot read the state file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise StateError(f"{path}: the state file is damaged (not UTF-8). {_RESTORE}") from None


# A document: the file's top-level object without its notes, and the notes as decoded.
_Document = tuple[Mapping[str, Any], Iterator[Any]]


class _NotAsWritten(Exception):
    """The file is not laid out as the writer lays it out: read it whole instead."""


def _document_from_lines(lines: Iterable[str], decode: Callable[[str], Any]) -> _Document:
    """The file's document, decoded a line at a time as the writer lays it out (the fast
    path): the notes are decoded as they are read, so a large state's text is never held
    whole, which would cost a build tens of megabytes more at its peak.
    """
    it = iter(lines)
    header_line = next(it, "")
    if not header_line.endswith(_NOTES_START):
        raise _NotAsWritten
    try:
        header = decode(header_line.removesuffix(_NOTES_START) + "}")
    except ValueError:
        raise _NotAsWritten from None
    if not isinstance(header, dict):
        raise _NotAsWritten

    def notes() -> Iterator[Any]:
        more = None  # whether the last note's line promised another (a trailing comma)
        try:
            for line in it:
                if line == "\n" and more is None:
                    continue  # the empty line of a state without notes
                if line == _NOTES_END and not more:
                    if next(it, None) is not None:
                        break
                    return
                more = line.endswith(_NOTE_SEPARATOR)
                yield decode(line.removesuffix(_NOTE_SEPARATOR))
        except (ValueError, KeyError, TypeError):
            pass  # UnicodeDecodeError included: reading the whole text reports it
        raise _NotAsWritten  # damaged, truncated, or something after the end

    return header, notes()


def _document_from_text(path: Path, decode: Callable[[str], Any]) -> _Document:
    """The file's document from its whole text, or an error that says where it is damaged."""
    raw = path.read_text(encoding="utf-8")
    try:
        data = decode(raw)
    except json.JSONDecodeError as exc:
        raise StateError(
            f"{path}:{exc.lineno}: the state file is damaged ({exc.msg}). {_RESTORE}"
        ) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise _damaged(path, exc) from None

    def notes() -> Iterator[Any]:
        entries = data["notes"]
        if not isinstance(entries, list):
            raise TypeError("notes is not a list")
        yield from entries

    return data, notes()


def _state_from_document(path: Path, header: Mapping[str, Any], notes: Iterator[Any]) -> State:
    """What a document says, however it was read; the one place that decides it."""
    if not isinstance(header, dict) or header.get("format") != STATE_FORMAT:
        raise StateError(f"{path}: this is not an anki-genai state file. {_RESTORE}")
    version = header.get("version")
    if version != STATE_VERSION:
        raise StateError(
            f"{path}: state file version {version!r} is not supported by this anki-genai "
            f"(it reads version {STATE_VERSION}); upgrade anki-genai."
        )
    try:
        note_type = header["note_type"]
        if not isinstance(note_type, dict):
            raise TypeError("note_type is not an object")
        records = {}
        for record in notes:
            if not isinstance(record, NoteRecord):
                raise KeyError("guid")
            records[record.guid] = record
        return State(records, str(note_type["digest"]), int(note_type["mod"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise _damaged(path, exc) from None


def _damaged(path: Path, exc: Exception) -> StateError:
    problem = f"entry {exc} is missing" if isinstance(exc, KeyError) else "an entry is malformed"
    return StateError(f"{path}: the state file is damaged ({problem}). {_RESTORE}")


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
    """The state file's text, in pieces: a header, then one sorted line per note.

    In pieces, so a large state is never one string; json's fast encoder, which indent=
    would switch off.
    """
    header = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "note_type": {"digest": state.note_type_digest, "mod": state.note_type_mod},
    }
    yield json.dumps(header, ensure_ascii=False)[:-1] + _NOTES_START
    for number, guid in enumerate(sorted(state.notes)):
        yield (_NOTE_SEPARATOR if number else "") + _record_json(state.notes[guid])
    yield "\n" + _NOTES_END


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
