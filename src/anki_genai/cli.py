"""The command line: parses options, calls the library, reports once.

Exit codes: 0 success (a build that skipped broken pairs still succeeds, and says so);
1 the build failed or `--strict` found problems; 2 the command line itself is wrong.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from anki_genai import __version__, identity
from anki_genai.build import BuildOptions, BuildResult, build, source_root
from anki_genai.errors import AnkiGenaiError
from anki_genai.identity import Status
from anki_genai.parse import Layout, ParseOptions

T = TypeVar("T")

_SOURCES = click.argument("sources", nargs=-1, type=click.Path(exists=True, path_type=Path))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="anki-genai")
def main() -> None:
    """Turn Markdown question/answer notes into Anki decks that re-import safely."""


@main.command("build")
@_SOURCES
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("build"),
    show_default=True,
    help="Folder for the package, or a file name ending in .apkg.",
)
@click.option("--deck", help="Put every note into this deck instead of one deck per file.")
@click.option(
    "--strict", is_flag=True, help="Fail, writing nothing, if the sources have any problem."
)
@click.option("--dry-run", is_flag=True, help="Show what the build would do; write nothing.")
@click.option(
    "--encoding",
    default="utf-8",
    show_default=True,
    help="Encoding of the Markdown files, e.g. gbk for older Chinese documents.",
)
@click.option(
    "--skip-unreadable",
    is_flag=True,
    help="Build the other files when some cannot be read or decoded (they are reported).",
)
@click.option(
    "--layout",
    type=click.Choice([layout.value for layout in Layout]),
    default=Layout.MARKERS.value,
    show_default=True,
    help="markers: 题目/答案 style markers; headings: each heading is a question and its "
    "section the answer; bold: each **Q1：…** paragraph is a question.",
)
@click.option(
    "--question-word",
    "question_words",
    multiple=True,
    help="An extra word that marks a question (repeatable), e.g. 面试题.",
)
@click.option(
    "--answer-word",
    "answer_words",
    multiple=True,
    help="An extra word that marks an answer (repeatable), e.g. 面试题剖析.",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait while another build of the same sources is running.",
)
def build_command(
    sources: tuple[Path, ...],
    output: Path,
    deck: str | None,
    strict: bool,
    dry_run: bool,
    encoding: str,
    skip_unreadable: bool,
    layout: str,
    question_words: tuple[str, ...],
    answer_words: tuple[str, ...],
    wait: float,
) -> None:
    """Build an Anki package from Markdown SOURCES (files or folders; default: source/)."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise click.BadParameter(
            f"unknown encoding {encoding!r}", param_hint="--encoding"
        ) from None
    options = BuildOptions(
        sources or (Path("source"),),
        output,
        deck,
        strict,
        dry_run,
        encoding=encoding,
        skip_unreadable=skip_unreadable,
        lock_timeout=wait,
        parse=ParseOptions(Layout(layout), question_words, answer_words),
    )

    def waiting() -> None:
        click.echo(
            "Another build of these sources is running; waiting for it to finish...", err=True
        )

    result = _run(lambda: build(options, on_wait=waiting))
    for diagnostic in result.diagnostics:
        click.echo(str(diagnostic), err=True)
    if dry_run:
        _print_plan(result)
        click.echo(f"Dry run, nothing written: {_summary(result)}")
    else:
        click.echo(f"Wrote {_summary(result)}")


@main.command("forget-removed")
@_SOURCES
def forget_removed_command(sources: tuple[Path, ...]) -> None:
    """Forget notes removed from the sources, once you have deleted them in Anki.

    Until then every build keeps sending them tagged anki-genai::removed.
    """
    root = source_root(sources or (Path("source"),))
    path = root / identity.STATE_FILE_NAME

    def forget() -> int:
        state, dropped = identity.drop_tombstones(identity.load_state(path))
        if dropped:
            identity.save_state(state, path)
        return dropped

    dropped = _run(forget)
    click.echo(f"Forgot {dropped} removed note(s) in {path}.")


def _run(action: Callable[[], T]) -> T:
    try:
        return action()
    except AnkiGenaiError as exc:
        for diagnostic in getattr(exc, "diagnostics", ()):
            click.echo(str(diagnostic), err=True)
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(exc.exit_code) from None


def _summary(result: BuildResult) -> str:
    counts = result.counts
    notes = sum(1 for n in result.notes if n.card is not None)
    parts = [
        f"{counts[Status.NEW]} new",
        f"{counts[Status.CHANGED] + counts[Status.RENAMED]} changed",
        f"{counts[Status.UNCHANGED]} unchanged",
    ]
    if counts[Status.RENAMED]:
        parts.insert(2, f"{counts[Status.RENAMED]} reworded")
    if counts[Status.REMOVED]:
        parts.append(f"{counts[Status.REMOVED]} removed")
    files = f"{result.files} file" + ("" if result.files == 1 else "s")
    return f"{result.package_path}: {files}, {notes} notes ({', '.join(parts)})"


def _print_plan(result: BuildResult) -> None:
    for note in result.notes:
        if note.status is Status.UNCHANGED:
            continue
        if note.card is None:
            click.echo(f"removed    {note.previous_question}")
        elif note.status is Status.RENAMED:
            change = f"{note.previous_question} -> {note.card.question_text}"
            click.echo(f"reworded   {note.card.source}: {change}")
        else:
            click.echo(f"{note.status.value:<10} {note.card.source}: {note.card.question_text}")
