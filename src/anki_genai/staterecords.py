"""What the state file holds: each note's record, the state as a whole, what reading it
set right. Plain data, read and written by `statefile`."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from anki_genai.errors import SourceLocation


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
class Repair:
    """Something wrong in the state file that reading set right; the next save writes it so."""

    location: SourceLocation
    message: str
    merge_conflict: bool = False  # git's markers: once written, the user `git add`s the file

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


@dataclass(frozen=True, slots=True)
class State:
    """Every note the previous builds made, the note type's last change, and the project's
    id, from which new notes' GUIDs are made (empty until the first build makes one)."""

    notes: Mapping[str, NoteRecord] = field(default_factory=dict)
    note_type_digest: str = ""
    note_type_mod: int = 0
    project_id: str = ""
    # What reading set right: not part of what the state says, but it must be written.
    repairs: tuple[Repair, ...] = field(default=(), compare=False)

    @property
    def latest_mod(self) -> int:
        return max([self.note_type_mod, *(n.mod for n in self.notes.values())])


def drop_tombstones(state: State) -> tuple[State, int]:
    """Forget removed notes (after the user deleted them in Anki); return how many."""
    kept = {guid: r for guid, r in state.notes.items() if not r.removed}
    return replace(state, notes=kept), len(state.notes) - len(kept)


def legacy_project_id(records: Mapping[str, NoteRecord], note_type_mod: int) -> str:
    """The project id of a state written before there were ids ("" without notes).

    Made from what every branch of the project shares, the oldest note and the note type's
    last change, so two branches that upgrade give the same id and their state files merge.
    """
    if not records:
        return ""
    oldest = min(records.values(), key=lambda r: (r.mod, r.guid))
    seed = f"anki-genai project\x1f{note_type_mod}\x1f{oldest.guid}"
    return hashlib.sha256(seed.encode()).hexdigest()[:16]
