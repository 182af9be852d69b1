"""Cards + the previous state -> the notes to package: new, changed, renamed, unchanged,
and tombstones for the notes removed from the sources."""

from __future__ import annotations

import functools
import hashlib
import html
from collections import Counter
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from anki_genai import identity
from anki_genai.apkg import notetype, package
from anki_genai.apkg.collection import PackagedNote
from anki_genai.apkg.notetype import NoteFields
from anki_genai.cards import Card
from anki_genai.errors import StateError
from anki_genai.identity import Candidate, IdentityPlan, Status
from anki_genai.statefile import NoteRecord, State

REMOVED_ANSWER = "(removed from the Markdown sources)"
REMOVED_DECK = "anki-genai removed"


@dataclass(frozen=True, slots=True)
class PlannedNote:
    """A note of the package with its identity and what the build does to it."""

    card: Card | None  # None for notes removed from the sources
    guid: str
    mod: int
    status: Status
    previous_question: str | None = None  # for renamed and removed notes
    removed_deck: str = ""  # for removed notes

    @property
    def deck(self) -> str:
        return self.card.deck if self.card is not None else self.removed_deck


@dataclass(frozen=True, slots=True)
class Plan:
    """What a build sends: every note to package, what changed, and the next state."""

    package_path: Path
    notes: tuple[PackagedNote, ...]
    changes: tuple[PlannedNote, ...]  # new, changed, renamed and removed notes
    counts: Counter[Status]
    deck_counts: dict[str, Counter[Status]]
    state: State
    # Unchanged notes whose pair now lives in another file: Anki keeps their old tag,
    # Source and deck until their content next changes.
    moved: int = 0
    removed_notes: int = 0  # tombstones packaged, tagged as removed
    kept_notes: int = 0  # notes of files that could not be read, packaged as last built


def card_strings(cards: Sequence[Card]) -> dict[str, str]:
    """The strings of `cards` that the state also holds, each under its own value, so that
    a loaded state shares them instead of holding copies."""
    strings: dict[str, str] = {}
    for card in cards:
        for text in (card.question_text, card.answer_digest, card.digest, card.source_file):
            strings[text] = text
    return strings


def candidates_of(cards: Sequence[Card]) -> list[Candidate]:
    """What matching needs to know of each card."""
    return [
        Candidate(
            c.question_text,
            c.answer_digest,
            c.digest,
            c.source_file,
            c.explicit_id,
            c.question_key,
            c.shown_digest,
        )
        for c in cards
    ]


def plan_notes(
    cards: Sequence[Card],
    state: State,
    state_path: Path,
    package_path: Path,
    scope: Container[str] | None = None,
    kept: Sequence[PackagedNote] = (),
    broken: Container[str] = (),
    last_package: Path | None = None,
) -> Plan:
    """Match `cards` against `state`: the notes to package at `package_path`, and the next state.

    Only the notes of files in `scope` (None: every file) are matched, removed or packaged;
    the others keep their records as they are, GUIDs included. The `kept` notes (of files
    that could not be read this time, see `as_last_packaged`) are packaged as they are.
    In the `broken` files (an error in a pair), a note no pair matches is not removed.
    A removed note shows what it showed in `last_package` (None: `package_path`'s).
    """
    now = identity.build_timestamp(state)
    outside = {g: r for g, r in state.notes.items() if r.file not in scope} if scope else {}
    if outside:
        state = replace(state, notes={g: r for g, r in state.notes.items() if g not in outside})
    candidates = candidates_of(cards)
    matched = identity.assign_identities(candidates, state, now, reserved=outside.keys())
    _check_state_belongs_here(state, state_path, candidates, matched)
    matched, waiting = hold_broken(matched, state, broken)
    outside = {**outside, **waiting}
    note_type_digest = notetype.note_type_digest()
    note_type_mod = state.note_type_mod if state.note_type_digest == note_type_digest else now
    tombstones = make_tombstones(matched, last_package or package_path)
    new_state = identity.updated_state(
        candidates, matched, tombstones, note_type_digest, note_type_mod
    )
    if outside:
        new_state = replace(new_state, notes={**outside, **new_state.notes})
    # Matching's working objects go before the packaged notes are made: at 100,000 notes
    # they are what tips a build over 300 MB.
    del candidates
    moved = sum(
        1
        for card, a in zip(cards, matched.assignments, strict=True)
        if a.status is Status.UNCHANGED and state.notes[a.guid].file != card.source_file
    )
    plan = packaged_plan(cards, matched, tombstones, new_state, package_path)
    return replace(plan, notes=(*plan.notes, *kept), moved=moved, kept_notes=len(kept))


def hold_broken(
    matched: IdentityPlan, state: State, broken: Container[str]
) -> tuple[IdentityPlan, dict[str, NoteRecord]]:
    """Take out of `matched` the removals of notes of `broken` files, and return them.

    A pair with an error (an answer emptied while editing, a marker mistyped) gives no
    card, but it is not deleted: removed, the note would be tagged for deletion (or
    deleted by a push) with its review history. It waits, as it is in Anki and in the
    state, until the error is fixed and its pair matches it again.
    """
    waiting = {
        guid: state.notes[guid]
        for guid in matched.newly_removed
        if state.notes[guid].file in broken
    }
    if not waiting:
        return matched, {}
    held = replace(
        matched,
        removed=tuple(r for r in matched.removed if r.guid not in waiting),
        newly_removed=tuple(g for g in matched.newly_removed if g not in waiting),
    )
    return held, waiting


def packaged_plan(
    cards: Sequence[Card],
    matched: IdentityPlan,
    tombstones: Sequence[NoteRecord],
    new_state: State,
    package_path: Path,
) -> Plan:
    counts: Counter[Status] = Counter()
    deck_counts: dict[str, Counter[Status]] = {}
    changes: list[PlannedNote] = []
    notes: list[PackagedNote] = []
    for card, a in zip(cards, matched.assignments, strict=True):
        counts[a.status] += 1
        deck_counts.setdefault(card.deck, Counter())[a.status] += 1
        if a.status is not Status.UNCHANGED:
            changes.append(PlannedNote(card, a.guid, a.mod, a.status, a.previous_question))
        digest = f"{card.shown_digest}:{card.location.line}"
        fields = card.fields
        notes.append(PackagedNote(a.guid, card.deck, fields, digest, card.tags, a.mod, card.media))
    newly_removed = set(matched.newly_removed)
    for r in tombstones:
        if r.guid in newly_removed:
            changes.append(
                PlannedNote(None, r.guid, r.mod, Status.REMOVED, r.question, removed_deck=r.deck)
            )
            deck_counts.setdefault(r.deck, Counter())[Status.REMOVED] += 1
        notes.append(_as_packaged(r.guid, r.deck, r.fields, (*r.tags, identity.REMOVED_TAG), r.mod))
    counts[Status.REMOVED] = len(newly_removed)
    return Plan(
        package_path,
        tuple(notes),
        tuple(changes),
        counts,
        deck_counts,
        new_state,
        removed_notes=len(tombstones),
    )


def as_last_packaged(
    state: State, files: Container[str], packages: Sequence[Path]
) -> tuple[PackagedNote, ...]:
    """The notes of `files` as the last package holds them: same deck, fields, tags and
    mod; the first of `packages` that holds any is the last one. A note none holds is
    left out, which leaves it in Anki as it is too."""
    records = [r for r in state.notes.values() if r.file in files]
    if not records:
        return ()
    previous: Mapping[str, package.PackagedContent] = {}
    for path in packages:
        previous = package.read_notes(path, {r.guid for r in records})
        if previous:
            break
    carried = []
    for record in records:
        known = previous.get(record.guid)
        if known is not None:
            carried.append(
                _as_packaged(record.guid, known.deck, known.fields, known.tags, record.mod)
            )
    return tuple(carried)


def make_tombstones(matched: IdentityPlan, previous_package: Path) -> list[NoteRecord]:
    """Give every removed note the content and deck it last had in Anki."""
    fresh = set(matched.newly_removed)
    previous: Mapping[str, package.PackagedContent] = (
        package.read_notes(previous_package, fresh) if fresh else {}
    )
    tombstones = []
    for record in matched.removed:
        if record.guid in fresh:
            known = previous.get(record.guid)
            if known is not None:
                record = replace(
                    record, deck=known.deck or REMOVED_DECK, fields=known.fields, tags=known.tags
                )
            else:
                # The previous package is gone, so its exact content is unknown: say so on the card.
                fields = NoteFields(
                    html.escape(record.question), REMOVED_ANSWER, "", html.escape(record.file)
                )
                record = replace(record, deck=REMOVED_DECK, fields=fields, tags=())
        tombstones.append(record)
    return tombstones


def _check_state_belongs_here(
    state: State, state_path: Path, candidates: Sequence[Candidate], matched: IdentityPlan
) -> None:
    """Refuse a state file none of whose notes or files appear in these sources."""
    live = [r for r in state.notes.values() if not r.removed]
    if not live or not candidates:
        return
    if any(a.status is not Status.NEW for a in matched.assignments):
        return
    if {r.file for r in live} & {c.file for c in candidates}:
        return
    raise StateError(
        f"{state_path}: none of the {len(live)} notes in this state file is in these sources, "
        "so it probably belongs to another project. If so, put back this project's state "
        "file (from version control, or the backup in the output folder); if you really "
        "replaced every note, move the file away and build again."
    )


def _as_packaged(
    guid: str, deck: str, fields: Sequence[str], tags: Sequence[str], mod: int
) -> PackagedNote:
    """A note packaged with the fields it had, not made again from a card."""
    digest = hashlib.sha256("\x1f".join(fields).encode()).hexdigest()
    return PackagedNote(
        guid, deck, functools.partial(NoteFields.padded, tuple(fields)), digest, tuple(tags), mod
    )
