"""Note identity between builds: matching pairs to notes, stable GUIDs, per-note mod times.

Anki matches an imported note to an existing one by GUID only, and overwrites it only when
the package's `mod` is newer than the note's. So every note keeps the GUID it was first given
and a `mod` that moves only when its content changes. Both are remembered in the state file
(`statefile`); this module decides them.

Matching a pair of the new build to a note of the previous one, in this order:
1. an explicit id in the source (`<!-- anki-genai-id: NAME -->`) always wins; an id no note
   has yet (just added to an existing pair) first takes the note the steps below find;
2. the same question text (compared after folding width, case and spacing); when several
   notes share it, the one with the same answer, then the one in the same file;
3. a question edited a little: among the notes that disappeared, the most similar question
   (similarity >= 0.75, or >= 0.5 when the answer is unchanged), but only when that pairing
   is clearly the best for both sides, so two different questions are never merged;
4. otherwise a new note, whose GUID is derived from the project's id and its question text,
   so two projects that ask the same question give two notes in one collection.
GUIDs recorded before projects had ids (derived from the question alone) are kept as they are.
Notes that disappeared stay in the state as tombstones and keep being packaged with the tag
`anki-genai::removed`, so users can find and delete them in Anki.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import time
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter

from anki_genai.parse import normalize_question
from anki_genai.statefile import NoteRecord, State

REMOVED_TAG = "anki-genai::removed"

_SIMILAR = 0.75
_SIMILAR_SAME_ANSWER = 0.5
_CLEAR_MARGIN = 0.1


class Status(enum.Enum):
    NEW = "new"
    CHANGED = "changed"
    RENAMED = "renamed"  # the question text was edited; same note
    UNCHANGED = "unchanged"
    REMOVED = "removed"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A pair of the new build, as identity matching sees it."""

    question: str
    answer: str
    digest: str
    file: str
    explicit_id: str | None = None
    key: str = field(default="", repr=False, compare=False)  # the question, normalised
    # The digest a previous release recorded for the same note: its state files hold that.
    shown_digest: str = field(default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", normalize_question(self.question))


@dataclass(frozen=True, slots=True)
class Assignment:
    """The identity given to one candidate."""

    guid: str
    mod: int
    status: Status
    previous_question: str | None = None  # set for RENAMED


@dataclass(frozen=True, slots=True)
class IdentityPlan:
    """The outcome of matching a build against the previous state."""

    assignments: tuple[Assignment, ...]  # one per candidate, in candidate order
    removed: tuple[NoteRecord, ...]  # tombstones, new ones included (their mod is `now`)
    newly_removed: tuple[str, ...]  # GUIDs that disappeared in this build
    project_id: str = ""  # the state's, or the one made for a project's first build


def project_id(state: State, candidates: Sequence[Candidate], now: int) -> str:
    """The id new notes' GUIDs are made from: the state's, or for a project that has none
    yet (its first build) a new one, kept in the state from then on.

    A new id comes from the moment of that first build and every pair in it, so no other
    project has it, while a build with the clock fixed (tests, benchmarks) stays reproducible.
    """
    if state.project_id:
        return state.project_id
    seed = hashlib.sha256(f"anki-genai project\x1f{now}".encode())
    for cand in candidates:
        seed.update(f"\x1e{cand.key}\x1f{cand.answer}".encode())
    return seed.hexdigest()[:16]


def build_timestamp(state: State) -> int:
    """Return a mod time strictly newer than anything the state has sent to Anki."""
    return timestamp_after(state.latest_mod)


def timestamp_after(latest_mod: int) -> int:
    """Return a mod time strictly newer than `latest_mod`, and not in the past."""
    return max(int(time.time()), latest_mod + 1)


def own_guids(project: str, key: str, explicit_id: str | None) -> tuple[str, ...]:
    """The GUIDs a pair of `project` (normalised question `key`) is matched by before any
    comparison: those of its explicit id, or else of its question; the project's own first,
    then the one it had before projects had ids. A note recorded under one of them, with
    the pair's question and answer, is claimed by that pair (see `assign_identities`)."""
    if explicit_id is not None:
        return _guid("id", project, explicit_id), _guid("id", explicit_id)
    return _guid("q", project, key), _guid("q", key)


def is_own_guid(guid: str, project: str, key: str, explicit_id: str | None) -> bool:
    """Whether `guid` is one of `own_guids`: the project's own, as most are, is made first."""
    kind, value = ("id", explicit_id) if explicit_id is not None else ("q", key)
    return guid == _guid(kind, project, value) or guid == _guid(kind, value)


def assign_identities(
    candidates: Sequence[Candidate],
    state: State,
    now: int,
    reserved: Container[str] = frozenset(),
) -> IdentityPlan:
    """Give each candidate the GUID of the note it evolved from, or a new one; a new one is
    never one of `reserved` (the GUIDs of notes this build leaves alone)."""
    records = state.notes
    project = project_id(state, candidates, now)
    claimed: set[str] = set()
    chosen: list[str | None] = [None] * len(candidates)

    for index, cand in enumerate(candidates):
        if cand.explicit_id is not None:
            guid = _explicit_guid(project, cand.explicit_id, records)
            # An id no note has yet (just added to a pair, or its project id lost with
            # the state) first looks for the note the pair already is, by its question.
            if guid in records:
                chosen[index] = guid
                claimed.add(guid)

    # The common case first: an unchanged pair finds its note under the GUID its question
    # gives (in this project, or before projects had ids), with the same question and
    # answer, and needs no further comparison.
    for index, cand in enumerate(candidates):
        if chosen[index] is None and records:  # a first build has none to find
            for natural in (_guid("q", project, cand.key), _guid("q", cand.key)):
                record = records.get(natural)
                if (
                    record is not None
                    and natural not in claimed
                    and record.question == cand.question
                    and record.answer == cand.answer
                ):
                    chosen[index] = natural
                    claimed.add(natural)
                    break

    record_keys = _LazyKeys(records)
    by_question: dict[str, list[NoteRecord]] = {}
    for record in records.values():
        if record.guid not in claimed:
            by_question.setdefault(record_keys[record.guid], []).append(record)
    for index, cand in enumerate(candidates):
        if chosen[index] is not None:
            continue
        pool = [r for r in by_question.get(cand.key, ()) if r.guid not in claimed]
        if pool:
            # Ties go to the smallest GUID, as the state file lists them: the same whatever
            # order the records came in (a rebuild of changed files holds only theirs).
            best = min(pool, key=lambda r: (r.answer != cand.answer, r.file != cand.file, r.guid))
            chosen[index] = best.guid
            claimed.add(best.guid)

    _match_edited_questions(candidates, records, record_keys, chosen, claimed)

    taken = set(records) | claimed
    assignments = []
    for cand, matched in zip(candidates, chosen, strict=True):
        if matched is None and cand.explicit_id is not None:
            matched = _explicit_guid(project, cand.explicit_id, records)
        elif matched is None:
            matched = _fresh_guid(project, cand.key, taken, reserved)
        taken.add(matched)
        previous = records.get(matched)
        renamed = previous is not None and previous.question != cand.question
        renamed = renamed and record_keys[matched] != cand.key
        assignments.append(_assignment(matched, cand, previous, renamed, now))

    removed: list[NoteRecord] = []
    newly_removed: list[str] = []
    for guid, record in sorted(records.items()):
        if guid in claimed:
            continue
        if record.removed:
            removed.append(record)
        else:
            newly_removed.append(guid)
            removed.append(replace(record, removed=True, mod=now))
    return IdentityPlan(tuple(assignments), tuple(removed), tuple(newly_removed), project)


class _LazyKeys(dict[str, str]):
    """Normalised questions of the state's notes, computed only for those that are asked."""

    def __init__(self, records: Mapping[str, NoteRecord]) -> None:
        super().__init__()
        self._records = records

    def __missing__(self, guid: str) -> str:
        key = self[guid] = normalize_question(self._records[guid].question)
        return key


def _assignment(
    guid: str, cand: Candidate, record: NoteRecord | None, renamed: bool, now: int
) -> Assignment:
    if record is None:
        return Assignment(guid, now, Status.NEW)
    if record.digest in (cand.digest, cand.shown_digest) and not record.removed:
        return Assignment(guid, record.mod, Status.UNCHANGED)
    if renamed:
        return Assignment(guid, now, Status.RENAMED, previous_question=record.question)
    return Assignment(guid, now, Status.CHANGED)


def _match_edited_questions(
    candidates: Sequence[Candidate],
    records: Mapping[str, NoteRecord],
    record_keys: Mapping[str, str],
    chosen: list[str | None],
    claimed: set[str],
) -> None:
    open_candidates = [i for i, guid in enumerate(chosen) if guid is None]
    open_records = sorted(
        (r for r in records.values() if r.guid not in claimed), key=attrgetter("guid")
    )
    if not open_candidates or not open_records:
        return
    import difflib  # only when some question found no note of its own

    keys = record_keys
    scores: dict[tuple[int, str], float] = {}
    for index in open_candidates:
        cand = candidates[index]
        matcher = difflib.SequenceMatcher(autojunk=False)
        matcher.set_seq2(cand.key)  # seq2 is the one difflib indexes
        for record in open_records:
            matcher.set_seq1(keys[record.guid])
            # Cheap upper bounds first: most pairs of questions are nowhere near similar.
            if matcher.real_quick_ratio() < _SIMILAR_SAME_ANSWER:
                continue
            if matcher.quick_ratio() < _SIMILAR_SAME_ANSWER:
                continue
            ratio = matcher.ratio()
            threshold = _SIMILAR_SAME_ANSWER if record.answer == cand.answer else _SIMILAR
            if ratio >= threshold:
                # An unchanged answer is strong evidence; let it outweigh a close rival.
                scores[index, record.guid] = ratio + (
                    _CLEAR_MARGIN if record.answer == cand.answer else 0
                )
    for (index, guid), score in sorted(scores.items(), key=lambda item: -item[1]):
        if chosen[index] is not None or guid in claimed:
            continue
        rivals = [
            other
            for (i, g), other in scores.items()
            if (i == index and g != guid and g not in claimed)
            or (g == guid and i != index and chosen[i] is None)
        ]
        if any(score - rival < _CLEAR_MARGIN for rival in rivals):
            continue  # ambiguous: better a new note than two questions merged into one
        chosen[index] = guid
        claimed.add(guid)


def _explicit_guid(project: str, explicit_id: str, records: Mapping[str, NoteRecord]) -> str:
    """The GUID of `<!-- anki-genai-id: ... -->`: the project's own, unless the note was
    recorded before projects had ids."""
    legacy = _guid("id", explicit_id)
    scoped = _guid("id", project, explicit_id)
    return legacy if legacy in records and scoped not in records else scoped


def _fresh_guid(
    project: str, key: str, taken: set[str], reserved: Container[str] = frozenset()
) -> str:
    """A GUID for a new note of `project` from its normalised question `key`."""
    guid = _guid("q", project, key)
    counter = 2
    while guid in taken or guid in reserved:
        # The same question again with another answer: a distinct, still reproducible GUID.
        guid = _guid("q", project, key, str(counter))
        counter += 1
    return guid


def _guid(*parts: str) -> str:
    """A short GUID from `parts`, namespaced so it cannot match another tool's notes."""
    digest = hashlib.sha256("\x1f".join(("anki-genai", *parts)).encode()).digest()
    return base64.urlsafe_b64encode(digest[:9]).decode()


def updated_state(
    candidates: Sequence[Candidate],
    plan: IdentityPlan,
    tombstones: Sequence[NoteRecord],
    note_type_digest: str,
    note_type_mod: int,
) -> State:
    """Return the state to save once the package that matches `plan` is written."""
    notes: dict[str, NoteRecord] = {r.guid: r for r in tombstones}
    for cand, assignment in zip(candidates, plan.assignments, strict=True):
        notes[assignment.guid] = NoteRecord(
            guid=assignment.guid,
            question=cand.question,
            answer=cand.answer,
            digest=cand.digest,
            mod=assignment.mod,
            file=cand.file,
        )
    return State(notes, note_type_digest, note_type_mod, plan.project_id)
