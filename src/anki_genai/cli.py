"""The command line: parses options, calls the library, reports once.

Exit codes: 0 success (a build that skipped broken pairs still succeeds, and says so);
1 the build failed or kept a file's notes as last built (its front matter is broken),
`check` found errors or no card at all, or `--strict` found any problem; 2 the command
line itself is wrong (a missing source among it); 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from anki_genai import __version__, report, workers
from anki_genai.build import (
    BuildMemo,
    BuildOptions,
    BuildResult,
    build,
    check,
    forget_removed,
    preview,
)
from anki_genai.errors import AnkiGenaiError, NoCardsError, Severity, os_error
from anki_genai.options import (
    merged_options,
    package_output_option,
    source_options,
    sources_or_default,
    take_verbosity,
    verbosity_options,
    wait_option,
)
from anki_genai.preview import open_in_browser
from anki_genai.sources import PREVIEW_FILE_NAME, preview_page

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C


class _Commands(click.Group):
    """The command group; Ctrl-C ends any command with one line and exit code 130."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            if sys.stderr.isatty():
                click.echo(err=True)  # end the line the terminal's ^C is on
            # Every file is written to a temporary name and renamed into place.
            click.echo("Interrupted; no file was left half-written.", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # stdout closed early (`| head`): click ends quietly
            # The stages turn the OS errors they expect into messages; one they did not
            # is still the machine's doing (a disk, a permission), not a bug to show.
            report.error(os_error(exc))
            raise click.exceptions.Exit(1) from None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="anki-genai")
def main() -> None:
    """Turn Markdown question/answer notes into Anki decks that re-import safely.

    SOURCES are Markdown files or folders (searched recursively for *.md); the default is
    source/. Options you would repeat can live in anki-genai.toml in the source folder;
    options on the command line win.
    """
    if hasattr(signal, "SIGXFSZ"):
        # Past a file-size limit (`ulimit -f`) a write should fail with EFBIG, which we
        # report, rather than end the process. CPython ignores the signal already; an
        # embedding interpreter may not.
        with contextlib.suppress(ValueError):  # only the main thread may set it
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if os.environ.get("NO_COLOR"):  # https://no-color.org: any non-empty value
        click.get_current_context().color = False


@main.command("build", short_help="Build an Anki package from the notes.")
@source_options
@package_output_option("Folder for the package, or a file name ending in .apkg (any case).")
@click.option(
    "--strict", is_flag=True, help="Fail, writing nothing, if the sources have any problem."
)
@click.option("--dry-run", is_flag=True, help="Show what the build would do; write nothing.")
@click.option(
    "--skip-unreadable",
    is_flag=True,
    help="Build the other files when some cannot be read or decoded (they are reported).",
)
@wait_option
@click.option(
    "--watch", is_flag=True, help="Rebuild whenever a source file changes (Ctrl-C stops)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON, for scripts.")
@verbosity_options
@click.pass_context
def build_command(ctx: click.Context, /, **params: Any) -> None:
    """Build an Anki package from Markdown SOURCES.

    Also updates anki-genai-state.json beside the sources, which keeps each note's identity
    between builds: commit it with your notes.
    """
    verbosity = take_verbosity(params)
    options = _options(ctx, dict(params))
    as_json = params["as_json"]
    # No progress bar with --json (as before), but -v still lists the files on stderr.
    shown = (
        report.Verbosity.QUIET if as_json and verbosity is report.Verbosity.NORMAL else verbosity
    )
    # A watching process keeps every file's cards and the state between builds.
    memo = BuildMemo() if params["watch"] else None

    def waiting() -> None:
        report.message("Another build of these sources is running; waiting...", verbosity=verbosity)

    def once(options: BuildOptions) -> BuildResult | None:
        try:
            with report.progress(shown) as progress:
                result = build(options, on_wait=waiting, progress=progress, memo=memo)
        except AnkiGenaiError as exc:
            report.error(exc)
            return None
        report.build_result(result, verbosity=verbosity, as_json=as_json, dry_run=options.dry_run)
        return result

    def again() -> None:
        """A rebuild while watching: anki-genai.toml may have been edited too."""
        try:
            options = merged_options(ctx, dict(params))
        except AnkiGenaiError as exc:
            report.error(exc)  # and keep watching for the fix
            return
        except click.ClickException as exc:
            exc.show()
            return
        once(options)

    if params["watch"]:
        _watch(options, lambda: once(options), again, verbosity)
        return
    result = once(options)
    if result is None or result.failed:  # failed: a file's notes were kept as last built
        raise SystemExit(1)


@main.command("check", short_help="Report every problem in the notes.")
@source_options
@click.option("--strict", is_flag=True, help="Count warnings as errors.")
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON, for scripts.")
@verbosity_options
@click.pass_context
def check_command(ctx: click.Context, /, **params: Any) -> None:
    """Report every problem in the sources, one `path:line: severity: message` each.

    Exit code 0 when there is no error (warnings allowed), 1 when there is one (or, with
    --strict, any problem). Fit for a pre-commit hook or CI.
    """
    verbosity = take_verbosity(params)
    options = _options(ctx, params)
    with report.progress(verbosity) as progress:
        collected = _run(lambda: check(options, progress))
    report.check_result(
        collected, verbosity=verbosity, as_json=params["as_json"], strict=options.strict
    )
    if not collected.cards:
        files, unreadable = len(collected.files), collected.unreadable
        report.error(NoCardsError(options.sources, files, built=False, unreadable=unreadable))
        raise SystemExit(1)
    problems = collected.diagnostics
    if any(d.severity is Severity.ERROR or options.strict for d in problems):
        raise SystemExit(1)


@main.command("preview", short_help="Write a page showing every card.")
@source_options
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("build") / PREVIEW_FILE_NAME,
    show_default=True,
    help=f"Folder for {PREVIEW_FILE_NAME}, or a file name ending in .html.",
)
@click.option("--open", "open_page", is_flag=True, help="Open the page in the web browser.")
@verbosity_options
@click.pass_context
def preview_command(ctx: click.Context, /, **params: Any) -> None:
    """Write one self-contained HTML page showing every card as Anki will show it."""
    verbosity = take_verbosity(params)
    output = preview_page(params.pop("output"))
    options = _options(ctx, params)
    with report.progress(verbosity) as progress:
        collected = _run(lambda: preview(options, output, progress))
    report.preview_result(collected, output, verbosity=verbosity)
    if params["open_page"] and not open_in_browser(output):
        click.echo(f"No web browser to open it in; open {output.resolve()} yourself.", err=True)


@main.command("forget-removed", short_help="Forget notes you have deleted in Anki.")
@click.argument("sources", nargs=-1, type=click.Path(exists=True, path_type=Path))
@wait_option
@click.option("--dry-run", is_flag=True, help="List the notes it would forget; change nothing.")
@verbosity_options
def forget_removed_command(
    sources: tuple[Path, ...], wait: float, dry_run: bool, **params: Any
) -> None:
    """Forget notes removed from the SOURCES, once you have deleted them in Anki.

    Until then every build keeps sending them tagged anki-genai::removed.
    """
    verbosity = take_verbosity(params)
    start = time.perf_counter()
    path, gone = _run(lambda: forget_removed(sources_or_default(sources), wait, dry_run))
    report.forgotten(path, gone, dry_run=dry_run, verbosity=verbosity)
    _report_time(start, verbosity)


def _report_time(start: float, verbosity: report.Verbosity) -> None:
    if verbosity is report.Verbosity.VERBOSE:
        report.message(f"Done in {time.perf_counter() - start:.2f} s.", verbosity=verbosity)


@main.command("pull", short_help="Bring edits made in Anki back to the notes.")
@click.argument("export", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@source_options
@package_output_option("The build's output folder (or .apkg), where the last package is.")
@click.option("--apply", is_flag=True, help="Write the edits into the Markdown.")
@verbosity_options
@click.pass_context
def pull_command(ctx: click.Context, /, **params: Any) -> None:
    """List notes edited in Anki since the last build; with --apply, write them back.

    EXPORT is an .apkg or .colpkg exported from Anki or AnkiDroid, or a profile's
    collection.anki2 (with Anki closed).

    \b
    Needs the anki package: pip install 'anki-genai[anki]'
    """
    from anki_genai.sync.pull import pull
    from anki_genai.sync.report import report_pull

    verbosity = take_verbosity(params)
    export, apply = params.pop("export"), params.pop("apply")
    options = _options(ctx, params)
    start = time.perf_counter()
    result = _run(lambda: pull(export, options, apply=apply))
    report_pull(result, verbosity=verbosity)
    _report_time(start, verbosity)
    if result.exit_code:
        raise SystemExit(result.exit_code)


@main.command("push", short_help="Update a closed Anki collection in place.")
@click.argument("collection", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@source_options
@package_output_option("Folder for the package, or a file name ending in .apkg (any case).")
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
@verbosity_options
@click.pass_context
def push_command(ctx: click.Context, /, **params: Any) -> None:
    """Build, then bring COLLECTION (a profile's collection.anki2, Anki closed) up to date:
    import, delete the notes removed from the sources, move cards whose deck changed.

    The collection is copied beside itself first.

    \b
    Needs the anki package: pip install 'anki-genai[anki]'
    """
    from anki_genai.sync.push import push
    from anki_genai.sync.report import report_push

    verbosity = take_verbosity(params)
    path, dry_run = params.pop("collection"), params.pop("dry_run")
    options = _options(ctx, params)
    start = time.perf_counter()
    report_push(_run(lambda: push(path, options, dry_run=dry_run)), verbosity=verbosity)
    _report_time(start, verbosity)


# --- options -----------------------------------------------------------------------------------


def _options(ctx: click.Context, params: dict[str, Any]) -> BuildOptions:
    """Merge the command line over anki-genai.toml over the defaults; exit on a bad setting."""
    return _run(lambda: merged_options(ctx, params))


# --- running ----------------------------------------------------------------------------------


def _run(action: Callable[[], T]) -> T:
    try:
        return action()
    except AnkiGenaiError as exc:
        report.error(exc)
        raise SystemExit(exc.exit_code) from None


def _watch(
    options: BuildOptions,
    first: Callable[[], object],
    rebuild: Callable[[], object],
    verbosity: report.Verbosity,
) -> None:
    """Build, then rebuild on every save until Ctrl-C, which stops it cleanly whenever it
    comes: while waiting for a change, or in the middle of a build (whose writes are atomic,
    so it leaves the last package and state as they were)."""
    import logging

    import watchfiles

    # watchfiles says on stderr that it caught Ctrl-C; "Stopped watching." says it for us.
    logging.getLogger("watchfiles.main").setLevel(logging.ERROR)

    def relevant(change: watchfiles.Change, path: str) -> bool:
        return path.endswith((".md", ".toml")) and "/." not in path

    with contextlib.suppress(KeyboardInterrupt):
        first()
        workers.warm_up()
        report.message("Watching for changes; press Ctrl-C to stop.", verbosity=verbosity)
        for _changes in watchfiles.watch(
            *options.sources, watch_filter=relevant, raise_interrupt=False, debounce=300
        ):
            rebuild()
    report.message("Stopped watching.", verbosity=verbosity)
