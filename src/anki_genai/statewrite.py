"""Writing the state file: a header line, then one sorted line per note (see `statefile`
for what it holds and why it is laid out so), staged beside the old one with its backup."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from json.encoder import encode_basestring
from pathlib import Path
from typing import IO, Any

from anki_genai.atomic import staged_write, unwritable_folder
from anki_genai.errors import write_error
from anki_genai.staterecords import NoteRecord, State

STATE_FILE_NAME = "anki-genai-state.json"
STATE_BACKUP_NAME = "anki-genai-state.backup.json"  # in the output folder
STATE_FORMAT = "anki-genai state"
STATE_VERSION = 2


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
