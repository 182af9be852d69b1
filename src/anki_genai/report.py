"""How results are printed: the human summary, JSON for scripts, progress on a terminal."""

from __future__ import annotations

import enum
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from anki_genai.build import BuildResult, Collected, FileRead
from anki_genai.errors import AnkiGenaiError, Diagnostic, Severity
from anki_genai.identity import Status
from anki_genai.sources import natural_key
from anki_genai.statefile import NoteRecord, Repair

_MAX_DECK_LINES = 20
# Statuses in the order a summary lists them.
_REPORTED = (Status.NEW, Status.CHANGED, Status.RENAMED, Status.REMOVED, Status.UNCHANGED)


class Verbosity(enum.IntEnum):
    """How much a command prints: `-q`, the default, `-v`."""

    QUIET = 0  # errors only
    NORMAL = 1
    VERBOSE = 2  # also each file read, and timings


def error(exc: AnkiGenaiError) -> None:
    """Print a failure: the problems behind it, then one `Error:` line."""
    for diagnostic in getattr(exc, "diagnostics", ()):
        click.echo(_diagnostic(diagnostic), err=True)
    click.echo(f"{click.style('Error:', fg='red', bold=True)} {exc}", err=True)


def build_result(
    result: BuildResult, *, verbosity: Verbosity, as_json: bool, dry_run: bool
) -> None:
    """Print what a build did: its problems, its plan in a dry run, and a summary."""
    quiet = verbosity is Verbosity.QUIET
    if as_json:
        echo_json(_result_json(result))
        return
    for repair in result.state_repairs:  # even with -q: the user has a file to commit
        click.echo(_repair(repair, written=not dry_run), err=True)
    for diagnostic in result.diagnostics:
        if not quiet or diagnostic.severity is Severity.ERROR:
            click.echo(_diagnostic(diagnostic), err=True)
    if quiet:
        return
    for notice in result.notices:
        click.echo(notice, err=True)
    if dry_run:
        _print_plan(result)
    verb = "Dry run, nothing written:" if dry_run else "Wrote" if result.written else "Up to date:"
    click.echo(f"{verb} {_summary(result)}")
    if result.kept_notes:
        click.echo(
            f"  {plural(result.kept_notes, 'note')} of files that could not be used packaged "
            "as the last build made them: Anki keeps them as they are"
        )
    if result.moved:
        click.echo(
            f"  {plural(result.moved, 'note')} moved to another file, unchanged: Anki keeps "
            "their old tag, Source and deck until their content next changes"
        )
    # Per deck, only the decks something happened to, and not a screenful of them.
    touched = {d: c for d, c in result.deck_counts.items() if c[Status.UNCHANGED] != c.total()}
    if len(result.deck_counts) > 1:
        for deck, counts in sorted(touched.items(), key=_by_deck)[:_MAX_DECK_LINES]:
            click.echo(f"  {deck}: {_counts_text(counts)}")
        if len(touched) > _MAX_DECK_LINES:
            click.echo(f"  … and {len(touched) - _MAX_DECK_LINES} more decks (see --json)")


def check_result(
    collected: Collected, *, verbosity: Verbosity, as_json: bool, strict: bool
) -> None:
    """Print every problem `check` found, then (on stderr) how many of each kind; with
    `-q`, only the problems that fail the check."""
    problems = collected.diagnostics
    if as_json:
        echo_json({"diagnostics": [_diagnostic_json(d) for d in problems]})
        return
    for diagnostic in problems:
        if verbosity > Verbosity.QUIET or strict or diagnostic.severity is Severity.ERROR:
            click.echo(_diagnostic(diagnostic))
    if verbosity is Verbosity.QUIET:
        return
    files = plural(len(collected.files), "file")
    warnings = len(problems) - sum(1 for d in problems if d.severity is Severity.ERROR)
    click.echo(
        f"{files}, {plural(len(collected.cards), 'card')}: "
        f"{plural(len(problems) - warnings, 'error')}, {plural(warnings, 'warning')}",
        err=True,
    )


def echo_json(data: object) -> None:
    """Print `data` as one line of UTF-8 JSON, whatever the terminal's or locale's encoding:
    readable text (not \\u escapes), and never an encoding error under a C or Latin-1 locale."""
    click.echo((json.dumps(data, ensure_ascii=False) + "\n").encode("utf-8"), nl=False)


def preview_result(collected: Collected, page: Path, *, verbosity: Verbosity) -> None:
    """Print the problems met (only errors with `-q`), then where the page went."""
    for diagnostic in collected.diagnostics:
        if verbosity > Verbosity.QUIET or diagnostic.severity is Severity.ERROR:
            click.echo(_diagnostic(diagnostic), err=True)
    if verbosity > Verbosity.QUIET:
        click.echo(f"Wrote {_path(page)}: {plural(len(collected.cards), 'card')}")


def forgotten(
    path: Path, gone: tuple[NoteRecord, ...], *, dry_run: bool, verbosity: Verbosity
) -> None:
    """Print which removed notes the state file no longer keeps (or, in a dry run, would)."""
    if verbosity is Verbosity.QUIET:
        return
    for record in sorted(gone, key=lambda r: (r.file, r.question)):
        click.echo(f"{'would forget' if dry_run else 'forgot'}  {record.file}: {record.question}")
    if dry_run:
        click.echo(f"Dry run, nothing changed: would forget {len(gone)} removed note(s) in {path}.")
    else:
        click.echo(f"Forgot {len(gone)} removed note(s) in {path}.")


def message(text: str, *, verbosity: Verbosity) -> None:
    """Print a note about what is going on (not with `-q`)."""
    if verbosity > Verbosity.QUIET:
        click.echo(text, err=True)


# Colour only on a terminal: click.echo drops the styles in pipes and files, and the
# command line turns them off for NO_COLOR.
_SEVERITY_COLOUR = {Severity.ERROR: "red", Severity.WARNING: "yellow"}


def _by_deck(item: tuple[str, object]) -> tuple[tuple[int, int | str], ...]:
    return natural_key(item[0])


def _diagnostic(diagnostic: Diagnostic) -> str:
    """`path:line: severity: message`, the place bold and the severity in its colour."""
    severity = click.style(
        diagnostic.severity.value, fg=_SEVERITY_COLOUR[diagnostic.severity], bold=True
    )
    return f"{_path(f'{diagnostic.location}:')} {severity}: {diagnostic.message}"


def _repair(repair: Repair, *, written: bool) -> str:
    """One line: what was wrong in the state file, what was kept, and what to do now."""
    if not written:
        outcome = "a build (not a dry run) writes it so"
    elif repair.merge_conflict:
        outcome = f"written resolved: run `git add {repair.location.path}` to mark it resolved"
    else:
        outcome = "written so"
    return f"{_path(f'{repair.location}:')} {repair.message}; {outcome}."


def _path(path: object) -> str:
    return click.style(str(path), bold=True)


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _summary(result: BuildResult) -> str:
    files, notes = plural(result.files, "file"), plural(result.note_count, "note")
    removed = f", {result.removed_notes} removed" if result.removed_notes else ""
    counts = _counts_text(result.counts)
    return f"{_path(result.package_path)}: {files}, {notes}{removed} ({counts})"


def _counts_text(counts: Counter[Status]) -> str:
    always = (Status.NEW, Status.CHANGED, Status.UNCHANGED)
    return ", ".join(f"{counts[s]} {s.value}" for s in _REPORTED if counts[s] or s in always)


def _result_json(result: BuildResult) -> dict[str, object]:
    def counts(c: Counter[Status]) -> dict[str, int]:
        return {s.value: c[s] for s in _REPORTED}

    return {
        "package": str(result.package_path),
        "written": result.written,
        "files": result.files,
        "notes": result.note_count,
        "removed_notes": result.removed_notes,
        "kept_notes": result.kept_notes,
        "failed": result.failed,
        "counts": counts(result.counts),
        "moved": result.moved,
        "decks": {deck: counts(c) for deck, c in sorted(result.deck_counts.items(), key=_by_deck)},
        "renamed": [
            {"source": n.card.source, "from": n.previous_question, "to": n.card.question_text}
            for n in result.changes
            if n.card is not None and n.status is Status.RENAMED
        ],
        "diagnostics": [_diagnostic_json(d) for d in result.diagnostics],
        "notices": list(result.notices),
        "state_repairs": [
            {"path": str(r.location.path), "line": r.location.line, "message": r.message}
            for r in result.state_repairs
        ],
    }


def _diagnostic_json(diagnostic: Diagnostic) -> dict[str, object]:
    return {
        "path": str(diagnostic.location.path),
        "line": diagnostic.location.line,
        "severity": diagnostic.severity.value,
        "message": diagnostic.message,
    }


def _print_plan(result: BuildResult) -> None:
    for note in result.changes:
        if note.card is None:
            click.echo(f"removed    {note.previous_question}")
        elif note.status is Status.RENAMED:
            change = f"{note.previous_question} -> {note.card.question_text}"
            click.echo(f"renamed    {note.card.source}: {change}")
        else:
            click.echo(f"{note.status.value:<10} {note.card.source}: {note.card.question_text}")


class _FileProgress:
    """Hears of each file read: lists them with `-v`, draws a bar on a terminal."""

    def __init__(self, verbosity: Verbosity, bar: bool) -> None:
        self._verbose = verbosity is Verbosity.VERBOSE
        self._with_bar = bar
        self._bar: Any = None
        self._files: Sequence[tuple[Path, int]] = ()
        self._read: dict[Path, FileRead] = {}
        self._listed = 0  # files listed so far, in source order
        self.started = time.perf_counter()
        self.finished_reading: float | None = None

    def begin(self, files: Sequence[tuple[Path, int]]) -> None:
        self._files = files
        if self._with_bar and len(files) >= 20:
            self._bar = click.progressbar(length=len(files), label="Reading", file=sys.stderr)
            self._bar.__enter__()

    def file_read(self, file: FileRead) -> None:
        self._read[file.path] = file
        if self._bar is not None:
            self._bar.update(1)
        if len(self._read) == len(self._files):
            self.finished_reading = time.perf_counter()
            self.close()
        if self._verbose:
            # In source order: files from the cache are heard of first.
            while self._listed < len(self._files) and self._files[self._listed][0] in self._read:
                click.echo(_file_line(self._read[self._files[self._listed][0]]), err=True)
                self._listed += 1

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def timings(self) -> str:
        """`-v`'s last line: how long reading took, and the whole command."""
        now = time.perf_counter()
        total = f"{now - self.started:.2f} s in all."
        if not self._files:  # a build whose inputs are all as they were at the last one
            return f"Nothing to read: unchanged since the last build; {total}"
        size = sum(f.size for f in self._read.values())
        cached = sum(1 for f in self._read.values() if f.seconds is None and f.cards is not None)
        reading = (self.finished_reading or now) - self.started
        from_cache = f", {cached} from the cache" if cached else ""
        return (
            f"Read {plural(len(self._read), 'file')} ({_size(size)}{from_cache}) in "
            f"{reading:.2f} s; {total}"
        )


def _file_line(file: FileRead) -> str:
    if file.cards is None:
        return f"{_path(file.path)}: cannot be read (see the error)"
    parts = [plural(file.cards, "card"), _size(file.size)]
    if file.layout is not None:  # first: what a file gave is read with the layout it was read in
        parts.insert(0, file.layout)
    parts.append("from the cache" if file.seconds is None else f"{file.seconds:.2f} s")
    return f"{_path(file.path)}: {', '.join(parts)}"


def _size(size: int) -> str:
    if size < 1000:
        return plural(size, "byte")
    if size < 1_000_000:
        return f"{size / 1000:.1f} KB"
    return f"{size / 1_000_000:.1f} MB"


@contextmanager
def progress(verbosity: Verbosity, *, bar: bool = True) -> Iterator[_FileProgress]:
    """Follow the files a command reads: each listed with `-v` (and the time taken at the
    end), a progress bar on a terminal; never a bar in pipes or CI logs, or with `-q`."""
    shown = bar and verbosity > Verbosity.QUIET and stderr_is_terminal()
    files = _FileProgress(verbosity, shown)
    try:
        yield files
    finally:
        files.close()
    if verbosity is Verbosity.VERBOSE:
        click.echo(files.timings(), err=True)


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()
