"""The pipeline: Markdown files -> pairs -> cards -> identities -> `.apkg` and state file.

`build` reads top to bottom as the stages run; `check`, `preview` and `forget_removed` are
the other entry points the command line calls.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from anki_genai import incremental, outputs, rebuild, statefile
from anki_genai.cache import CACHE_FILE_NAME, Cache, FileResult, RememberedFile, environment_key
from anki_genai.cards import Card, merge_duplicates
from anki_genai.errors import (
    Diagnostic,
    HeldFileError,
    NoCardsError,
    Severity,
    SourceError,
    SourceLocation,
    StrictModeError,
    UnreadableSourcesError,
)
from anki_genai.lock import project_lock
from anki_genai.outputs import gone_if_failed, write_outputs
from anki_genai.parse import ParseOptions
from anki_genai.plan import Plan, as_last_packaged, card_strings, plan_notes
from anki_genai.preview import write_preview
from anki_genai.recover import Recovered, keep_damaged, previous_state
from anki_genai.results import BuildResult, Collected, FileRead, Progress
from anki_genai.sources import (
    KnownKey,
    Scope,
    Sources,
    broken_files,
    check_output_outside_sources,
    output_path,
    package_folder,
    read_sources,
    relative_to_root,
    scope_of,
    source_root,
)
from anki_genai.statefile import NoteRecord, State
from anki_genai.workers import process_all

__all__ = ["BuildOptions", "BuildResult", "Collected", "FileRead", "Progress", "build"]


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """What the user asked for."""

    sources: tuple[Path, ...] = (Path("source"),)
    output: Path = Path("build")  # a folder, or a file ending in .apkg
    deck: str | None = None  # the deck of a single file, or the parent deck of many
    strict: bool = False  # any problem fails the build and nothing is written
    dry_run: bool = False  # plan only; write nothing
    encoding: str = "utf-8"  # of the Markdown files
    encodings: tuple[tuple[str, str], ...] = ()  # (glob, encoding) for files in another one
    skip_unreadable: bool = False  # build the other files when one cannot be read
    lock_timeout: float = 60.0  # seconds to wait for another build of the same sources
    parse: ParseOptions = field(default_factory=ParseOptions)  # layout, extra marker words


@dataclass
class BuildMemo:
    """What a process that builds again and again (`build --watch`) keeps between builds:
    every file's cards and the state last read or written, so that a rebuild after an edit
    reads neither from disk again. Both are looked up by content, as the cache is."""

    files: dict[str, RememberedFile] = field(default_factory=dict)
    state: tuple[str, State] | None = None  # the state file's digest, and what it holds


def build(
    options: BuildOptions,
    on_wait: Callable[[], None] = lambda: None,
    progress: Progress | None = None,
    memo: BuildMemo | None = None,
    workers: int | None = None,
) -> BuildResult:
    """Build the package for `options.sources`, updating the state file beside them;
    `workers` processes parse (None: as many as pay off). See `outputs` for what a failure
    at any moment leaves."""
    root = source_root(options.sources)
    folder = package_folder(options.output)
    check_output_outside_sources(folder, options.sources)
    state_path = root / statefile.STATE_FILE_NAME
    with _lock(options, root, on_wait), _without_cyclic_gc(), gone_if_failed(folder):
        # Read under the lock: a build that waited for another starts from what it left.
        cache = output_cache(options, memo.files if memo is not None else None)
        last_package = cache.package.get("path")
        sources = _read_sources(options, cache.known_keys())
        # Read once: a rebuild of changed files reads its lines from these very bytes.
        state_data = statefile.read_state_bytes(state_path)
        state_digest = hashlib.sha256(state_data).hexdigest() if state_data is not None else None
        unchanged = _unchanged_since_last_build(cache, options, sources, state_path, state_digest)
        if unchanged is not None:
            return unchanged
        in_cache = memo is None and not options.dry_run  # cards' HTML waits there, not in memory
        result = rebuild.changed_only(
            options, cache, sources, state_path, state_data, state_digest, progress, collect,
            html_in_cache=in_cache, workers=workers,
        )  # fmt: skip
        if result is None:
            collected = collect(options, progress, cache, sources, in_cache, workers)
            result = _build_all(options, cache, sources, collected, state_path, state_digest, memo)
        elif memo is not None:
            memo.state = None
        notices = (*result.notices, *outputs.package_renamed(last_package, result))
        return replace(result, diagnostics=_with_cache_problem(result, cache), notices=notices)


def _build_all(
    options: BuildOptions,
    cache: Cache,
    sources: Sources,
    collected: Collected,
    state_path: Path,
    state_digest: str | None,
    memo: BuildMemo | None,
) -> BuildResult:
    """Match every file's cards against the state, then write the package and the state."""
    plan, state_changed, recovered, repairs = _plan(
        collected, options, state_path, state_digest, memo, cache.package.get("path")
    )
    result = replace(_result(collected, plan, state_path, recovered), state_repairs=repairs)
    if options.strict and result.diagnostics:
        raise StrictModeError(result.diagnostics)
    if options.dry_run:
        return result
    if recovered is not None and recovered.damaged is not None:
        keep_damaged(recovered.damaged)
    written, state_digest = write_outputs(
        plan, result.state_path, cache, state_changed, state_digest
    )
    # A state set right on reading, or restored, is written anew: the next build matches
    # every file again rather than start from what this one read.
    trusted = not repairs and recovered is None
    inputs = rebuild.inputs_of(options, cache)
    record = rebuild.record_of(inputs, sources, collected, plan, state_digest) if trusted else None
    incremental.save_record(cache, record)
    rebuild.remember(cache, options, sources, rebuild.media_of(collected), result, state_digest)
    if memo is not None:
        memo.state = (state_digest, plan.state)
    return replace(result, written=written)


def collect(
    options: BuildOptions,
    progress: Progress | None = None,
    cache: Cache | None = None,
    sources: Sources | None = None,
    html_in_cache: bool = False,
    workers: int | None = None,
    forget: bool = True,
) -> Collected:
    """Parse and render every source file into cards, reusing cached files.

    With `html_in_cache`, new cards are written to the cache at once and keep their HTML
    there, not in memory, until it is packaged.
    """
    sources = sources or _read_sources(options)
    store = cache.writable_store() if html_in_cache and cache is not None else None
    results: list[FileResult | SourceError | None] = [None] * len(sources.files)
    sizes = [0 if isinstance(job, SourceError) else job.size for job in sources.jobs]
    if progress is not None:
        progress.begin(tuple(zip(sources.files, sizes, strict=True)))
    todo = []
    for index, (job, key) in enumerate(zip(sources.jobs, sources.keys, strict=True)):
        if isinstance(job, SourceError):
            results[index] = job
            read = FileRead(job.path, 0, None, None)
        elif (cached := cache.get(job.relative, key) if cache is not None else None) is not None:
            results[index] = cached
            read = FileRead(job.path, job.size, len(cached.cards), None, cached.layout or None)
        else:
            todo.append((index, job))
            continue
        if progress is not None:
            progress.file_read(read)
    processed = process_all([job for _, job in todo], store, workers)
    for (index, job), (result, key, written, seconds) in zip(todo, processed, strict=True):
        results[index] = result
        if cache is not None and isinstance(result, FileResult):
            cache.put(job.relative, key, result, written)
        if progress is not None:
            if isinstance(result, FileResult):
                read = FileRead(job.path, job.size, len(result.cards), seconds, result.layout)
            else:
                read = FileRead(job.path, job.size, None, seconds)
            progress.file_read(read)
    if forget and cache is not None and "" in sources.scope.named:  # a part keeps the rest
        cache.keep_only({job.relative for job in sources.jobs if not isinstance(job, SourceError)})
    return _collected(sources, results, options.skip_unreadable)


def _collected(
    sources: Sources, results: list[FileResult | SourceError | None], skip_unreadable: bool
) -> Collected:
    unreadable = [r for r in results if isinstance(r, SourceError)]
    # A file whose front matter is broken never stops the others: its notes stay as built.
    if not skip_unreadable and any(not isinstance(r, HeldFileError) for r in unreadable):
        raise UnreadableSourcesError(tuple(unreadable))
    diagnostics = [*sources.skipped, *(exc.diagnostic() for exc in unreadable)]
    cards: list[Card] = []
    for outcome in results:
        if isinstance(outcome, FileResult):
            diagnostics.extend(outcome.diagnostics)
            cards.extend(outcome.cards)
    kept, duplicate_problems = merge_duplicates(cards)
    diagnostics.extend(duplicate_problems)
    scope = sources.scope.without(relative_to_root(exc.path, sources.root) for exc in unreadable)
    failed = any(isinstance(r, HeldFileError) for r in unreadable)
    files = tuple(r if isinstance(r, FileResult) else None for r in results)
    return Collected(
        tuple(kept), tuple(diagnostics), sources.files, sources.root, scope, failed, files,
        tuple(duplicate_problems),
    )  # fmt: skip


def check(options: BuildOptions, progress: Progress | None = None) -> Collected:
    """Every card and problem of the sources; unreadable files are problems, not failures.

    The last build's cache spares parsing unchanged files; a check never writes it.
    """
    options = replace(options, skip_unreadable=True)
    return collect(options, progress, cache=output_cache(options))


def preview(options: BuildOptions, page: Path, progress: Progress | None = None) -> Collected:
    """Write the preview page of every card to `page`; return what it shows."""
    collected = check(options, progress)
    write_preview(collected.cards, page)
    return collected


def forget_removed(
    sources: tuple[Path, ...], lock_timeout: float = 60.0, dry_run: bool = False
) -> tuple[Path, tuple[NoteRecord, ...]]:
    """Forget the removed notes of `sources` (of their files only, when they are part of a
    project) in the state file; return it and the notes forgotten (or, in a dry run, that
    would be)."""
    root = source_root(sources)
    path = root / statefile.STATE_FILE_NAME
    scope = scope_of(sources, root)
    with project_lock(root, lock_timeout) if not dry_run else contextlib.nullcontext():
        state = statefile.load_state(path)
        gone = tuple(r for r in state.notes.values() if r.removed and r.file in scope)
        if gone and not dry_run:
            kept = {guid: r for guid, r in state.notes.items() if r not in gone}
            statefile.save_state(replace(state, notes=kept), path)
    return path, gone


def output_cache(options: BuildOptions, memory: dict[str, RememberedFile] | None = None) -> Cache:
    """The cache in the output folder. `check` and `preview` only read it (they never save)."""
    return Cache(package_folder(options.output) / CACHE_FILE_NAME, environment_key(), memory)


def _read_sources(options: BuildOptions, known: Mapping[str, KnownKey] | None = None) -> Sources:
    return read_sources(
        options.sources, options.encoding, options.parse, options.deck, options.encodings, known
    )


def _lock(
    options: BuildOptions, root: Path, on_wait: Callable[[], None]
) -> contextlib.AbstractContextManager[object]:
    """One build at a time per source folder; a dry run writes nothing, so needs no lock."""
    if options.dry_run:
        return contextlib.nullcontext()
    return project_lock(root, options.lock_timeout, on_wait)


def _unchanged_since_last_build(
    cache: Cache,
    options: BuildOptions,
    sources: Sources,
    state_path: Path,
    state_digest: str | None,
) -> BuildResult | None:
    """The last build's result, if every input is byte for byte what it was then."""
    if options.dry_run or state_digest is None:
        return None
    last = cache.last_build(rebuild.inputs_digest(options, sources, state_digest))
    if last is None:
        return None
    result = BuildResult.unchanged(last[0], state_path, last[1])
    return None if options.strict and result.diagnostics else result


def _with_cache_problem(result: BuildResult, cache: Cache) -> tuple[Diagnostic, ...]:
    """The build's problems, and a warning if its cache could not be saved (once a build:
    it is correct, only the next one is slower)."""
    if cache.write_failure is None or cache.folder is None:
        return result.diagnostics
    message = (
        f"cannot save the build cache ({cache.write_failure}); this build is complete, "
        "but the next one will read every file again"
    )
    problem = Diagnostic(SourceLocation(cache.folder, 1), message, Severity.WARNING)
    return (*result.diagnostics, problem)


def _plan(
    collected: Collected,
    options: BuildOptions,
    state_path: Path,
    state_digest: str | None,
    memo: BuildMemo | None,
    last_package: object = None,
) -> tuple[Plan, bool, Recovered | None, tuple[statefile.Repair, ...]]:
    """Match the cards against the state (restored, if it was lost); return the plan,
    whether the state changes, what was restored, and what reading it set right.

    The state read here is let go on return: tens of megabytes for a large collection,
    not needed while packaging.
    """
    decks = {card.deck for card in collected.cards}
    package_path = output_path(options.output, collected.root, decks)
    # Where the last package may be: this build's, or the whole project's.
    packages = tuple(
        dict.fromkeys((package_path, output_path(options.output, collected.root, set())))
    )
    recovered = None
    if memo is not None and memo.state is not None and memo.state[0] == state_digest:
        state = memo.state[1]
    else:
        known = card_strings(collected.cards) if state_digest is not None else None
        state, recovered = previous_state(
            state_path, packages, collected.cards, known, last_package is not None
        )
    if memo is not None:
        memo.state = None  # the old state goes while packaging, as above
    # The notes of files that could not be read this time go as the last package has them,
    # in their decks (which also name the package).
    kept = as_last_packaged(state, collected.scope.skipped, packages)
    package_path = output_path(options.output, collected.root, decks | {n.deck for n in kept})
    if not collected.cards and not kept and not _has_notes(state, collected.scope):
        files, unreadable = len(collected.files), collected.unreadable
        raise NoCardsError(options.sources, files, collected.diagnostics, unreadable=unreadable)
    broken = broken_files(collected.diagnostics, collected.root)
    # Removed notes show what the last package showed, though it had another name.
    last = outputs.other_package_beside(last_package, package_path)
    plan = plan_notes(
        collected.cards, state, state_path, package_path, collected.scope, kept, broken, last
    )
    # Compared as data, not as text: a state that says the same is not rewritten, unless
    # reading it had to set something right or it was restored from a damaged one.
    changed = state_digest is None or plan.state != state or bool(state.repairs)
    changed = changed or (recovered is not None and recovered.damaged is not None)
    return plan, changed, recovered, state.repairs


def _has_notes(state: State, scope: Scope) -> bool:
    """Whether the last build made notes here (sources now without a card remove them)."""
    return any(not r.removed and r.file in scope for r in state.notes.values())


def _result(
    collected: Collected, plan: Plan, state_path: Path, recovered: Recovered | None = None
) -> BuildResult:
    return BuildResult(
        plan.package_path,
        state_path,
        len(collected.files),
        plan.changes,
        collected.diagnostics,
        False,
        plan.counts,
        note_count=len(collected.cards),
        deck_counts=plan.deck_counts,
        moved=plan.moved,
        removed_notes=plan.removed_notes,
        kept_notes=plan.kept_notes,
        failed=collected.failed,
        notices=(recovered.notice,) if recovered is not None else (),
    )


@contextlib.contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    # A build holds hundreds of thousands of tokens and strings, none in reference cycles;
    # the cyclic collector would walk them over and over for nothing.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
