"""Everything the two-way commands use of the rest of anki-genai, in one place.

Nothing else in `anki_genai.sync` imports the build, identity, state or package modules, so
a change to their interfaces is re-pointed here alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from anki_genai.apkg.notetype import FIELD_NAMES
from anki_genai.apkg.package import read_notes
from anki_genai.atomic import atomic_write
from anki_genai.build import BuildOptions, BuildResult, build, collect, output_cache
from anki_genai.cards import Card, make_cards
from anki_genai.errors import AnkiGenaiError, SourceLocation
from anki_genai.identity import Candidate, Status, assign_identities, build_timestamp
from anki_genai.lock import project_lock as build_project_lock
from anki_genai.parse import markdown_parser, parse_markdown
from anki_genai.sources import output_path
from anki_genai.statefile import (
    STATE_FILE_NAME,
    NoteRecord,
    drop_tombstones,
    load_state,
    save_state,
)

__all__ = [
    "FIELD_NAMES",
    "AnkiGenaiError",
    "BuildOptions",
    "BuildResult",
    "Card",
    "Project",
    "ProjectNote",
    "Sent",
    "SourceLocation",
    "Status",
    "atomic_write",
    "build",
    "file_cards",
    "forget_removed",
    "last_sent",
    "packages_kept",
    "project_lock",
    "read_project",
    "remember_mods",
]


@dataclass(frozen=True, slots=True)
class ProjectNote:
    """A pair of the sources with the identity the next build gives it."""

    card: Card
    guid: str
    mod: int
    status: Status  # UNCHANGED: the sources say what they said at the last build


@dataclass(frozen=True, slots=True)
class Project:
    """The sources as the next build would see them."""

    options: BuildOptions
    root: Path
    state_path: Path
    notes: tuple[ProjectNote, ...]
    removed: tuple[str, ...]  # GUIDs of notes no longer in the sources, earlier ones included
    removed_questions: dict[str, str]  # their questions, by GUID
    files: dict[str, Path]  # source file (relative, as cards name it) -> path


@dataclass(frozen=True, slots=True)
class Sent:
    """What the last build's package holds for one note."""

    deck: str
    fields: tuple[str, ...]  # in FIELD_NAMES order
    tags: tuple[str, ...]


def read_project(options: BuildOptions) -> Project:
    """Parse the sources and match them against the state, as a build would; write nothing.

    Files unchanged since the last build come from its cache, which is only read here.
    """
    collected = collect(options, cache=output_cache(options))
    root = collected.root
    state_path = root / STATE_FILE_NAME
    state = load_state(state_path)
    # Matched as a build of the same sources matches them: only the notes of their files.
    outside = {g for g, r in state.notes.items() if r.file not in collected.scope}
    inside = dataclasses.replace(
        state, notes={g: r for g, r in state.notes.items() if g not in outside}
    )
    candidates = [
        Candidate(
            c.question_text,
            c.answer_digest,
            c.digest,
            c.source_file,
            c.explicit_id,
            c.question_key,
            c.shown_digest,
        )
        for c in collected.cards
    ]
    plan = assign_identities(candidates, inside, build_timestamp(state), reserved=outside)
    notes = tuple(
        ProjectNote(card, a.guid, a.mod, a.status)
        for card, a in zip(collected.cards, plan.assignments, strict=True)
    )
    files = {c.source_file: c.location.path for c in collected.cards}
    removed = tuple(r.guid for r in plan.removed)
    questions = {r.guid: r.question for r in plan.removed}
    return Project(options, root, state_path, notes, removed, questions, files)


def last_sent(project: Project, package: Path | None = None) -> dict[str, Sent]:
    """The notes of the last build's package (by default the one in the output folder), by
    GUID; {} if it is gone."""
    if package is None:
        decks = {n.card.deck for n in project.notes}
        if not decks:
            return {}
        package = output_path(project.options.output, project.root, decks)
    guids = {n.guid for n in project.notes} | set(project.removed)
    return {
        guid: Sent(content.deck, content.fields, content.tags)
        for guid, content in read_notes(package, guids).items()
    }


@contextlib.contextmanager
def packages_kept(options: BuildOptions) -> Iterator[Callable[[Path], Path | None]]:
    """Keep the packages now in the output folder while the block runs, so that what the
    last build sent can be read after a new build has replaced them: gives the kept copy
    of a package path, or None."""
    folder = options.output.parent if options.output.suffix == ".apkg" else options.output
    with tempfile.TemporaryDirectory(prefix="anki-genai-") as scratch:
        kept: dict[str, Path] = {}
        for package in sorted(folder.glob("*.apkg")) if folder.is_dir() else ():
            copy = Path(scratch) / package.name
            try:
                os.link(package, copy)  # builds replace packages by renaming: this one stays
            except OSError:
                shutil.copy2(package, copy)
            kept[package.name] = copy
        yield lambda package: kept.get(package.name)


def file_cards(text: str, card: Card, root: Path, options: BuildOptions) -> list[Card]:
    """The cards the file of `card` gives when it holds `text` (parsed, rendered, no I/O
    but for its images)."""
    from anki_genai.render import Renderer  # as the build imports it: only when rendering

    renderer = Renderer(markdown_parser())
    document = parse_markdown(text, card.location.path, renderer.md, options.parse)
    cards, _problems = make_cards(document, card.deck, card.source_file, renderer, root)
    return cards


@contextlib.contextmanager
def project_lock(project: Project, on_wait: Callable[[], None]) -> Iterator[None]:
    """Hold the lock builds of these sources take, while sources or state are rewritten."""
    with build_project_lock(project.root, project.options.lock_timeout, on_wait):
        yield


def remember_mods(project: Project, cards: Sequence[tuple[str, Card, int]]) -> None:
    """Record, for each (GUID, card as it is now, mod), that the last build sent `card` with
    that mod: the next build then leaves the note in Anki as it is."""
    state = load_state(project.state_path)
    notes = dict(state.notes)
    for guid, card, mod in cards:
        record = notes.get(guid)
        if record is None or record.removed:
            continue
        notes[guid] = dataclasses.replace(
            record,
            question=card.question_text,
            answer=card.answer_digest,
            digest=card.digest,
            mod=mod,
            file=card.source_file,
        )
    save_state(dataclasses.replace(state, notes=notes), project.state_path)


def forget_removed(project: Project, guids: set[str]) -> int:
    """Forget the removed notes `guids` (deleted from the collection); return how many."""
    state = load_state(project.state_path)
    gone = {g: r for g, r in state.notes.items() if r.removed and g in guids}
    if not gone:
        return 0
    # drop_tombstones forgets every removed note; keep those that were not deleted.
    kept_removed = {g: r for g, r in state.notes.items() if r.removed and g not in guids}
    dropped, _count = drop_tombstones(state)
    notes: dict[str, NoteRecord] = {**dropped.notes, **kept_removed}
    save_state(dataclasses.replace(dropped, notes=notes), project.state_path)
    return len(gone)
