"""Note identity between builds: the state file, stable GUIDs and per-note mod times.

Anki matches an imported note to an existing one by GUID only, and overwrites it only when
the package's `mod` is newer than the note's. So every note keeps the GUID it was first given
and a `mod` that moves only when its content changes. Both live in a state file beside the
sources, committed with them: losing it would make the next build look brand new to Anki.

Matching a pair of the new build to a note of the previous one, in this order:
1. an explicit id in the source (`<!-- anki-genai-id: NAME -->`) always wins;
2. the same question text (compared after folding width, case and spacing); when several
   notes share it, the one with the same answer, then the one in the same file;
3. a question edited a little: among the notes that disappeared, the most similar question
   (similarity >= 0.75, or >= 0.5 when the answer is unchanged), but only when that pairing
   is clearly the best for both sides, so two different questions are never merged;
4. otherwise a new note, whose GUID is derived from its question text.
Notes that disappeared stay in the state as tombstones and keep being packaged with the tag
`anki-genai::removed`, so users can find and delete them in Anki.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from json.encoder import encode_basestring
from pathlib import Path
from typing import IO, Any

from anki_genai.atomic import atomic_write
from anki_genai.errors import StateError
from anki_genai.parse import normalize_question

STATE_FILE_NAME = "anki-genai-state.json"
STATE_FORMAT = "anki-genai state"
STATE_VERSION = 1
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


@dataclass(frozen=True, slots=True)
class Candidate:
    """A pair of the new build, as identity matching sees it."""

    question: str
    answer: str
    digest: str
    file: str
    explicit_id: str | None = None
    key: str = field(default="", repr=False, compare=False)  # the question, normalised

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


def build_timestamp(state: State) -> int:
    """Return a mod time strictly newer than anything the state has sent to Anki."""
    return max(int(time.time()), state.latest_mod + 1)


def assign_identities(candidates: Sequence[Candidate], state: State, now: int) -> IdentityPlan:
    """Give each candidate the GUID of the note it evolved from, or a new one."""
    records = state.notes
    claimed: set[str] = set()
    chosen: list[str | None] = [None] * len(candidates)

    for index, cand in enumerate(candidates):
        if cand.explicit_id is not None:
            guid = _explicit_guid(cand.explicit_id)
            chosen[index] = guid
            claimed.add(guid)

    # The common case first: an unchanged pair finds its note under the GUID its question
    # gives, with the same question and answer, and needs no further comparison.
    for index, cand in enumerate(candidates):
        if chosen[index] is None:
            natural = _guid("q", cand.key)
            record = records.get(natural)
            if (
                record is not None
                and natural not in claimed
                and record.question == cand.question
                and record.answer == cand.answer
            ):
                chosen[index] = natural
                claimed.add(natural)

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
            best = max(pool, key=lambda r: (r.answer == cand.answer, r.file == cand.file))
            chosen[index] = best.guid
            claimed.add(best.guid)

    _match_edited_questions(candidates, records, record_keys, chosen, claimed)

    taken = set(records) | claimed
    assignments = []
    for cand, matched in zip(candidates, chosen, strict=True):
        if matched is None:
            matched = _fresh_guid(cand.key, taken)
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
    return IdentityPlan(tuple(assignments), tuple(removed), tuple(newly_removed))


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
    if record.digest == cand.digest and not record.removed:
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
    open_records = [r for r in records.values() if r.guid not in claimed]
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


def _explicit_guid(explicit_id: str) -> str:
    return _guid("id", explicit_id)


def _fresh_guid(key: str, taken: set[str]) -> str:
    """A GUID for a new note from its normalised question `key`."""
    guid = _guid("q", key)
    counter = 2
    while guid in taken:
        # The same question again with another answer: a distinct, still reproducible GUID.
        guid = _guid("q", key, str(counter))
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
    return State(notes, note_type_digest, note_type_mod)


def drop_tombstones(state: State) -> tuple[State, int]:
    """Forget removed notes (after the user deleted them in Anki); return how many."""
    kept = {guid: r for guid, r in state.notes.items() if not r.removed}
    return replace(state, notes=kept), len(state.notes) - len(kept)


# --- the state file ---------------------------------------------------------------------------


def load_state(path: Path, known: Mapping[str, str] | None = None) -> State:
    """Read the state file at `path`; a missing file is an empty state, a bad one an error.

    Strings equal to one in `known` are that string, not a copy: most of a large state's
    questions and digests are those of cards already in memory.
    """
    known = known or {}
    try:
        with path.open(encoding="utf-8") as handle:
            state = _state_from_lines(handle, known)
    except FileNotFoundError:
        return State()
    except OSError as exc:
        raise StateError(f"{path}: cannot read the state file: {exc.strerror}") from None
    except UnicodeDecodeError:
        state = None  # reported below, as for any damage
    return state if state is not None else _state_from_text(path, known)


_NOTES_START = ', "notes": [\n'  # how the header line, written by state_chunks, ends
_NOTES_END = "]}\n"


def _state_from_lines(lines: Iterable[str], known: Mapping[str, str]) -> State | None:
    """The state, read a line at a time as `state_chunks` writes it; None if it is laid
    out otherwise (edited by hand, say), or damaged: `_state_from_text` then reads it.

    A line at a time, because the whole text of a large state would cost a build tens of
    megabytes more at its peak.
    """
    decode = json.JSONDecoder(object_hook=lambda entry: _note_or_object(entry, known)).decode
    it = iter(lines)
    header_line = next(it, "")
    if not header_line.endswith(_NOTES_START):
        return None
    try:
        header = json.loads(header_line.removesuffix(_NOTES_START) + "}")
        note_type = header["note_type"]
        if header["format"] != STATE_FORMAT or header["version"] != STATE_VERSION:
            return None
        digest, mod = str(note_type["digest"]), int(note_type["mod"])
        notes: dict[str, NoteRecord] = {}
        more = None  # whether the last note's line promised another (a trailing comma)
        for line in it:
            if line == "\n" and more is None:
                continue  # the empty line of a state without notes
            if line == _NOTES_END and not more:
                return State(notes, digest, mod) if next(it, None) is None else None
            more = line.endswith(",\n")
            record = decode(line.removesuffix(",\n"))
            if not isinstance(record, NoteRecord):
                return None
            notes[record.guid] = record
    except (ValueError, KeyError, TypeError):
        return None
    return None  # no end: truncated


def _state_from_text(path: Path, known: Mapping[str, str]) -> State:
    """The state from the whole text of its file, or an error that says what is wrong."""
    restore = (
        "Restore it from version control (git checkout -- FILE) or from the backup in the "
        "output folder. Do not delete it: without it every note would get a new identity "
        "and Anki would duplicate your cards."
    )

    def damaged(exc: Exception) -> StateError:
        problem = (
            f"entry {exc} is missing" if isinstance(exc, KeyError) else "an entry is malformed"
        )
        return StateError(f"{path}: the state file is damaged ({problem}). {restore}")

    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StateError(f"{path}: cannot read the state file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise StateError(f"{path}: the state file is damaged (not UTF-8). {restore}") from None
    try:
        data = json.loads(raw, object_hook=lambda entry: _note_or_object(entry, known))
    except json.JSONDecodeError as exc:
        raise StateError(
            f"{path}:{exc.lineno}: the state file is damaged ({exc.msg}). {restore}"
        ) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise damaged(exc) from None
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise StateError(f"{path}: this is not an anki-genai state file. {restore}")
    version = data.get("version")
    if version != STATE_VERSION:
        raise StateError(
            f"{path}: state file version {version!r} is not supported by this anki-genai "
            f"(it reads version {STATE_VERSION}); upgrade anki-genai."
        )
    try:
        return _state_from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise damaged(exc) from None


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


def _state_from_json(data: Mapping[str, object]) -> State:
    note_type = data["note_type"]
    if not isinstance(note_type, dict):
        raise TypeError("note_type is not an object")
    entries = data["notes"]
    if not isinstance(entries, list):
        raise TypeError("notes is not a list")
    notes = {}
    for record in entries:
        if not isinstance(record, NoteRecord):
            raise KeyError("guid")
        notes[record.guid] = record
    return State(notes, str(note_type["digest"]), int(note_type["mod"]))


def state_chunks(state: State) -> Iterator[str]:
    """The state file's text, in pieces: a header, then one sorted line per note.

    One note per line, so a diff shows exactly the notes that changed; in pieces, so a large
    state is never one string; json's fast encoder, which indent= would switch off.
    """
    header = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "note_type": {"digest": state.note_type_digest, "mod": state.note_type_mod},
    }
    yield json.dumps(header, ensure_ascii=False)[:-1] + ', "notes": [\n'
    for number, guid in enumerate(sorted(state.notes)):
        record = state.notes[guid]
        yield (",\n" if number else "") + _record_json(record)
    yield "\n]}\n"


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


def save_state(state: State, path: Path) -> str:
    """Write the state file atomically (a crash leaves the old file or the new one); return
    the SHA-256 of what was written.

    The text is made a line at a time as it is written and hashed: a large state is never
    held whole in memory.
    """
    digest = hashlib.sha256()

    def write(handle: IO[str]) -> None:
        for chunk in state_chunks(state):
            digest.update(chunk.encode())
            handle.write(chunk)

    atomic_write(path, write)
    return digest.hexdigest()
