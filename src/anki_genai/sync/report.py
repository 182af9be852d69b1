"""How `pull` and `push` results are printed: results on stdout, the summary on stderr."""

from __future__ import annotations

import difflib
import textwrap

import click

from anki_genai.errors import Severity
from anki_genai.report import Verbosity
from anki_genai.sync import htmlmap
from anki_genai.sync.pull import FieldChange, Outcome, PulledNote, PullResult
from anki_genai.sync.push import PushResult


def report_pull(result: PullResult, *, verbosity: Verbosity = Verbosity.NORMAL) -> None:
    """The notes found and what became of them; with -q only those that fail the pull."""
    for note in result.notes:
        if verbosity > Verbosity.QUIET or note.outcome is not Outcome.EDIT:
            click.echo(_pulled(note, result.applied))
    if verbosity is Verbosity.QUIET:
        return
    counts = {o: sum(1 for n in result.notes if n.outcome is o) for o in Outcome}
    parts = [
        _plural(counts[Outcome.EDIT], "edit") + (" written" if result.applied else " to apply"),
        _plural(counts[Outcome.UNMAPPABLE], "edit") + " to make by hand",
        _plural(counts[Outcome.CONFLICT], "conflict"),
    ]
    found = f"{_plural(result.found, 'note')} of these sources in {result.export}"
    click.echo(f"{found}: {', '.join(parts)}", err=True)
    if result.applied:
        for path in result.written:
            click.echo(f"Wrote {path}", err=True)
        if result.written and result.state_path is not None:
            click.echo(
                f"Recorded in {result.state_path}: the next build sends these notes as Anki "
                "has them, and Anki keeps them as they are",
                err=True,
            )
    elif counts[Outcome.EDIT]:
        click.echo("Nothing written; run again with --apply to write the edits.", err=True)


def _pulled(note: PulledNote, applied: bool) -> str:
    names = " and ".join(c.name.lower() for c in note.fields)
    head = f"{note.location}: {note.question}"
    if note.outcome is Outcome.EDIT:
        verb = "written to the Markdown" if applied else "edited in Anki"
        return f"{head}\n  {names} {verb}:\n{_indent(note.diff)}"
    if note.outcome is Outcome.UNMAPPABLE:
        lines = [f"{head}", f"  {names} edited in Anki, not written back: {note.reason}"]
        for change in note.fields:
            lines.append(f"  {change.name} in Anki, against the last build:")
            lines.append(_indent(_text_diff(change.sent or change.markdown, change.anki)))
        for name, markdown in note.suggestions:
            lines.append(f"  suggested Markdown for the {name.lower()} (check it, then paste it):")
            lines.append(_indent(markdown + "\n", "    "))
        return "\n".join(lines)
    lines = [f"{head}", f"  conflict: {names} {note.reason}; neither was overwritten"]
    for change in note.fields:
        base = change.sent
        for side, text in (("in Anki", change.anki), ("in the Markdown", change.markdown)):
            lines.append(f"  {change.name} {side}:")
            lines.append(
                _indent(_text_diff(base, text) if base is not None else _as_text(text) + "\n")
            )
    return "\n".join(lines)


def _as_text(field_html: str) -> str:
    return htmlmap.plain_text(field_html)


def _text_diff(before: str, after: str) -> str:
    lines = list(
        difflib.unified_diff(
            _as_text(before).splitlines(),
            _as_text(after).splitlines(),
            "last build",
            "now",
            n=1,
            lineterm="",
        )
    )
    return "\n".join(lines) + "\n" if lines else "(the same text; only its formatting differs)\n"


def _indent(text: str, prefix: str = "    ") -> str:
    return textwrap.indent(text, prefix).rstrip("\n")


def report_push(result: PushResult, *, verbosity: Verbosity = Verbosity.NORMAL) -> None:
    """What the push did (or would do); with -q only the build's errors."""
    plan, dry = result.plan, result.dry_run
    for diagnostic in result.build.diagnostics if result.build is not None else ():
        if verbosity > Verbosity.QUIET or diagnostic.severity is Severity.ERROR:
            click.echo(str(diagnostic), err=True)
    if verbosity is Verbosity.QUIET:
        return
    if result.backup is not None:
        click.echo(f"Backed up {result.collection} to {result.backup}")
    counts = result.imported
    package = result.build.package_path if result.build is not None else "the build"
    click.echo(
        f"{'Would import' if dry else 'Imported'} {package}: {counts.new} new, "
        f"{counts.updated} updated, {counts.unchanged} unchanged"
        + (f", {counts.conflicting} conflicting" if counts.conflicting else "")
    )
    for deletion in plan.deletions:
        click.echo(f"{'would delete' if dry else 'deleted':<12} {deletion.question}")
    for move in plan.moves:
        decks = ", ".join(sorted(set(move.from_decks) - {move.to_deck}))
        verb = "would move" if dry else "moved"
        click.echo(f"{verb:<12} {move.location}: {move.question}: {decks} -> {move.to_deck}")
    for retag in plan.retags:
        before, after = " ".join(retag.tags_before), " ".join(retag.update.tags)
        verb = "would retag" if dry else "retagged"
        click.echo(
            f"{verb:<12} {retag.location}: {retag.question}: tags {before} -> {after}; "
            "Context and Source updated"
        )
    summary = (
        f"{_plural(len(plan.deletions), 'note')} deleted, {_plural(len(plan.moves), 'note')} "
        f"moved, {_plural(len(plan.retags), 'note')} retagged"
    )
    if dry:
        click.echo(f"Dry run, nothing changed: {summary}", err=True)
        return
    click.echo(f"{result.collection}: {summary}", err=True)
    if result.forgotten:
        forgotten = _plural(result.forgotten, "removed note")
        click.echo(f"Forgot {forgotten} in the state file", err=True)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


__all__ = ["FieldChange", "report_pull", "report_push"]
