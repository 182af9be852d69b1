"""The tool's own errors and diagnostics; only the CLI prints them."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """A place in a source file, as a user's editor would show it."""

    path: Path
    line: int  # 1-based; markdown-it's Token.map is 0-based and end-exclusive

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


class Severity(enum.Enum):
    ERROR = "error"  # the pair cannot become a card
    WARNING = "warning"  # the card builds but may disappoint


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in the sources, reported as `path:line: severity: message`."""

    location: SourceLocation
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        return f"{self.location}: {self.severity.value}: {self.message}"

    def to_list(self) -> list[object]:
        """A JSON-friendly form, for the cache."""
        return [str(self.location.path), self.location.line, self.message, self.severity.value]

    @classmethod
    def from_list(cls, data: list[Any]) -> Diagnostic:
        path, line, message, severity = data
        return cls(SourceLocation(Path(path), int(line)), str(message), Severity(severity))


class AnkiGenaiError(Exception):
    """A problem the user can fix; the CLI prints it without a traceback."""

    exit_code = 1


class SourceError(AnkiGenaiError):
    """A source file or folder cannot be read or used."""

    def __init__(self, message: str, location: SourceLocation | Path) -> None:
        super().__init__(message)
        self.message = message
        self.location = location if isinstance(location, SourceLocation) else None
        self.path = location.path if isinstance(location, SourceLocation) else location

    def __str__(self) -> str:
        return f"{self.location or self.path}: {self.message}"

    def diagnostic(self) -> Diagnostic:
        """This problem as one line of a report (line 1 when it concerns the whole file)."""
        return Diagnostic(self.location or SourceLocation(self.path, 1), self.message)


class FrontMatterError(SourceError):
    """A source file's front matter cannot be read: its settings (deck, tags, layout) are
    unknown, so its notes stay as the last build made them while the other files build."""


class NoCardsError(AnkiGenaiError):
    """The sources give no card at all: most likely a layout the parser did not find."""

    def __init__(
        self, sources: tuple[Path, ...], files: int, diagnostics: tuple[Diagnostic, ...] = ()
    ) -> None:
        named = " ".join(str(s) for s in sources)
        super().__init__(
            f"{named}: no cards in {files} file{'' if files == 1 else 's'}; nothing written. "
            f"`anki-genai check -v {named}` shows the layout each file was read in; mark "
            "questions and answers (**题目：** … **答案：** …, or Q: … A: …), or choose one "
            "with --layout"
        )
        self.diagnostics = diagnostics


class UnreadableSourcesError(AnkiGenaiError):
    """Some source files cannot be read, and the user did not ask to skip them."""

    def __init__(self, problems: tuple[SourceError, ...]) -> None:
        super().__init__(
            f"{len(problems)} source file(s) cannot be read; nothing written "
            "(fix them, or pass --skip-unreadable to build the others)"
        )
        self.diagnostics = tuple(p.diagnostic() for p in problems)


class ConfigError(AnkiGenaiError):
    """The configuration file cannot be used."""


class CacheChangedError(AnkiGenaiError):
    """The build cache changed under a running build."""


class StateError(AnkiGenaiError):
    """The state file that keeps note identities is unreadable or foreign."""


class StrictModeError(AnkiGenaiError):
    """`--strict` was given and the sources have problems."""

    def __init__(self, diagnostics: tuple[Diagnostic, ...]) -> None:
        super().__init__(
            f"{len(diagnostics)} problem(s) in the sources and --strict was given; nothing written"
        )
        self.diagnostics = diagnostics
