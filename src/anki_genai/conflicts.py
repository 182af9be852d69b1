"""Git's conflict markers in a text file: the two versions they hold, told apart.

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
neither.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

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
