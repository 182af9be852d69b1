"""The pipeline: Markdown files -> pairs -> cards -> identities -> `.apkg` and state file.

`build` reads top to bottom as the stages run; `check`, `preview` and `forget_removed` are
the other entry points the command line calls.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from anki_genai import incremental, statefile
from anki_genai.apkg import notetype, package
from anki_genai.cache import CACHE_FILE_NAME, Cache, FileResult, RememberedFile, environment_key
from anki_genai.cards import Card, merge_duplicates
from anki_genai.errors import (
    AnkiGenaiError,
    Diagnostic,
    SourceError,
    StrictModeError,
    UnreadableSourcesError,
)
from anki_genai.identity import Status
from anki_genai.lock import project_lock
from anki_genai.outputs import gone_if_failed, write_outputs
from anki_genai.parse import ParseOptions
from anki_genai.plan import Plan, PlannedNote, card_strings, plan_notes
from anki_genai.preview import write_preview
from anki_genai.sources import (
    FileJob,
    KnownKey,
    Scope,
    Sources,
    check_output_outside_sources,
    output_path,
    package_folder,
    read_sources,
    relative_to_root,
    scope_of,
    source_root,
)
from anki_genai.statefile import NoteRecord, State
from anki_genai.statetext import save_text_with_backup
from anki_genai.workers import process_all


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


@dataclass(frozen=True, slots=True)
class Collected:
    """The cards of every source file, and every problem met on the way."""

    cards: tuple[Card, ...]
    diagnostics: tuple[Diagnostic, ...]
    files: tuple[Path, ...]
    root: Path  # the folder the state file lives in
    scope: Scope  # the files whose notes this build speaks for
    # Each file's cards before duplicates were merged (None: unreadable), and what merging
    # them found: what the next build's record of each file is made of.
    results: tuple[FileResult | None, ...] = ()
    merged: tuple[Diagnostic, ...] = ()


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

    def summary(self) -> dict[str, object]:
        """What a later unchanged rebuild reports again without redoing the work."""
        return {
            "files": self.files,
            "notes": self.note_count,
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
        )


@dataclass(frozen=True, slots=True)
class FileRead:
    """One source file read, for progress and `-v`: what it yielded and what it took."""

    path: Path
    size: int  # bytes
    cards: int | None  # None: the file cannot be read or decoded
    seconds: float | None  # None: its cards came from the cache (or it was never parsed)
    # The layout the parser found the file to be in; None until the parser reports one
    # (issue 15 adds it to ParsedDocument: pass it on from workers.process_file).
    layout: str | None = None


class Progress(Protocol):
    """Told about each source file as a build, check or preview gets through them."""

    def begin(self, files: Sequence[tuple[Path, int]]) -> None:
        """Every source file, in order, with its size in bytes; before any is read."""

    def file_read(self, file: FileRead) -> None:
        """One more file is done (from the cache ones come first, in no promised order)."""


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
    cache = output_cache(options, memo.files if memo is not None else None)
    with _lock(options, root, on_wait), _without_cyclic_gc(), gone_if_failed(folder):
        sources = _read_sources(options, cache.known_keys())
        # Read once: a rebuild of changed files reads its lines from these very bytes.
        state_data = _read_state_bytes(state_path)
        state_digest = hashlib.sha256(state_data).hexdigest() if state_data is not None else None
        unchanged = _unchanged_since_last_build(cache, options, sources, state_path, state_digest)
        if unchanged is not None:
            return unchanged
        in_cache = memo is None and not options.dry_run  # cards' HTML waits there, not in memory
        inputs = incremental.inputs_key(
            replace(options, dry_run=False), cache.environment, notetype.note_type_digest()
        )
        parts = _split(cache, options, inputs, sources, state_data)
        if parts is not None:
            quick = _build_changed(
                parts, options, inputs, cache, sources, state_path, state_digest, progress,
                in_cache, workers,
            )  # fmt: skip
            if quick is not None:
                if memo is not None:
                    memo.state = None
                return quick
        collected = collect(options, progress, cache, sources, in_cache, workers)
        plan, state_changed = _plan(collected, options, state_path, state_digest, memo)
        result = _result(collected, plan, state_path)
        if options.strict and result.diagnostics:
            raise StrictModeError(result.diagnostics)
        if options.dry_run:
            return result
        written, state_digest = write_outputs(
            plan, result.state_path, cache, state_changed, state_digest
        )
        incremental.save_record(cache, _record(inputs, sources, collected, plan, state_digest))
        _remember(cache, options, sources, _media(collected), result, state_digest)
        if memo is not None:
            memo.state = (state_digest, plan.state)
        return replace(result, written=written)


def _split(
    cache: Cache,
    options: BuildOptions,
    inputs: str,
    sources: Sources,
    state_data: bytes | None,
) -> incremental.Split | None:
    """The files this rebuild needs to match again, if the last build's record allows it."""
    if options.dry_run or state_data is None:
        return None
    record = incremental.load_record(cache)
    if record is None:
        return None
    if not cache.package_is_current(Path(record.package), str(cache.package.get("digest"))):
        return None
    return incremental.split(record, inputs, sources, state_data)


def _build_changed(
    parts: incremental.Split,
    options: BuildOptions,
    inputs: str,
    cache: Cache,
    sources: Sources,
    state_path: Path,
    state_digest: str | None,
    progress: Progress | None,
    in_cache: bool,
    workers: int | None,
) -> BuildResult | None:
    """Rebuild matching only the changed files; None if a full build is needed after all."""
    if progress is not None:
        sizes = [job.size if isinstance(job, FileJob) else 0 for job in sources.jobs]
        progress.begin(tuple(zip(sources.files, sizes, strict=True)))
        for job in sources.jobs:
            if isinstance(job, FileJob) and job.relative in parts.unchanged:
                count = parts.record.files[job.relative].count
                progress.file_read(FileRead(job.path, job.size, count, None))
    collected = collect(
        options, _Continued(progress), cache, parts.changed, in_cache, workers, forget=False
    )
    results = [r for r in collected.results if isinstance(r, FileResult)]
    delta = incremental.plan_delta(
        parts, results, collected.cards, collected.merged, options.output, sources.skipped
    )
    if delta is None:
        return None
    plan = delta.plan
    result = BuildResult(
        plan.package_path, state_path, len(sources.files), plan.changes, delta.diagnostics,
        False, plan.counts, delta.note_count, plan.deck_counts, plan.moved,
    )  # fmt: skip
    if options.strict and result.diagnostics:
        raise StrictModeError(result.diagnostics)
    keep = cache.folder / "collection" if cache.folder is not None else None
    path, note_type_mod = plan.package_path, plan.state.note_type_mod
    try:
        written = package.write_package(plan.notes, note_type_mod, path, keep, delta.unchanged)
    except OSError as exc:
        raise AnkiGenaiError(
            f"{path}: cannot write the package ({exc.strerror}); choose a writable output with -o"
        ) from None
    if written is None:
        return None
    if written:
        cache.remember_package(path, f"changed:{hashlib.sha256(os.urandom(16)).hexdigest()}")
    if delta.state_text is not None:
        state_digest = save_text_with_backup(delta.state_text, state_path, path.parent)
    assert state_digest is not None
    cache.keep_only({job.relative for job in sources.jobs if isinstance(job, FileJob)})
    record = incremental.BuildRecord(
        inputs, state_digest, delta.latest_mod, str(path), delta.tombstones, delta.files
    )
    incremental.save_record(cache, record)
    _remember(cache, options, sources, list(delta.media), result, state_digest)
    return replace(result, written=bool(written) or delta.state_text is not None)


class _Continued:
    """A build's progress, told about more files after it began."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress

    def begin(self, files: Sequence[tuple[Path, int]]) -> None:
        pass

    def file_read(self, file: FileRead) -> None:
        if self._progress is not None:
            self._progress.file_read(file)


def _record(
    inputs: str, sources: Sources, collected: Collected, plan: Plan, state_digest: str
) -> incremental.BuildRecord | None:
    """What the next build starts from, after a build of the whole project."""
    results = [r for r in collected.results if isinstance(r, FileResult)]
    if sources.scope.named != ("",) or len(results) != len(sources.jobs):
        return None
    jobs = [job for job in sources.jobs if isinstance(job, FileJob)]
    guids = [note.guid for note in plan.notes[: len(collected.cards)]]
    files = incremental.file_records(
        jobs, sources.keys, results, collected.cards, guids, collected.merged
    )
    tombstones = tuple(g for g, r in plan.state.notes.items() if r.removed)
    latest = plan.state.latest_mod
    return incremental.BuildRecord(
        inputs, state_digest, latest, str(plan.package_path), tombstones, files
    )


def _media(collected: Collected) -> list[Path]:
    return sorted({m.path for card in collected.cards for m in card.media})


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
            read = FileRead(job.path, job.size, len(cached.cards), None)
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
            cards = len(result.cards) if isinstance(result, FileResult) else None
            progress.file_read(FileRead(job.path, job.size, cards, seconds))
    if forget and cache is not None and "" in sources.scope.named:  # a part keeps the rest
        cache.keep_only({job.relative for job in sources.jobs if not isinstance(job, SourceError)})
    return _collected(sources, results, options.skip_unreadable)


def _collected(
    sources: Sources, results: list[FileResult | SourceError | None], skip_unreadable: bool
) -> Collected:
    unreadable = [r for r in results if isinstance(r, SourceError)]
    if unreadable and not skip_unreadable:
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
    files = tuple(r if isinstance(r, FileResult) else None for r in results)
    return Collected(
        tuple(kept), tuple(diagnostics), sources.files, sources.root, scope, files,
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


def _read_state_bytes(path: Path) -> bytes | None:
    """The state file's bytes, or None when there is none to read (as `file_digest`)."""
    try:
        return path.read_bytes()
    except OSError:
        return None


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
    last = cache.last_build(_inputs_digest(options, sources, state_digest))
    if last is None:
        return None
    result = BuildResult.unchanged(last[0], state_path, last[1])
    return None if options.strict and result.diagnostics else result


def _inputs_digest(options: BuildOptions, sources: Sources, state_digest: str) -> str:
    """Everything a build reads: options, every source file, the state file."""
    digest = hashlib.sha256(repr(replace(options, dry_run=False)).encode())
    digest.update(notetype.note_type_digest().encode())
    for path, key in zip(sources.files, sources.keys, strict=True):
        digest.update(f"\x1e{path}\x1f{key}".encode())
    digest.update(b"\x1e" + state_digest.encode())
    return digest.hexdigest()


def _remember(
    cache: Cache,
    options: BuildOptions,
    sources: Sources,
    media: list[Path],
    result: BuildResult,
    state_digest: str,
) -> None:
    """Save the cache, with what this build read and reported, for the next build."""
    inputs = _inputs_digest(options, sources, state_digest)
    cache.remember_keys(sources.known)
    cache.remember_build(inputs, result.package_path, result.summary(), media)
    cache.save()


def _plan(
    collected: Collected,
    options: BuildOptions,
    state_path: Path,
    state_digest: str | None,
    memo: BuildMemo | None,
) -> tuple[Plan, bool]:
    """Match the cards against the state; return the plan and whether the state changes.

    The state read here is let go on return: tens of megabytes for a large collection,
    not needed while packaging.
    """
    if memo is not None and memo.state is not None and memo.state[0] == state_digest:
        state = memo.state[1]
    else:
        known = card_strings(collected.cards) if state_digest is not None else None
        state = statefile.load_state(state_path, known)
    if memo is not None:
        memo.state = None  # the old state goes while packaging, as above
    decks = {card.deck for card in collected.cards}
    package_path = output_path(options.output, collected.root, decks)
    plan = plan_notes(collected.cards, state, state_path, package_path, collected.scope)
    # Compared as data, not as text: a state that says the same is not rewritten.
    return plan, state_digest is None or plan.state != state


def _result(collected: Collected, plan: Plan, state_path: Path) -> BuildResult:
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
