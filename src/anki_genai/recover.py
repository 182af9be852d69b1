"""A lost or damaged state file, restored from what the last build left in the output folder.

The output folder holds the state as it was before the last build (the backup) and the last
package, which holds every note exactly as Anki got it: GUID, fields, tags and mod. From
them the identities come back: an unchanged note keeps its GUID and its mod, so importing
the next package changes nothing in Anki (an edit made there survives), and an edited
question still finds its note instead of becoming a duplicate.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from anki_genai.apkg import notetype, package
from anki_genai.apkg.notetype import NoteFields
from anki_genai.cards import Card, file_tag, text_digest
from anki_genai.errors import RepeatedGuidError, StateError
from anki_genai.identity import REMOVED_TAG
from anki_genai.statefile import STATE_BACKUP_NAME, STATE_VERSION, NoteRecord, State, load_state

DAMAGED_SUFFIX = ".damaged"


@dataclass(frozen=True, slots=True)
class Recovered:
    """The state a build goes on from when the state file was lost, and what to say."""

    state: State
    notice: str  # one line for the user: where the state came from, or that it is gone
    damaged: Path | None = None  # the damaged state file: kept as *.damaged, then rewritten


def previous_state(
    state_path: Path,
    packages: Sequence[Path],
    cards: Sequence[Card],
    known: Mapping[str, str] | None = None,
    built_before: bool = False,
) -> tuple[State, Recovered | None]:
    """The state the last build left at `state_path`; when it is missing or damaged, the
    one restored from the backup and the last package (the first of `packages` that can
    be read: this build's, then the whole project's) in the output folder.

    `built_before`: the output folder's cache remembers an earlier build. A state missing
    with nothing to restore it from is then a warning; otherwise it is a first build.

    A damaged state with nothing to restore it from still stops the build: the user may
    have it in version control, and building on would give every note a new identity.
    """
    folder = packages[0].parent
    if not os.path.lexists(state_path):
        restored = _restore(folder, packages, cards, known)
        if restored is not None:
            state, origin = restored
            notice = f"{state_path} was missing: restored the notes' identities from {origin}"
            return state, Recovered(state, notice)
        in_git = _in_version_control(state_path)
        if not (in_git or built_before or _built_before(folder, packages)):
            return State(), None  # a first build
        return State(), Recovered(State(), _nothing_to_restore(state_path, folder, in_git))
    try:
        return load_state(state_path, known), None
    except RepeatedGuidError:
        raise  # not damage: the file cannot tell which question is that note in Anki
    except StateError:
        if not _damaged(state_path):
            raise
        restored = _restore(folder, packages, cards, known)
        if restored is None:
            raise
        state, origin = restored
        kept = damaged_copy(state_path)
        notice = (
            f"{state_path} is damaged: restored it from {origin}; "
            f"the damaged file is kept as {kept.name}"
        )
        return state, Recovered(state, notice, state_path)


def damaged_copy(state_path: Path) -> Path:
    """Where a damaged state file is kept: beside it, under a name not yet taken."""
    candidate = state_path.with_name(state_path.name + DAMAGED_SUFFIX)
    number = 2
    while os.path.lexists(candidate):
        candidate = state_path.with_name(f"{state_path.name}{DAMAGED_SUFFIX}-{number}")
        number += 1
    return candidate


def keep_damaged(state_path: Path) -> None:
    """Move the damaged state file aside, so the new one does not replace it (nor the
    backup, which would otherwise become a copy of the damage)."""
    os.replace(state_path, damaged_copy(state_path))


def _restore(
    folder: Path, packages: Sequence[Path], cards: Sequence[Card], known: Mapping[str, str] | None
) -> tuple[State, str] | None:
    """The state restored from the output folder, and the files it came from."""
    backup_path = folder / STATE_BACKUP_NAME
    backup: State | None = None
    if backup_path.is_file():
        with contextlib.suppress(StateError):
            backup = load_state(backup_path, known)
    found = _last_package(folder, packages, cards)
    if found is None:
        # A backup alone is not trusted: several projects may share an output folder, and
        # the backup is whichever built last; this project's own package vouches for it.
        return None
    contents, package_path = found
    if backup is not None and not backup.notes.keys() & contents.notes.keys():
        backup = None  # another project's
    origins = [str(package_path), *([str(backup_path)] if backup is not None else [])]
    return _from_package(contents, backup or State(), cards), " and ".join(origins)


def _last_package(
    folder: Path, packages: Sequence[Path], cards: Sequence[Card]
) -> tuple[package.PackageContents, Path] | None:
    """The last package: the first of `packages` that reads.

    Only the packages this project's builds write: another package in the same folder may
    be another project's, asking the same questions, and its GUIDs taken for this one's
    would make Anki take one project's cards for the other's.
    """
    for path in packages:
        contents = package.read_package(path)
        if contents is not None:
            return contents, path
    return None


def _from_package(contents: package.PackageContents, base: State, cards: Sequence[Card]) -> State:
    """The records of the notes in the package, over those of the older `base`.

    The package is what Anki got at the last build, so its GUIDs, mods and content win;
    the digests are made as a card makes them, so a card whose question, answer and tags
    are as packaged is unchanged. `base` adds the notes of files the package does not hold.
    """
    questions = {card.question: card.question_text for card in cards}
    records: dict[str, NoteRecord] = {}
    for guid, (content, mod) in contents.notes.items():
        fields = NoteFields.padded(content.fields)
        file = _source_file(fields.source)
        removed = REMOVED_TAG in content.tags
        tags = tuple(t for t in content.tags if t != REMOVED_TAG)
        own_tags = tuple(t for t in tags if t != file_tag(file))
        older = base.notes.get(guid)
        question = questions.get(fields.question) or (
            older.question if older is not None else _plain_text(fields.question)
        )
        records[guid] = NoteRecord(
            guid=guid,
            question=question,
            answer=text_digest(fields.answer),
            digest=text_digest(fields.question, fields.answer, *own_tags),
            mod=mod,
            file=file,
            removed=removed,
            deck=content.deck if removed else "",
            fields=content.fields if removed else (),
            tags=tags if removed else (),
        )
    packaged_files = {r.file for r in records.values()}
    for guid, record in base.notes.items():
        # A note of a file the package holds that the package lacks was forgotten since.
        if guid not in records and record.file not in packaged_files:
            records[guid] = record
    if contents.note_type_mod is not None:
        return replace(
            base,
            notes=records,
            note_type_digest=notetype.note_type_digest(),
            note_type_mod=contents.note_type_mod,
        )
    return replace(base, notes=records)


def _source_file(source: str) -> str:
    """The file of a note's Source field (`file.md:12`, or a removed note's `file.md`)."""
    text = html.unescape(source)
    match = re.fullmatch(r"(.*):\d+", text, re.DOTALL)
    return match.group(1) if match else text


def _plain_text(fragment: str) -> str:
    """A question's text from its HTML, near enough to match an edited question by."""
    return " ".join(html.unescape(re.sub(r"<[^>]*>", " ", fragment)).split())


def _damaged(path: Path) -> bool:
    """Whether the unreadable state file is damaged, rather than of a newer version, in
    the middle of a merge (git's conflict markers, which resolving deals with), or not
    readable at all (permissions)."""
    try:
        raw = path.read_bytes()
    except OSError:
        return False
    text = raw.decode("utf-8", errors="replace")
    if re.search(r"^(<{7}|={7}|>{7})( |$)", text, re.MULTILINE):
        return False
    version = re.search(r'"version"\s*:\s*(\d+)', text[:1000])
    # Truncated, not JSON, or JSON that is no readable state: damaged all the same.
    return version is None or int(version.group(1)) <= STATE_VERSION


def _built_before(folder: Path, packages: Sequence[Path]) -> bool:
    """Whether the output folder shows an earlier build: a first build has nothing to warn of."""
    return any(p.exists() for p in packages) or (folder / STATE_BACKUP_NAME).exists()


def _in_version_control(path: Path) -> bool:
    """Whether git knows the (now missing) state file: then it was committed once."""
    try:
        done = subprocess.run(
            ["git", "ls-files", "--error-unmatch", "--", path.name],
            cwd=path.parent,
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _nothing_to_restore(state_path: Path, folder: Path, in_git: bool) -> str:
    where = f"git checkout -- {state_path}" if in_git else "put it back from a copy"
    return (
        f"Warning: {state_path} is missing and {folder} holds neither its backup nor the last "
        f"package: every note will be sent as new, and Anki overwrites edits made there. "
        f"To keep them, stop and {where}"
    )
