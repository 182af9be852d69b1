"""A rebuild that costs what changed: the files that changed are matched, the rest keep
the identities the last build gave them.

Each whole-project build records, in the cache, what every file yielded: its key, deck,
problems, images and the GUIDs of its notes. The next build splits the files into those
whose key (and images) are unchanged and the rest, and matches only the rest against the
records they can meet: the notes of the changed and removed files, and the tombstones.

This gives exactly what matching everything gives when no unchanged note could be claimed
by a changed pair, nor take part in the later, fuzzier steps. An unchanged note that is
*settled*, whose GUID is one its explicit id or its question gives (`identity.own_guids`:
the project's, or the one made before projects had ids), is claimed by its own pair at
the first steps of `identity.assign_identities`, since the state records exactly that
pair's question and answer under that GUID, and no other pair can take it unless it
shares its question or id. A note without an id whose GUID is not its question's (kept
through an edited question, or made distinct from another with the same question) is
settled too while no other note of the state (tombstones included) has its question: the
step that matches by question gives it to its pair. So a file is matched again when any of
its notes is unsettled (such a note whose question another note shares, a note whose id
does not give its GUID), and the whole build falls back to matching everything when a
changed pair shares a question or an id with an unchanged file's note, or a changed file
shared one with another file last time (duplicates are merged across files).
Everything else the shortcut rests on (the state file, options, tool versions, the last
package) must be byte for byte what the last build left, or the build is a full one: a
state file git merged into, or that reading sets right, or restored after it was lost, is
never that, and only the version 2 layout is edited in place (`statetext`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from anki_genai import identity, plan
from anki_genai.apkg import notetype, package
from anki_genai.buildrecord import (
    RECORD_NAME,
    BuildRecord,
    FileRecord,
    _media_unchanged,
    file_records,
    inputs_key,
    load_record,
    save_record,
)
from anki_genai.cache import FileResult
from anki_genai.cards import Card
from anki_genai.errors import Diagnostic
from anki_genai.identity import Status
from anki_genai.media import MediaFile
from anki_genai.sources import FileJob, Sources, output_path
from anki_genai.statefile import NoteRecord, State
from anki_genai.statetext import Pieces, StateText

__all__ = [
    "RECORD_NAME",
    "BuildRecord",
    "Delta",
    "FileRecord",
    "Split",
    "file_records",
    "inputs_key",
    "load_record",
    "plan_delta",
    "save_record",
    "split",
]


@dataclass(frozen=True, slots=True)
class Split:
    """A rebuild's files split into those kept as recorded and those to match again."""

    record: BuildRecord
    state: StateText
    unchanged: frozenset[str]  # relative paths
    changed: Sources  # the other files, as a build of only them reads them
    removed: tuple[str, ...]  # files of the last build no longer among the sources
    order: tuple[str, ...]  # every file's relative path, in the sources' order


def split(
    record: BuildRecord | None,
    inputs: str,
    sources: Sources,
    state_data: bytes,
    state_digest: str,
) -> Split | None:
    """The files to match again, or None when this build must match every file."""
    if record is None or record.inputs != inputs:
        return None
    if sources.scope.named != ("",) or any(not isinstance(j, FileJob) for j in sources.jobs):
        return None
    unchanged = set()
    changed = []
    for index, (job, key) in enumerate(zip(sources.jobs, sources.keys, strict=True)):
        assert isinstance(job, FileJob)
        known = record.files.get(job.relative)
        fits = known is not None and known.key == key and known.settled
        if fits and known is not None and not known.entangled and _media_unchanged(known.media):
            unchanged.add(job.relative)
            continue
        changed.append(index)
    if not unchanged:
        return None
    if state_digest != record.state_digest:
        return None
    text = StateText.parse(state_data)
    if text is None:
        return None
    present = {job.relative for job in sources.jobs if isinstance(job, FileJob)}
    removed = tuple(relative for relative in record.files if relative not in present)
    if any(record.files[relative].entangled for relative in removed):
        return None
    subset = replace(
        sources,
        files=tuple(sources.files[i] for i in changed),
        jobs=tuple(sources.jobs[i] for i in changed),
        keys=tuple(sources.keys[i] for i in changed),
    )
    order = tuple(job.relative for job in sources.jobs if isinstance(job, FileJob))
    return Split(record, text, frozenset(unchanged), subset, removed, order)


@dataclass(frozen=True, slots=True)
class Delta:
    """What a rebuild that matched only the changed files sends, keeps and reports."""

    plan: plan.Plan  # the changed notes, their state (only theirs), counts and changes
    unchanged: package.Unchanged  # what the package keeps of the last one
    state_text: Pieces | None  # the new state file's text; None if it says the same
    files: dict[str, FileRecord]  # the next build's record of every file
    latest_mod: int
    tombstones: tuple[str, ...]
    diagnostics: tuple[Diagnostic, ...]
    note_count: int
    media: tuple[Path, ...]  # every image the notes show


class _Elsewhere:
    """The GUIDs of the notes this build keeps as recorded: a new note gets none of them."""

    def __init__(self, state: StateText, replaced: frozenset[str]) -> None:
        self._state = state
        self._replaced = replaced

    def __contains__(self, guid: object) -> bool:
        return guid not in self._replaced and guid in self._state


def plan_delta(
    parts: Split,
    results: Sequence[FileResult],
    cards: Sequence[Card],
    merged: Sequence[Diagnostic],
    output: Path,
    skipped: Sequence[Diagnostic],
) -> Delta | None:
    """Match the changed files' `cards` (their `results` before duplicates were merged)
    against the records they can meet; None when that could differ from matching all."""
    record, text, sources = parts.record, parts.state, parts.changed
    project = text.project_id
    jobs = [job for job in sources.jobs if isinstance(job, FileJob)]
    replaced_set: set[str] = set(record.tombstones)
    for relative in (*(job.relative for job in jobs), *parts.removed):
        known = record.files.get(relative)
        if known is not None:
            replaced_set.update(known.guids)
    replaced = frozenset(replaced_set)
    elsewhere = _Elsewhere(text, replaced)
    kept_questions = {k for r in parts.unchanged for k in record.files[r].claimed_keys}
    for result in results:
        for card in result.cards:
            # A changed pair that shares a question or an id with a kept note could claim it,
            # or be merged with it: only matching everything says what then happens.
            if card.question_key in kept_questions:
                return None
            # Its own GUIDs, and those of its question as well when it has an id: a pair
            # that gains or loses an id is matched by either.
            own = identity.own_guids(project, card.question_key, card.explicit_id)
            if card.explicit_id is not None:
                own += identity.own_guids(project, card.question_key, None)
            if any(guid in elsewhere for guid in own):
                return None
    previous: dict[str, NoteRecord] = {}
    for guid in replaced:
        found = text.record(guid)
        if found is None:
            return None
        previous[guid] = found
    note_type_digest, note_type_mod = text.note_type()
    if note_type_digest != notetype.note_type_digest():
        return None
    decks = {record.files[r].deck for r in parts.unchanged if record.files[r].count}
    package_path = output_path(output, sources.root, decks | {c.deck for c in cards})
    if str(package_path) != record.package:
        return None

    now = identity.timestamp_after(record.latest_mod)
    candidates = plan.candidates_of(cards)
    state = State(previous, note_type_digest, note_type_mod, project)
    matched = identity.assign_identities(candidates, state, now, reserved=elsewhere)
    tombstones = plan.make_tombstones(matched, package_path)  # as a full build makes them
    new_state = identity.updated_state(
        candidates, matched, tombstones, note_type_digest, note_type_mod
    )
    moved = sum(
        1
        for card, a in zip(cards, matched.assignments, strict=True)
        if a.status is Status.UNCHANGED and previous[a.guid].file != card.source_file
    )
    packaged = replace(
        plan.packaged_plan(cards, matched, tombstones, new_state, package_path), moved=moved
    )
    state_text = (
        None if new_state.notes == previous else text.replaced(set(replaced), new_state.notes)
    )

    guids = [a.guid for a in matched.assignments]
    # The changed pairs share no question with a kept note (or this build would match every
    # file): whether another note has a pair's question, only the tombstones can tell.
    gone = [r for r in new_state.notes.values() if r.removed]
    fresh = file_records(jobs, sources.keys, results, cards, guids, merged, project, gone)
    files: dict[str, FileRecord] = {}
    statuses = iter(matched.assignments)
    counts: Counter[Status] = Counter()
    deck_counts: dict[str, Counter[Status]] = {}
    diagnostics = list(skipped)
    merged_problems: list[Diagnostic] = []
    note_count = 0
    media: list[Path] = []
    for relative in parts.order:
        known = fresh.get(relative) or record.files[relative]
        files[relative] = known
        diagnostics.extend(Diagnostic.from_list(d) for d in known.diagnostics)
        merged_problems.extend(Diagnostic.from_list(d) for d in known.merged)
        media.extend(Path(p) for p, *_ in known.media)
        note_count += known.count
        if relative in parts.unchanged:
            if known.count:
                deck_counts.setdefault(known.deck, Counter())[Status.UNCHANGED] += known.count
            counts[Status.UNCHANGED] += known.count
        else:
            for _ in range(known.count):
                status = next(statuses).status
                deck_counts.setdefault(known.deck, Counter())[status] += 1
                counts[status] += 1
    for deck, removed in packaged.deck_counts.items():
        if removed[Status.REMOVED]:
            deck_counts.setdefault(deck, Counter())[Status.REMOVED] += removed[Status.REMOVED]
    counts[Status.REMOVED] = packaged.counts[Status.REMOVED]
    kept_media = tuple(
        MediaFile(Path(p), n) for r in parts.unchanged for p, n, *_ in record.files[r].media
    )
    latest = max([record.latest_mod, *(r.mod for r in new_state.notes.values())])
    return Delta(
        replace(packaged, counts=counts, deck_counts=deck_counts),
        package.Unchanged(replaced, frozenset(decks), kept_media),
        state_text,
        files,
        latest,
        tuple(g for g, r in new_state.notes.items() if r.removed),
        (*diagnostics, *merged_problems),
        note_count,
        tuple(sorted(set(media))),
    )
