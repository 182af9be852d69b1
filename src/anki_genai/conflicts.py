"""Git's conflict markers in the state file: the two versions they hold, told apart and
merged.

`git merge` leaves a file it could not merge with both versions of each conflicting part:

    <<<<<<< HEAD
    (our lines)
    ||||||| base          (only with merge.conflictStyle diff3 or zdiff3)
    (the common ancestor's lines)
    =======
    (their lines)
    >>>>>>> branch

The lines outside the markers belong to both versions, so each version is rebuilt whole:
the lines around, plus its own side of every conflict. The ancestor's lines belong to
neither. Read as two states, the versions merge note by note: every note of either, and of
a note on both, the record changed last, which is the one Anki holds if both were imported.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from anki_genai.errors import SourceLocation
from anki_genai.staterecords import Repair, State

# A numbered line: (1-based line number in the conflicted file, its text).
NumberedLine = tuple[int, str]


@dataclass(frozen=True, slots=True)
class ConflictSides:
    """Both versions of a conflicted file, each line with its number in that file."""

    ours: tuple[NumberedLine, ...]
    theirs: tuple[NumberedLine, ...]
    first_line: int  # where the first conflict begins
    conflicts: int  # how many conflicting parts the file has


class ConflictMarkerError(ValueError):
    """The conflict markers in a file do not pair up, so its two versions are unknown."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(problem)
        self.line = line


class _Part(enum.Enum):
    BOTH = "both"
    OURS = "ours"
    BASE = "base"
    THEIRS = "theirs"


# Each marker, and which part of a conflict it opens; git writes them 7 characters long.
_OPENS = (("<<<<<<<", _Part.OURS), ("|||||||", _Part.BASE), ("=======", _Part.THEIRS))
_CLOSE = ">>>>>>>"
# Which part each marker may follow; anything else means the markers do not pair up.
_AFTER = {
    _Part.OURS: (_Part.BOTH,),
    _Part.BASE: (_Part.OURS,),
    _Part.THEIRS: (_Part.OURS, _Part.BASE),
}


def has_conflict_marker(line: str) -> bool:
    """Whether `line` is one of git's conflict markers."""
    return line[:1] in "<|=>" and _marker(line) is not None


def split_conflict(lines: Sequence[str]) -> ConflictSides | None:
    """Both versions of a file whose `lines` hold conflict markers; None when none does.

    Markers that do not pair up raise ConflictMarkerError with the line where it shows.
    """
    ours: list[NumberedLine] = []
    theirs: list[NumberedLine] = []
    part, first_line, conflicts, opened = _Part.BOTH, 0, 0, 0
    for number, line in enumerate(lines, 1):
        marker = _marker(line)
        if marker is None:
            if part in (_Part.BOTH, _Part.OURS):
                ours.append((number, line))
            if part in (_Part.BOTH, _Part.THEIRS):
                theirs.append((number, line))
            continue
        if marker is _Part.BOTH:  # the closing marker
            if part is not _Part.THEIRS:
                raise ConflictMarkerError(number, f"{_CLOSE} without its =======")
            part = _Part.BOTH
            continue
        if part not in _AFTER[marker]:
            raise ConflictMarkerError(number, f"{line[:7]} out of place")
        if marker is _Part.OURS:
            conflicts += 1
            opened = number
            first_line = first_line or number
        part = marker
    if part is not _Part.BOTH:
        raise ConflictMarkerError(opened, "a conflict begins here and never ends")
    if not conflicts:
        return None
    return ConflictSides(tuple(ours), tuple(theirs), first_line, conflicts)


def _marker(line: str) -> _Part | None:
    """The part a marker line opens (BOTH for the closing one), None for other lines."""
    if line.startswith(_CLOSE):
        return _Part.BOTH
    for start, part in _OPENS:
        # "=======" is the whole line; the others may carry a label ("<<<<<<< HEAD").
        if line.startswith(start) and (part is not _Part.THEIRS or line.strip() == start):
            return part
    return None


def merge_sides(ours: State, theirs: State, where: SourceLocation, conflicts: int) -> State:
    """The state both versions hold together, with a repair saying so at `where`."""
    notes = dict(ours.notes)
    differing = 0
    for guid, record in theirs.notes.items():
        mine = notes.get(guid)
        if mine is None:
            notes[guid] = record
        elif mine != record:
            differing += 1
            if record.mod > mine.mod:  # on a tie, ours: the branch being merged into
                notes[guid] = record
    later = theirs if theirs.note_type_mod > ours.note_type_mod else ours
    resolved = Repair(
        where,
        f"resolved git's merge conflict ({conflicts} {'part' if conflicts == 1 else 'parts'}): "
        f"kept the notes of both sides and, of the {differing} on both that differ, the "
        "record changed last",
        merge_conflict=True,
    )
    return State(
        notes,
        later.note_type_digest,
        later.note_type_mod,
        ours.project_id or theirs.project_id,  # both have one unless the project is new
        tuple(dict.fromkeys((*ours.repairs, *theirs.repairs, resolved))),
    )
