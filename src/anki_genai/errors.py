"""The tool's own errors and diagnostics; only the CLI prints them."""

from __future__ import annotations

import enum
import errno
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3


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


class HeldFileError(SourceError):
    """A source file that cannot be built as it stands: its notes stay as the last build
    made them while the other files build, and the build fails."""


class FrontMatterError(HeldFileError):
    """A source file's front matter cannot be read: its settings (deck, tags, layout) are
    unknown."""


class UnfinishedMergeError(HeldFileError):
    """A source file still holds git's conflict markers: neither side is the note yet."""


class NoCardsError(AnkiGenaiError):
    """The sources give no card at all: most likely a layout the parser did not find."""

    def __init__(
        self,
        sources: tuple[Path, ...],
        files: int,
        diagnostics: tuple[Diagnostic, ...] = (),
        built: bool = True,  # `check` writes nothing anyway, and does not say so
        unreadable: int = 0,  # of the files, those that could not be read
    ) -> None:
        named = " ".join(str(s) for s in sources)
        written = "; nothing written" if built else ""
        counted = f"{files} file{'' if files == 1 else 's'}"
        if files and unreadable == files:  # no layout to blame: none was parsed
            which = "the file could not" if files == 1 else f"none of the {counted} could"
            message = f"{named}: {which} be read (see above){written}"
        else:
            message = (
                f"{named}: no cards in {counted}{written}. `anki-genai check -v {named}` "
                "shows the layout each file was read in; mark questions and answers "
                "(**题目：** … **答案：** …, or Q: … A: …), or choose one with --layout"
            )
        super().__init__(message)
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


class RepeatedGuidError(StateError):
    """Two different questions under one GUID in the state file: which one is that note
    in Anki cannot be told, so nothing restores or repairs it on its own."""


class StrictModeError(AnkiGenaiError):
    """`--strict` was given and the sources have problems."""

    def __init__(self, diagnostics: tuple[Diagnostic, ...]) -> None:
        super().__init__(
            f"{len(diagnostics)} problem(s) in the sources and --strict was given; nothing written"
        )
        self.diagnostics = diagnostics


class WriteError(AnkiGenaiError):
    """A file cannot be written: the disk, a limit, a permission or a file stands in the way."""


# What a write failure means, by errno; the advice that fits it, when the cause decides it.
_SPACE_ADVICE = "free some space on it and build again"
_WRITE_FAILURES = {
    errno.ENOSPC: ("the disk is full", _SPACE_ADVICE),
    errno.EDQUOT: ("the disk quota is used up", _SPACE_ADVICE),
    errno.EFBIG: (
        "the file-size limit is reached",
        "raise the limit (ulimit -f) and build again",
    ),
    errno.EROFS: ("the file system is read-only", None),
    errno.EACCES: ("permission denied", None),
    errno.EPERM: ("permission denied", None),
}
# sqlite3 reports a full disk as SQLITE_FULL, read-only as SQLITE_READONLY; any other failed
# write (EFBIG among them) only as SQLITE_IOERR.
_SQLITE_ERRNO = {13: errno.ENOSPC, 8: errno.EROFS, 3: errno.EACCES}
_SQLITE_IOERR = 10


def write_error(path: Path, exc: OSError | sqlite3.Error, what: str, advice: str) -> WriteError:
    """The one line to show when writing `what` to `path` failed with `exc`.

    `advice` says what to do when the cause does not (a full disk says: free some space).
    A file where a folder should be is named: that is the file in the way.
    """
    blocker = _file_in_the_way(path)
    if blocker is not None:
        return WriteError(
            f"{blocker}: is a file, not a folder, so {path.name} cannot be written in it; "
            f"move it away, or {advice}"
        )
    if path.is_dir():
        return WriteError(f"{path}: is a folder, where {what} should be; move it away, or {advice}")
    code = exc.errno if isinstance(exc, OSError) else _sqlite_errno(exc)
    reason, own_advice = _WRITE_FAILURES.get(code, (None, None)) if code else (None, None)
    if reason is None:
        reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
    return WriteError(f"{path}: cannot write {what}: {reason}; {own_advice or advice}")


def _sqlite_errno(exc: sqlite3.Error) -> int | None:
    code: int | None = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return None
    if code & 0xFF == _SQLITE_IOERR and _file_size_limit() is not None:
        return errno.EFBIG  # the likeliest cause, with a limit set (sqlite cannot tell)
    return _SQLITE_ERRNO.get(code & 0xFF)


def _file_size_limit() -> int | None:
    """The file-size limit (`ulimit -f`) this process runs under, if any."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest ancestor of `path` that exists, if it is not a folder."""
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            return None if parent.is_dir() else parent
    return None


def os_error(exc: OSError) -> AnkiGenaiError:
    """An OS error no stage expected, as one line: the file, what went wrong, what to do."""
    reason, advice = _WRITE_FAILURES.get(exc.errno or 0, (exc.strerror or str(exc), None))
    where = f"{exc.filename}: " if exc.filename is not None else ""
    return AnkiGenaiError(f"{where}{reason}" + (f"; {advice}" if advice else ""))
