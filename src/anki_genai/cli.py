"""The command line: parses options, calls the library, reports once.

Exit codes: 0 success (a build that skipped broken pairs still succeeds, and says so);
1 the build failed, `check` found errors, or `--strict` found any problem; 2 the command
line itself is wrong.
"""

from __future__ import annotations

import codecs
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from anki_genai import __version__, identity
from anki_genai.build import (
    BuildMemo,
    BuildOptions,
    BuildResult,
    build,
    collect,
    load_config,
    output_cache,
    source_root,
)
from anki_genai.errors import AnkiGenaiError, Diagnostic, Severity
from anki_genai.identity import Status
from anki_genai.parse import Layout, ParseOptions
from anki_genai.preview import write_preview

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_MAX_DECK_LINES = 20
# Statuses in the order a summary lists them.
_REPORTED = (Status.NEW, Status.CHANGED, Status.RENAMED, Status.REMOVED, Status.UNCHANGED)


def _source_options(command: F) -> F:
    """The options every command that reads the sources shares."""
    decorators = [
        click.argument("sources", nargs=-1, type=click.Path(exists=True, path_type=Path)),
        click.option(
            "--deck",
            help="Deck name. With one file it is the deck; with several it is the parent "
            "deck: NAME::FOLDER::FILE-DECK.",
        ),
        click.option(
            "--layout",
            type=click.Choice([layout.value for layout in Layout]),
            default=Layout.MARKERS.value,
            show_default=True,
            help="markers: 题目/答案 style markers; headings: each heading is a question and "
            "its section the answer; bold: each **Q1：…** paragraph is a question.",
        ),
        click.option(
            "--question-word",
            "question_words",
            multiple=True,
            help="An extra word that marks a question (repeatable), e.g. 面试题.",
        ),
        click.option(
            "--answer-word",
            "answer_words",
            multiple=True,
            help="An extra word that marks an answer (repeatable), e.g. 面试题剖析.",
        ),
        click.option(
            "--encoding",
            default="utf-8",
            show_default=True,
            help="Encoding of the Markdown files, e.g. gbk for older Chinese documents.",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="anki-genai")
def main() -> None:
    """Turn Markdown question/answer notes into Anki decks that re-import safely.

    SOURCES are Markdown files or folders (searched recursively for *.md); the default is
    source/. Options you would repeat can live in anki-genai.toml in the source folder;
    options on the command line win.
    """


@main.command("build")
@_source_options
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("build"),
    show_default=True,
    help="Folder for the package, or a file name ending in .apkg.",
)
@click.option(
    "--strict", is_flag=True, help="Fail, writing nothing, if the sources have any problem."
)
@click.option("--dry-run", is_flag=True, help="Show what the build would do; write nothing.")
@click.option(
    "--skip-unreadable",
    is_flag=True,
    help="Build the other files when some cannot be read or decoded (they are reported).",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait while another build of the same sources is running.",
)
@click.option(
    "--watch", is_flag=True, help="Rebuild whenever a source file changes (Ctrl-C stops)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON, for scripts.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.pass_context
def build_command(ctx: click.Context, /, **params: Any) -> None:
    """Build an Anki package from Markdown SOURCES.

    Also updates anki-genai-state.json beside the sources, which keeps each note's identity
    between builds: commit it with your notes.
    """
    options = _options(ctx, dict(params))
    quiet, as_json = params["quiet"], params["as_json"]
    # A watching process keeps every file's cards and the state between builds.
    memo = BuildMemo() if params["watch"] else None

    def waiting() -> None:
        if not quiet:
            click.echo("Another build of these sources is running; waiting...", err=True)

    def once(options: BuildOptions) -> BuildResult | None:
        try:
            with _progress(quiet or as_json) as progress:
                result = build(options, on_wait=waiting, progress=progress, memo=memo)
        except AnkiGenaiError as exc:
            _report_error(exc)
            return None
        _report(result, quiet=quiet, as_json=as_json, dry_run=options.dry_run)
        return result

    def again() -> None:
        """A rebuild while watching: anki-genai.toml may have been edited too."""
        try:
            options = _merged_options(ctx, dict(params))
        except AnkiGenaiError as exc:
            _report_error(exc)  # and keep watching for the fix
            return
        except click.ClickException as exc:
            exc.show()
            return
        once(options)

    result = once(options)
    if params["watch"]:
        _watch(options, again, quiet)
        return
    if result is None:
        raise SystemExit(1)


@main.command("check")
@_source_options
@click.option("--strict", is_flag=True, help="Count warnings as errors.")
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON, for scripts.")
@click.pass_context
def check_command(ctx: click.Context, /, **params: Any) -> None:
    """Report every problem in the sources, one `path:line: severity: message` each.

    Exit code 0 when there is no error (warnings allowed), 1 when there is one (or, with
    --strict, any problem). Fit for a pre-commit hook or CI.
    """
    options = _options(ctx, {**params, "skip_unreadable": True})
    # The last build's cache spares parsing unchanged files; a check never writes it.
    collected = _run(lambda: collect(options, cache=output_cache(options)))
    problems = collected.diagnostics
    errors = sum(1 for d in problems if d.severity is Severity.ERROR or options.strict)
    if params["as_json"]:
        click.echo(json.dumps({"diagnostics": [_diagnostic_json(d) for d in problems]}))
    else:
        for diagnostic in problems:
            click.echo(str(diagnostic))
        files = _plural(len(collected.files), "file")
        warnings = len(problems) - sum(1 for d in problems if d.severity is Severity.ERROR)
        click.echo(
            f"{files}, {_plural(len(collected.cards), 'card')}: "
            f"{_plural(len(problems) - warnings, 'error')}, {_plural(warnings, 'warning')}",
            err=True,
        )
    if errors:
        raise SystemExit(1)


@main.command("preview")
@_source_options
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("build") / "preview.html",
    show_default=True,
    help="Where to write the preview page.",
)
@click.option("--open", "open_page", is_flag=True, help="Open the page in the web browser.")
@click.pass_context
def preview_command(ctx: click.Context, /, **params: Any) -> None:
    """Write one self-contained HTML page showing every card as Anki will show it."""
    output: Path = params.pop("output")
    options = _options(ctx, {**params, "skip_unreadable": True})
    collected = _run(lambda: collect(options, cache=output_cache(options)))
    for diagnostic in collected.diagnostics:
        click.echo(str(diagnostic), err=True)
    _run(lambda: write_preview(collected.cards, output))
    click.echo(f"Wrote {output}: {_plural(len(collected.cards), 'card')}")
    if params["open_page"]:
        import webbrowser

        webbrowser.open(output.resolve().as_uri())


@main.command("forget-removed")
@click.argument("sources", nargs=-1, type=click.Path(exists=True, path_type=Path))
def forget_removed_command(sources: tuple[Path, ...]) -> None:
    """Forget notes removed from the SOURCES, once you have deleted them in Anki.

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


@main.command("pull")
@click.argument("export", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_source_options
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("build"),
    show_default=True,
    help="The build's output folder (or .apkg), where the last package is.",
)
@click.option("--apply", is_flag=True, help="Write the edits into the Markdown.")
@click.pass_context
def pull_command(ctx: click.Context, /, **params: Any) -> None:
    """List notes edited in Anki since the last build; with --apply, write them back.

    EXPORT is an .apkg or .colpkg exported from Anki or AnkiDroid, or a profile's
    collection.anki2 (with Anki closed). Needs: pip install 'anki-genai[anki]'.
    """
    from anki_genai.sync.pull import pull
    from anki_genai.sync.report import report_pull

    export, apply = params.pop("export"), params.pop("apply")
    options = _options(ctx, params)
    result = _run(lambda: pull(export, options, apply=apply))
    report_pull(result)
    if result.exit_code:
        raise SystemExit(result.exit_code)


@main.command("push")
@click.argument("collection", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_source_options
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("build"),
    show_default=True,
    help="Folder for the package, or a file name ending in .apkg.",
)
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
@click.pass_context
def push_command(ctx: click.Context, /, **params: Any) -> None:
    """Build, then bring COLLECTION (a profile's collection.anki2, Anki closed) up to date:
    import, delete the notes removed from the sources, move cards whose deck changed.

    The collection is copied beside itself first. Needs: pip install 'anki-genai[anki]'.
    """
    from anki_genai.sync.push import push
    from anki_genai.sync.report import report_push

    path, dry_run = params.pop("collection"), params.pop("dry_run")
    options = _options(ctx, params)
    report_push(_run(lambda: push(path, options, dry_run=dry_run)))


# --- options -----------------------------------------------------------------------------------


def _options(ctx: click.Context, params: dict[str, Any]) -> BuildOptions:
    """Merge the command line over anki-genai.toml over the defaults; exit on a bad setting."""
    return _run(lambda: _merged_options(ctx, params))


def _merged_options(ctx: click.Context, params: dict[str, Any]) -> BuildOptions:
    sources = params["sources"] or (Path("source"),)
    config = load_config(source_root(sources))
    for name, value in config.items():
        if name in params and ctx.get_parameter_source(name) is ParameterSource.DEFAULT:
            params[name] = value
    try:
        codecs.lookup(params["encoding"])
    except LookupError:
        message = f"unknown encoding {params['encoding']!r}"
        raise click.BadParameter(message, param_hint="--encoding") from None
    return BuildOptions(
        sources=tuple(sources),
        # check and preview write no package, but read the cache in the build's output folder
        output=Path(params.get("output", config.get("output", "build"))),
        deck=params["deck"],
        strict=params.get("strict", False),
        dry_run=params.get("dry_run", False),
        encoding=params["encoding"],
        skip_unreadable=params.get("skip_unreadable", False),
        lock_timeout=params.get("wait", 60.0),
        parse=ParseOptions(
            Layout(params["layout"]),
            tuple(params["question_words"]),
            tuple(params["answer_words"]),
        ),
    )


# --- reporting ---------------------------------------------------------------------------------


def _run(action: Callable[[], T]) -> T:
    try:
        return action()
    except AnkiGenaiError as exc:
        _report_error(exc)
        raise SystemExit(exc.exit_code) from None


def _report_error(exc: AnkiGenaiError) -> None:
    for diagnostic in getattr(exc, "diagnostics", ()):
        click.echo(str(diagnostic), err=True)
    click.echo(f"Error: {exc}", err=True)


def _report(result: BuildResult, *, quiet: bool, as_json: bool, dry_run: bool) -> None:
    if as_json:
        click.echo(json.dumps(_result_json(result), ensure_ascii=False))
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


def _summary(result: BuildResult) -> str:
    files, notes = _plural(result.files, "file"), _plural(result.note_count, "note")
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


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


@contextmanager
def _progress(silent: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on a terminal, for builds of many files; never in pipes or CI logs."""
    if silent or not _stderr_is_terminal():
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


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def _watch(options: BuildOptions, rebuild: Callable[[], object], quiet: bool) -> None:
    import watchfiles

    def relevant(change: watchfiles.Change, path: str) -> bool:
        return path.endswith((".md", ".toml")) and "/." not in path

    if not quiet:
        click.echo("Watching for changes; press Ctrl-C to stop.", err=True)
    for _changes in watchfiles.watch(
        *options.sources, watch_filter=relevant, raise_interrupt=False, debounce=300
    ):
        rebuild()
    if not quiet:
        click.echo("Stopped watching.", err=True)
