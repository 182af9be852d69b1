"""How results are printed: the human summary, JSON for scripts, progress on a terminal."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from anki_genai.build import BuildResult, Collected
from anki_genai.errors import AnkiGenaiError, Diagnostic, Severity
from anki_genai.identity import Status

_MAX_DECK_LINES = 20
# Statuses in the order a summary lists them.
_REPORTED = (Status.NEW, Status.CHANGED, Status.RENAMED, Status.REMOVED, Status.UNCHANGED)


def error(exc: AnkiGenaiError) -> None:
    """Print a failure: the problems behind it, then one `Error:` line."""
    for diagnostic in getattr(exc, "diagnostics", ()):
        click.echo(str(diagnostic), err=True)
    click.echo(f"Error: {exc}", err=True)


def build_result(result: BuildResult, *, quiet: bool, as_json: bool, dry_run: bool) -> None:
    """Print what a build did: its problems, its plan in a dry run, and a summary."""
    if as_json:
        echo_json(_result_json(result))
        return
    for diagnostic in result.diagnostics:
        if not quiet or diagnostic.severity is Severity.ERROR:
            click.echo(str(diagnostic), err=True)
    if quiet:
        return
    if dry_run:
        _print_plan(result)
    verb = "Dry run, nothing written:" if dry_run else "Wrote" if result.written else "Up to date:"
    click.echo(f"{verb} {_summary(result)}")
    # Per deck, only the decks something happened to, and not a screenful of them.
    touched = {d: c for d, c in result.deck_counts.items() if c[Status.UNCHANGED] != c.total()}
    if len(result.deck_counts) > 1:
        for deck, counts in sorted(touched.items())[:_MAX_DECK_LINES]:
            click.echo(f"  {deck}: {_counts_text(counts)}")
        if len(touched) > _MAX_DECK_LINES:
            click.echo(f"  … and {len(touched) - _MAX_DECK_LINES} more decks (see --json)")


def check_result(collected: Collected, *, as_json: bool) -> None:
    """Print every problem `check` found, then (on stderr) how many of each kind."""
    problems = collected.diagnostics
    if as_json:
        echo_json({"diagnostics": [_diagnostic_json(d) for d in problems]})
        return
    for diagnostic in problems:
        click.echo(str(diagnostic))
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


def diagnostics(problems: tuple[Diagnostic, ...]) -> None:
    for diagnostic in problems:
        click.echo(str(diagnostic), err=True)


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _summary(result: BuildResult) -> str:
    files, notes = plural(result.files, "file"), plural(result.note_count, "note")
    return f"{result.package_path}: {files}, {notes} ({_counts_text(result.counts)})"


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
        "counts": counts(result.counts),
        "decks": {deck: counts(c) for deck, c in sorted(result.deck_counts.items())},
        "renamed": [
            {"source": n.card.source, "from": n.previous_question, "to": n.card.question_text}
            for n in result.changes
            if n.card is not None and n.status is Status.RENAMED
        ],
        "diagnostics": [_diagnostic_json(d) for d in result.diagnostics],
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


@contextmanager
def progress(silent: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on a terminal, for builds of many files; never in pipes or CI logs."""
    if silent or not stderr_is_terminal():
        yield None
        return
    bar: Any = None

    def advance(done: int, total: int) -> None:
        nonlocal bar
        if bar is None and total >= 20:
            bar = click.progressbar(length=total, label="Reading", file=sys.stderr)
            bar.__enter__()
        if bar is not None:
            bar.update(done - bar.pos)  # cached files count as done

    try:
        yield advance
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()
