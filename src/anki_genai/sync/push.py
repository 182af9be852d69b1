"""`push`: a build brought into a closed collection, with what an `.apkg` import cannot do.

In order: build; back the collection up beside itself; import the package as Anki's import
dialog does by default (notes updated if newer; cards, scheduling and review history never
touched); delete the notes removed from the sources; move the cards whose deck changed in
the sources since the last build; give notes that moved to another file or section their
new tags, Context and Source, leaving Question and Answer (maybe edited in Anki) alone; then
forget the deleted notes in the state, and build again, so the package no longer carries
them. None of this marks the collection's schema modified: the next sync is a normal one.

What "changed since the last build" means comes from the previous package in the output
folder, read before the build replaces it; without it, no card is moved and no note retagged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from anki_genai.sync import adapter, collection
from anki_genai.sync.adapter import BuildOptions, BuildResult, SourceLocation
from anki_genai.sync.collection import AnkiNote, ImportCounts, NoteUpdate


@dataclass(frozen=True, slots=True)
class Deletion:
    guid: str
    question: str
    note_id: int


@dataclass(frozen=True, slots=True)
class Move:
    location: SourceLocation
    question: str
    card_ids: tuple[int, ...]
    from_decks: tuple[str, ...]
    to_deck: str


@dataclass(frozen=True, slots=True)
class Retag:
    location: SourceLocation
    question: str
    update: NoteUpdate
    tags_before: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PushPlan:
    """What a push does to the collection beyond the import."""

    deletions: tuple[Deletion, ...]
    moves: tuple[Move, ...]
    retags: tuple[Retag, ...]


@dataclass(frozen=True, slots=True)
class PushResult:
    collection: Path
    dry_run: bool
    imported: ImportCounts  # predicted in a dry run
    plan: PushPlan
    backup: Path | None = None
    build: BuildResult | None = None
    forgotten: int = 0


def push(
    path: Path,
    options: BuildOptions,
    *,
    dry_run: bool = False,
    on_wait: Callable[[], None] = lambda: None,
) -> PushResult:
    """Build the sources and bring the collection at `path` (Anki closed) up to them."""
    collection.require_anki("push")
    schema = collection.read_schema(path)  # first: an open collection is refused at once
    collection.check_schema(path, schema, writing=True)
    if dry_run:
        project = adapter.read_project(options)
        sent = adapter.last_sent(project)
        guids = {n.guid for n in project.notes} | set(project.removed)
        with collection.read_export(path) as col:  # a scratch copy: nothing changes
            in_anki = collection.project_notes(col, guids)
        predicted = _predicted_import(project, in_anki)
        updated = {n.guid for n in project.notes if _would_update(n, in_anki)}
        plan = _plan(project, sent, in_anki, updated)
        return PushResult(path, True, predicted, plan)
    with adapter.packages_kept(options) as previous:
        result = adapter.build(options, on_wait=on_wait)
        # Read after the build, whose cache then holds every file's cards: the same notes
        # and GUIDs, the removed ones among them, with the mods the package carries.
        project = adapter.read_project(options)
        last = previous(result.package_path)
        sent = adapter.last_sent(project, last) if last is not None else {}
    guids = {n.guid for n in project.notes} | set(project.removed)
    with collection.open_for_push(path) as target:
        imported = target.import_package(result.package_path)
        in_anki = target.notes(guids)
        plan = _plan(project, sent, in_anki, set())
        target.delete([d.note_id for d in plan.deletions])
        for move in plan.moves:
            target.move(move.card_ids, move.to_deck)
        for retag in plan.retags:
            target.update(retag.update)
        backup = target.backup
    forgotten = 0
    if project.removed:
        with adapter.project_lock(project, on_wait):
            forgotten = adapter.forget_removed(project, set(project.removed))
        if forgotten:
            result = adapter.build(options, on_wait=on_wait)  # the package without them
    return PushResult(path, False, imported, plan, backup, result, forgotten)


def _would_update(note: adapter.ProjectNote, in_anki: Mapping[str, AnkiNote]) -> bool:
    existing = in_anki.get(note.guid)
    return existing is not None and note.mod > existing.mod


def _predicted_import(project: adapter.Project, in_anki: Mapping[str, AnkiNote]) -> ImportCounts:
    new = sum(1 for n in project.notes if n.guid not in in_anki)
    updated = sum(1 for n in project.notes if _would_update(n, in_anki))
    return ImportCounts(new, updated, len(project.notes) - new - updated, 0)


def _plan(
    project: adapter.Project,
    sent: Mapping[str, adapter.Sent],
    in_anki: Mapping[str, AnkiNote],
    updated_by_import: set[str],
) -> PushPlan:
    deletions = tuple(
        Deletion(guid, project.removed_questions.get(guid, ""), in_anki[guid].note_id)
        for guid in project.removed
        if guid in in_anki
    )
    moves: list[Move] = []
    retags: list[Retag] = []
    for note in project.notes:
        existing, last = in_anki.get(note.guid), sent.get(note.guid)
        if existing is None or last is None:
            continue  # new, or what the last build sent is unknown: nothing is moved
        card = note.card
        if last.deck != card.deck:
            stray = tuple(
                cid
                for cid, deck in zip(existing.card_ids, existing.decks, strict=True)
                if deck != card.deck
            )
            if stray:
                moves.append(
                    Move(card.location, card.question_text, stray, existing.decks, card.deck)
                )
        if note.guid in updated_by_import:
            continue  # the import brings its tags and Context itself
        fields = card.fields()
        context, source = fields[2], fields[3]
        moved = last.deck != card.deck or last.tags != card.tags or last.fields[2] != context
        if not moved:
            continue
        users_own = tuple(t for t in existing.tags if t not in last.tags and t not in card.tags)
        tags = (*card.tags, *users_own)
        # Source (path:line) alone is no reason to rewrite a note: an edit higher up in a
        # file shifts every line below it. It travels with the tags and Context.
        if set(tags) == set(existing.tags) and existing.field("Context") == context:
            continue
        wanted = {"Context": context, "Source": source}
        retags.append(
            Retag(
                card.location,
                card.question_text,
                NoteUpdate(existing.note_id, tags, wanted),
                existing.tags,
            )
        )
    return PushPlan(deletions, tuple(moves), tuple(retags))
