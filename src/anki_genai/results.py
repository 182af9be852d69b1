"""What a build, check or preview gives back, and what it tells its progress on the way.

Plain data shared by `build` and `rebuild` (the rebuild that matches only changed files).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from anki_genai.cache import FileResult
from anki_genai.cards import Card
from anki_genai.errors import Diagnostic
from anki_genai.identity import Status
from anki_genai.plan import PlannedNote
from anki_genai.sources import Scope
from anki_genai.staterecords import Repair


@dataclass(frozen=True, slots=True)
class Collected:
    """The cards of every source file, and every problem met on the way."""

    cards: tuple[Card, ...]
    diagnostics: tuple[Diagnostic, ...]
    files: tuple[Path, ...]
    root: Path  # the folder the state file lives in
    scope: Scope  # the files whose notes this build speaks for
    failed: bool = False  # a file could not be used, unasked: the build exits 1
    # Each file's cards before duplicates were merged (None: unreadable), and what merging
    # them found: what the next build's record of each file is made of.
    results: tuple[FileResult | None, ...] = ()
    merged: tuple[Diagnostic, ...] = ()

    @property
    def unreadable(self) -> int:
        """How many of the files could not be read."""
        return sum(r is None for r in self.results)


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What a build did (or, in a dry run, would do)."""

    package_path: Path
    state_path: Path
    files: int
    changes: tuple[PlannedNote, ...]  # new, changed, renamed and removed notes; the rest counted
    diagnostics: tuple[Diagnostic, ...]
    written: bool
    counts: Counter[Status] = field(default_factory=Counter)
    note_count: int = 0  # notes from the sources (removed ones not counted)
    deck_counts: dict[str, Counter[Status]] = field(default_factory=dict)
    moved: int = 0  # unchanged notes now in another file
    removed_notes: int = 0  # removed notes the package still carries, tagged as removed
    kept_notes: int = 0  # notes of files that could not be used, packaged as last built
    failed: bool = False  # a file could not be used (its notes kept): exit code 1
    notices: tuple[str, ...] = ()  # what the build did about a lost state file
    # What reading the state file set right (a merge conflict, a repeated GUID); written so.
    state_repairs: tuple[Repair, ...] = ()

    def summary(self) -> dict[str, object]:
        """What a later unchanged rebuild reports again without redoing the work."""
        return {
            "files": self.files,
            "notes": self.note_count,
            "removed_notes": self.removed_notes,
            "kept_notes": self.kept_notes,
            "failed": self.failed,
            "decks": {
                deck: sum(c.values()) - c[Status.REMOVED] for deck, c in self.deck_counts.items()
            },
            "diagnostics": [d.to_list() for d in self.diagnostics],
        }

    @classmethod
    def unchanged(
        cls, package_path: Path, state_path: Path, summary: dict[str, Any]
    ) -> BuildResult:
        """The result of a rebuild whose inputs are exactly those of the last build."""
        decks = {
            str(deck): Counter({Status.UNCHANGED: int(n)}) for deck, n in summary["decks"].items()
        }
        return cls(
            package_path,
            state_path,
            int(summary["files"]),
            (),
            tuple(Diagnostic.from_list(d) for d in summary["diagnostics"]),
            False,
            Counter({Status.UNCHANGED: int(summary["notes"])}),
            int(summary["notes"]),
            decks,
            removed_notes=int(summary.get("removed_notes", 0)),
            kept_notes=int(summary.get("kept_notes", 0)),
            failed=bool(summary.get("failed", False)),
        )


@dataclass(frozen=True, slots=True)
class FileRead:
    """One source file read, for progress and `-v`: what it yielded and what it took."""

    path: Path
    size: int  # bytes
    cards: int | None  # None: the file cannot be read or decoded
    seconds: float | None  # None: its cards came from the cache (or it was never parsed)
    layout: str | None = None  # the layout the file was read in (found, or forced)


class Progress(Protocol):
    """Told about each source file as a build, check or preview gets through them."""

    def begin(self, files: Sequence[tuple[Path, int]]) -> None:
        """Every source file, in order, with its size in bytes; before any is read."""

    def file_read(self, file: FileRead) -> None:
        """One more file is done (from the cache ones come first, in no promised order)."""
