"""The pipeline: Markdown files -> pairs -> cards -> identities -> `.apkg` and state file."""

from __future__ import annotations

import codecs
import contextlib
import functools
import gc
import hashlib
import html
import os
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anki_genai import identity
from anki_genai.apkg import notetype, package
from anki_genai.cache import (
    CACHE_FILE_NAME,
    Cache,
    FileResult,
    RememberedFile,
    environment_key,
    file_key,
    write_entry,
)
from anki_genai.cards import Card, make_cards
from anki_genai.errors import (
    AnkiGenaiError,
    ConfigError,
    Diagnostic,
    Severity,
    SourceError,
    SourceLocation,
    StateError,
    StrictModeError,
    UnreadableSourcesError,
)
from anki_genai.identity import Candidate, State, Status
from anki_genai.lock import build_lock
from anki_genai.parse import (
    Layout,
    ParseOptions,
    markdown_parser,
    parse_markdown,
)

if TYPE_CHECKING:
    from anki_genai.render import Renderer

REMOVED_ANSWER = "(removed from the Markdown sources)"
REMOVED_DECK = "anki-genai removed"
LOCK_FILE_NAME = ".anki-genai.lock"
STATE_BACKUP_NAME = "anki-genai-state.backup.json"


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """What the user asked for."""

    sources: tuple[Path, ...] = (Path("source"),)
    output: Path = Path("build")  # a folder, or a file ending in .apkg
    deck: str | None = None  # the deck of a single file, or the parent deck of many
    strict: bool = False  # any problem fails the build and nothing is written
    dry_run: bool = False  # plan only; write nothing
    encoding: str = "utf-8"  # of the Markdown files
    skip_unreadable: bool = False  # build the other files when one cannot be read
    lock_timeout: float = 60.0  # seconds to wait for another build of the same sources
    parse: ParseOptions = field(default_factory=ParseOptions)  # layout, extra marker words


@dataclass(frozen=True, slots=True)
class Collected:
    """The cards of every source file, and every problem met on the way."""

    root: Path  # the folder the state file lives in
    files: tuple[Path, ...]
    cards: tuple[Card, ...]
    diagnostics: tuple[Diagnostic, ...]


@dataclass(frozen=True, slots=True)
class PlannedNote:
    """A note of the package with its identity and what the build does to it."""

    card: Card | None  # None for notes removed from the sources
    guid: str
    mod: int
    status: Status
    previous_question: str | None = None  # for renamed and removed notes
    removed_deck: str = ""  # for removed notes

    @property
    def deck(self) -> str:
        return self.card.deck if self.card is not None else self.removed_deck


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
    progress: Callable[[int, int], None] | None = None,
    memo: BuildMemo | None = None,
) -> BuildResult:
    """Build the package for `options.sources`, updating the state file beside them.

    Either the package and the state file are both replaced, or neither is: the package is
    written first (to a temporary file, then renamed), the state second. A crash between the
    two leaves the old state, whose GUIDs the next build reuses, so it only resends notes.
    """
    root = source_root(options.sources)
    package_folder = _package_folder(options)
    _check_output_outside_sources(package_folder, options.sources)
    state_path = root / identity.STATE_FILE_NAME
    guard = (
        contextlib.nullcontext()
        if options.dry_run
        else build_lock(root / LOCK_FILE_NAME, options.lock_timeout, on_wait)
    )
    cache = output_cache(options, memo.files if memo is not None else None)
    with guard, _without_cyclic_gc(), _gone_if_failed(package_folder):
        sources = read_sources(options)
        state_digest = _file_digest(state_path)  # the lock keeps it so until the build ends
        if not options.dry_run:
            unchanged = _unchanged_since_last_build(
                cache, options, sources, state_path, state_digest
            )
            if unchanged is not None and not (options.strict and unchanged.diagnostics):
                return unchanged
        html_in_cache = memo is None and not options.dry_run
        collected = collect(options, progress, cache, sources, html_in_cache)
        if memo is not None and memo.state is not None and memo.state[0] == state_digest:
            state = memo.state[1]
        else:
            known = _card_strings(collected.cards) if state_digest is not None else None
            state = identity.load_state(state_path, known)
            del known  # about 10 MB at 100,000 notes, not needed while packaging
        if memo is not None:
            memo.state = None  # let the old state go while packaging, as below
        result, packaged, new_state = _plan(collected, state, state_path, options)
        if options.strict and result.diagnostics:
            raise StrictModeError(result.diagnostics)
        if options.dry_run:
            return result
        digest = package.content_digest(packaged, new_state.note_type_mod)
        # Compared as data, not as text: a state that says the same is not rewritten.
        state_changed = state_digest is None or new_state != state
        del state  # tens of megabytes for a large collection, not needed while packaging
        written = state_changed or not cache.package_is_current(result.package_path, digest)
        if written:
            _remove_stale_temporary_files(result.package_path.parent)
            keep = cache.folder / "collection" if cache.folder is not None else None
            _write_package(packaged, new_state.note_type_mod, result.package_path, keep)
            cache.remember_package(result.package_path, digest)
            if state_changed:
                state_digest = _write_state(new_state, state_path, result.package_path.parent)
        assert state_digest is not None  # a missing state file counts as changed: written
        media = sorted({m.path for card in collected.cards for m in card.media})
        inputs = _inputs_digest(options, sources, state_digest)
        cache.remember_build(inputs, result.package_path, result.summary(), media)
        cache.save()
        if memo is not None:
            memo.state = (state_digest, new_state)
        return replace(result, written=written)


def _card_strings(cards: Sequence[Card]) -> dict[str, str]:
    """The strings of `cards` that the state also holds, each under its own value."""
    strings: dict[str, str] = {}
    for card in cards:
        for text in (card.question_text, card.answer_digest, card.digest, card.source_file):
            strings[text] = text
    return strings


def output_cache(options: BuildOptions, memory: dict[str, RememberedFile] | None = None) -> Cache:
    """The cache in the output folder. `check` and `preview` only read it (they never save)."""
    return Cache(_package_folder(options) / CACHE_FILE_NAME, environment_key(), memory)


def _package_folder(options: BuildOptions) -> Path:
    return options.output if options.output.suffix != ".apkg" else options.output.parent


def _unchanged_since_last_build(
    cache: Cache,
    options: BuildOptions,
    sources: Sources,
    state_path: Path,
    state_digest: str | None,
) -> BuildResult | None:
    """The last build's result, if every input is byte for byte what it was then."""
    if state_digest is None:
        return None
    last = cache.last_build(_inputs_digest(options, sources, state_digest))
    if last is None:
        return None
    package_path, summary = last
    return BuildResult.unchanged(package_path, state_path, summary)


def _inputs_digest(options: BuildOptions, sources: Sources, state_digest: str) -> str:
    """Everything a build reads: options, every source file, the state file."""
    digest = hashlib.sha256(repr(replace(options, dry_run=False)).encode())
    digest.update(notetype.note_type_digest().encode())
    for path, key in zip(sources.files, sources.keys, strict=True):
        digest.update(f"\x1e{path}\x1f{key}".encode())
    digest.update(b"\x1e" + state_digest.encode())
    return digest.hexdigest()


@contextlib.contextmanager
def _gone_if_failed(folder: Path) -> Iterator[None]:
    """A build that fails leaves no output folder it created: it may have begun filling
    the cache there before it found the problem."""
    created = not folder.exists()
    try:
        yield
    except BaseException:
        if created:
            shutil.rmtree(folder / CACHE_FILE_NAME, ignore_errors=True)
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if nothing else is in it
        raise


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


def _file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class Sources:
    """Every source file, read: the job that turns it into cards, or why it cannot be read."""

    root: Path
    files: tuple[Path, ...]
    jobs: tuple[_FileJob | SourceError, ...]
    keys: tuple[str, ...]  # what the file's cards depend on; "" for an unreadable file


def read_sources(options: BuildOptions) -> Sources:
    """Find every source file and what its cards depend on (its bytes are not kept)."""
    root = source_root(options.sources)
    files = find_sources(options.sources)
    single_file = len(files) == 1
    jobs: list[_FileJob | SourceError] = []
    keys: list[str] = []
    for path in files:
        try:
            data = _read_bytes(path)
        except SourceError as exc:
            jobs.append(exc)
            keys.append("")
            continue
        job = _FileJob(
            path,
            _relative(path, root),
            len(data),
            root,
            options.encoding,
            options.parse,
            options.deck,
            single_file,
        )
        jobs.append(job)
        keys.append(file_key(data, job.options_key))
    return Sources(root, tuple(files), tuple(jobs), tuple(keys))


def collect(
    options: BuildOptions,
    progress: Callable[[int, int], None] | None = None,
    cache: Cache | None = None,
    sources: Sources | None = None,
    html_in_cache: bool = False,
) -> Collected:
    """Parse and render every source file into cards, reusing cached files.

    With `html_in_cache`, new cards are written to the cache at once and keep their HTML
    there, not in memory, until it is packaged.
    """
    sources = sources or read_sources(options)
    store = None  # where to write new cards: the cache's folder, and its environment
    if html_in_cache and cache is not None and cache.folder is not None:
        with contextlib.suppress(OSError):  # a cache that cannot be written is only slower
            (cache.folder / "files").mkdir(parents=True, exist_ok=True)
            store = (cache.folder, cache.environment)
    files, root = sources.files, sources.root
    results: list[FileResult | SourceError | None] = [None] * len(files)
    todo: list[tuple[int, _FileJob]] = []
    for index, (job, key) in enumerate(zip(sources.jobs, sources.keys, strict=True)):
        if isinstance(job, SourceError):
            results[index] = job
            continue
        cached = cache.get(job.relative, key) if cache is not None else None
        if cached is not None:
            results[index] = cached
        else:
            todo.append((index, job))
    done = len(files) - len(todo)
    processed = _process_all([j for _, j in todo], store)
    for (index, job), (result, key, written) in zip(todo, processed, strict=True):
        results[index] = result
        if cache is not None and isinstance(result, FileResult):
            cache.put(job.relative, key, result, written)
        done += 1
        if progress is not None:
            progress(done, len(files))
    if cache is not None:
        cache.keep_only({job.relative for job in sources.jobs if isinstance(job, _FileJob)})

    unreadable = [r for r in results if isinstance(r, SourceError)]
    if unreadable and not options.skip_unreadable:
        raise UnreadableSourcesError(tuple(unreadable))
    diagnostics = [
        Diagnostic(exc.location or SourceLocation(exc.path, 1), exc.message) for exc in unreadable
    ]
    cards: list[Card] = []
    for outcome in results:
        if isinstance(outcome, FileResult):
            diagnostics.extend(outcome.diagnostics)
            cards.extend(outcome.cards)
    kept, duplicate_problems = _merge_duplicates(cards)
    diagnostics.extend(duplicate_problems)
    return Collected(root, tuple(files), tuple(kept), tuple(diagnostics))


@dataclass(frozen=True, slots=True)
class _FileJob:
    """One source file to turn into cards, with everything that shapes them."""

    path: Path
    relative: str
    size: int  # bytes, to judge whether parsing in parallel pays
    root: Path
    encoding: str
    parse: ParseOptions
    deck_root: str | None
    single_file: bool

    @property
    def options_key(self) -> str:
        shape = (
            self.relative,
            self.root,
            self.encoding,
            self.parse,
            self.deck_root,
            self.single_file,
        )
        return repr(shape)


# Spreading files over processes pays off only when there is enough to parse.
_PARALLEL_MIN_FILES = 8
_PARALLEL_MIN_BYTES = 512 * 1024


def _process_all(
    jobs: Sequence[_FileJob], store: tuple[Path, str] | None = None
) -> Iterator[tuple[FileResult | SourceError, str, bool]]:
    """Turn files into cards, on several cores when there are enough; same order, same result."""
    workers = min(os.cpu_count() or 1, 4, len(jobs))
    if (
        workers < 2
        or len(jobs) < _PARALLEL_MIN_FILES
        or sum(j.size for j in jobs) < _PARALLEL_MIN_BYTES
    ):
        yield from map(functools.partial(_process_file, store=store), jobs)
        return
    import concurrent.futures  # only for a build that parses in parallel
    import multiprocessing

    context = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    )
    chunk = max(1, len(jobs) // (workers * 8))
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield from pool.map(functools.partial(_process_file, store=store), jobs, chunksize=chunk)


_RENDERER: Renderer | None = None


def _process_file(
    job: _FileJob, store: tuple[Path, str] | None = None
) -> tuple[FileResult | SourceError, str, bool]:
    """Read, parse and render one file (in this process or a worker); return its key too,
    and whether its cards went to the cache at `store` (a folder and its environment).

    The file is read again here rather than kept in memory since it was hashed: a large
    collection's Markdown need not sit in the main process, nor travel to the workers. The
    key returned is that of the bytes actually parsed.
    """
    global _RENDERER
    if _RENDERER is None:
        from anki_genai.render import Renderer  # not needed when every file is cached

        _RENDERER = Renderer(markdown_parser())
    renderer = _RENDERER
    try:
        data = _read_bytes(job.path)
        key = file_key(data, job.options_key)
        text = decode_source(data, job.path, job.encoding)
        document = parse_markdown(text, job.path, renderer.md, job.parse)
    except SourceError as exc:
        return exc, "", False
    own = document.deck or document.title or job.path.stem
    deck = file_deck(job.deck_root, own, job.relative, job.single_file)
    cards, image_problems = make_cards(document, deck, job.relative, renderer, job.root)
    result = FileResult(tuple(cards), (*document.diagnostics, *image_problems))
    if store is not None:
        # Written here, by the worker: its HTML then neither travels back nor waits in
        # the main process for packaging.
        with contextlib.suppress(OSError):  # not written: the cards keep their HTML
            return write_entry(*store, job.relative, key, result), key, True
    return result, key, False


def _relative(path: Path, root: Path) -> str:
    real = _real(path)
    return real.relative_to(root).as_posix() if real.is_relative_to(root) else path.name


def _plan(
    collected: Collected, state: State, state_path: Path, options: BuildOptions
) -> tuple[BuildResult, list[package.PackagedNote], State]:
    """Match the cards against the state: the result, the notes to package, the next state."""
    now = identity.build_timestamp(state)
    cards = collected.cards
    candidates = [
        Candidate(
            c.question_text, c.answer_digest, c.digest, c.source_file, c.explicit_id, c.question_key
        )
        for c in cards
    ]
    plan = identity.assign_identities(candidates, state, now)
    _check_state_belongs_here(state, state_path, candidates, plan)
    note_type_digest = notetype.note_type_digest()
    note_type_mod = state.note_type_mod if state.note_type_digest == note_type_digest else now

    package_path = output_path(options, collected.root, {c.deck for c in cards})
    tombstones = _tombstones(plan, package_path)
    newly_removed = set(plan.newly_removed)
    new_state = identity.updated_state(
        candidates, plan, tombstones, note_type_digest, note_type_mod
    )
    # Matching's working objects go before the packaged notes are made: at 100,000 notes
    # they are what tips a build over 300 MB.
    del candidates
    counts: Counter[Status] = Counter()
    deck_counts: dict[str, Counter[Status]] = {}
    changes: list[PlannedNote] = []
    packaged: list[package.PackagedNote] = []
    for card, a in zip(cards, plan.assignments, strict=True):
        counts[a.status] += 1
        deck_counts.setdefault(card.deck, Counter())[a.status] += 1
        if a.status is not Status.UNCHANGED:
            changes.append(PlannedNote(card, a.guid, a.mod, a.status, a.previous_question))
        digest = f"{card.digest}:{card.location.line}"
        packaged.append(
            package.PackagedNote(
                a.guid, card.deck, card.fields, digest, card.tags, a.mod, card.media
            )
        )
    del plan
    for r in tombstones:
        if r.guid in newly_removed:
            changes.append(
                PlannedNote(None, r.guid, r.mod, Status.REMOVED, r.question, removed_deck=r.deck)
            )
            deck_counts.setdefault(r.deck, Counter())[Status.REMOVED] += 1
        packaged.append(
            package.PackagedNote(
                r.guid,
                r.deck,
                functools.partial(_five, r.fields),
                hashlib.sha256("\x1f".join(r.fields).encode()).hexdigest(),
                (*r.tags, identity.REMOVED_TAG),
                r.mod,
            )
        )
    counts[Status.REMOVED] = len(newly_removed)
    result = BuildResult(
        package_path,
        state_path,
        len(collected.files),
        tuple(changes),
        collected.diagnostics,
        False,
        counts,
        note_count=len(cards),
        deck_counts=deck_counts,
    )
    return result, packaged, new_state


def _write_package(
    packaged: Sequence[package.PackagedNote],
    note_type_mod: int,
    package_path: Path,
    keep: Path | None,
) -> None:
    try:
        package.write_package(packaged, note_type_mod, package_path, keep)
    except OSError as exc:
        raise AnkiGenaiError(
            f"{package_path}: cannot write the package ({exc.strerror}); "
            "choose a writable output with -o"
        ) from None


def _write_state(state: State, state_path: Path, package_folder: Path) -> str:
    """Save the state, once its package is written; return the new file's digest."""
    if state_path.exists():
        # The last good state, kept with the outputs, for when the committed one gets mangled.
        shutil.copyfile(state_path, package_folder / STATE_BACKUP_NAME)
    try:
        return identity.save_state(state, state_path)
    except OSError as exc:
        raise AnkiGenaiError(
            f"{state_path}: cannot write the state file ({exc.strerror})"
        ) from None


def _check_output_outside_sources(folder: Path, sources: Sequence[Path]) -> None:
    """Refuse an output folder that a later build would read back as sources.

    Folders named `build` and hidden folders are never searched, so `anki-genai build .`
    with the default `build/` output is fine.
    """
    output = folder.resolve()
    for source in sources:
        if not source.is_dir() or not output.is_relative_to(source.resolve()):
            continue
        inside = output.relative_to(source.resolve()).parts
        if not any(_skipped_folder(part) for part in inside):
            raise AnkiGenaiError(
                f"{folder}: the output folder is inside the sources ({source}), where the "
                "next build would read it; choose an output outside them with -o, e.g. -o build"
            )


def _check_state_belongs_here(
    state: State, state_path: Path, candidates: Sequence[Candidate], plan: identity.IdentityPlan
) -> None:
    """Refuse a state file none of whose notes or files appear in these sources."""
    live = [r for r in state.notes.values() if not r.removed]
    if not live or not candidates:
        return
    if any(a.status is not Status.NEW for a in plan.assignments):
        return
    if {r.file for r in live} & {c.file for c in candidates}:
        return
    raise StateError(
        f"{state_path}: none of the {len(live)} notes in this state file is in these sources, "
        "so it probably belongs to another project. If so, put back this project's state "
        "file (git checkout, or the backup in the output folder); if you really replaced "
        "every note, move the file away and build again."
    )


def _remove_stale_temporary_files(folder: Path) -> None:
    # A build killed mid-write (SIGKILL, power loss) leaves its temporary package behind;
    # we hold the lock, so no other build is writing one now.
    if folder.is_dir():
        for stale in folder.glob(".*.apkg.*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()


def _five(fields: Sequence[str]) -> tuple[str, str, str, str, str]:
    padded = (*fields, "", "", "", "", "")[:5]
    return (padded[0], padded[1], padded[2], padded[3], padded[4])


def _tombstones(plan: identity.IdentityPlan, previous_package: Path) -> list[identity.NoteRecord]:
    """Give every removed note the content and deck it last had in Anki."""
    fresh = set(plan.newly_removed)
    previous = package.read_notes(previous_package, fresh) if fresh else {}
    tombstones = []
    for record in plan.removed:
        if record.guid in fresh:
            known = previous.get(record.guid)
            if known is not None:
                record = replace(
                    record, deck=known.deck or REMOVED_DECK, fields=known.fields, tags=known.tags
                )
            else:
                # The previous package is gone, so its exact content is unknown: say so on the card.
                fields = (
                    html.escape(record.question),
                    REMOVED_ANSWER,
                    "",
                    html.escape(record.file),
                    "",
                )
                record = replace(record, deck=REMOVED_DECK, fields=fields, tags=())
        tombstones.append(record)
    return tombstones


def _merge_duplicates(cards: Sequence[Card]) -> tuple[list[Card], list[Diagnostic]]:
    """Keep one card per identical question and answer; warn about every repeated question.

    Two pairs with one explicit id would share a GUID, and Anki could then never update
    either: the second is an error and is left out.
    """
    first_seen: dict[tuple[str, str], Card] = {}
    first_question: dict[str, Card] = {}
    explicit_ids: dict[str, Card] = {}
    kept: list[Card] = []
    problems: list[Diagnostic] = []
    for card in cards:
        if card.explicit_id is not None:
            owner = explicit_ids.setdefault(card.explicit_id, card)
            if owner is not card:
                problems.append(
                    Diagnostic(
                        card.location,
                        f"anki-genai-id {card.explicit_id!r} is already used at {owner.location}; "
                        "give each pair its own id",
                    )
                )
                continue
        question = card.question_key
        key = (question, card.answer_digest)
        if key in first_seen:
            problems.append(
                Diagnostic(
                    card.location,
                    f"same question and answer as {first_seen[key].location}; built once",
                    Severity.WARNING,
                )
            )
            continue
        if question in first_question:
            problems.append(
                Diagnostic(
                    card.location,
                    f"same question as {first_question[question].location} with another answer; "
                    "built as two notes (reword one question to tell them apart)",
                    Severity.WARNING,
                )
            )
        first_seen[key] = card
        first_question.setdefault(question, card)
        kept.append(card)
    return kept, problems


# --- sources ----------------------------------------------------------------------------------


CONFIG_FILE_NAME = "anki-genai.toml"
_CONFIG_KEYS = {
    "deck": str,
    "layout": str,
    "question_words": list,
    "answer_words": list,
    "encoding": str,
    "output": str,
    "strict": bool,
}


def load_config(root: Path) -> dict[str, object]:
    """Read `anki-genai.toml` in the source folder: options the user would otherwise repeat."""
    path = root / CONFIG_FILE_NAME
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return {}
    import tomllib  # only when there is a config file to read

    try:
        with handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix or remove it") from None
    for key, value in data.items():
        expected = _CONFIG_KEYS.get(key)
        if expected is None:
            known = ", ".join(sorted(_CONFIG_KEYS))
            raise ConfigError(f"{path}: unknown setting {key!r}; known settings: {known}")
        if not isinstance(value, expected):
            raise ConfigError(f"{path}: {key} must be a {expected.__name__}")
    if "layout" in data and data["layout"] not in {layout.value for layout in Layout}:
        raise ConfigError(f"{path}: layout must be one of markers, headings, bold")
    if "encoding" in data:
        try:
            codecs.lookup(data["encoding"])
        except LookupError:
            raise ConfigError(
                f"{path}: unknown encoding {data['encoding']!r}; use one Python knows, "
                "e.g. utf-8 or gbk"
            ) from None
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


def source_root(sources: Sequence[Path]) -> Path:
    """Return the folder the state file lives in: the common folder of all sources."""
    folders = [p if p.is_dir() else p.parent for p in sources]
    return Path(os.path.commonpath([_real(f) for f in folders])) if folders else Path.cwd()


def find_sources(sources: Sequence[Path]) -> list[Path]:
    """Return every Markdown file in `sources`, as the user named them; folders are searched."""
    found: dict[Path, Path] = {}  # real path -> as named, so a file given twice is read once
    for source in sources:
        if not source.exists():
            raise SourceError("no such file or folder", source)
        paths = sorted(_walk_markdown(source)) if source.is_dir() else [source]
        if not paths:
            raise SourceError(
                "no Markdown files (*.md) in this folder or below it; name the folder that "
                "holds your notes",
                source,
            )
        for path in paths:
            found.setdefault(_real(path), path)
    return list(found.values())


def _walk_markdown(folder: Path) -> Iterator[Path]:
    def unreadable(error: OSError) -> None:
        raise SourceError(
            f"cannot read the folder: {error.strerror}; allow reading it, or name only the "
            "folders to build",
            Path(error.filename),
        )

    # Symlinked folders are not followed, so a link loop cannot make the walk endless.
    for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable):
        dirnames[:] = sorted(d for d in dirnames if not _skipped_folder(d))
        for name in filenames:
            if name.endswith(".md") and not name.startswith("."):
                yield Path(dirpath) / name


def _skipped_folder(name: str) -> bool:
    """Hidden folders and build outputs are never sources."""
    return name.startswith(".") or name == "build"


def _real(path: Path) -> Path:
    # os.path.realpath, unlike Path.resolve, does not raise on a symlink loop.
    return Path(os.path.realpath(path))


def read_source(path: Path, encoding: str = "utf-8") -> str:
    """Read a Markdown file; UTF-8 may start with a BOM."""
    return decode_source(_read_bytes(path), path, encoding)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SourceError(
            f"cannot read the file: {exc.strerror}", SourceLocation(path, 1)
        ) from None


def decode_source(data: bytes, path: Path, encoding: str = "utf-8") -> str:
    """Decode a Markdown file's bytes, naming the line and the fix when they do not decode."""
    codec = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SourceError(
            f"not valid {encoding}; convert it (e.g. `iconv -f gbk -t utf-8 FILE > NEW.md`) "
            "or name its encoding with --encoding gbk",
            SourceLocation(path, line),
        ) from None


def file_deck(root_deck: str | None, own: str, relative: str, single_file: bool) -> str:
    """Name a file's deck: `--deck`, then its folders, then its own name.

    A file's own deck name is its front matter's `deck`, else its title heading, else its
    file name. Files in sub-folders of the source folder go into decks named after those
    folders (`go/basics.md` -> `go::<own>`), and `--deck NAME` is the parent of them all;
    when the build reads one single file, `--deck NAME` is its deck.
    """
    if root_deck and single_file:
        return deck_name(root_deck)
    folders = relative.split("/")[:-1]
    return deck_name("::".join([*([root_deck] if root_deck else []), *folders, own]))


def deck_name(name: str | None, fallback: str = "") -> str:
    """Return `name` as a valid Anki deck name: no empty parts around or between `::`."""
    parts = [part.strip() for part in (name or "").split("::")]
    cleaned = "::".join(part for part in parts if part)
    if cleaned:
        return cleaned
    if fallback:
        return deck_name(fallback)
    raise AnkiGenaiError(f"{name!r} is not a usable deck name; give a name such as 'Interview::Go'")


def output_path(options: BuildOptions, root: Path, decks: set[str]) -> Path:
    """Return where the package goes: `-o FILE.apkg`, or the output folder and a derived name."""
    if options.output.suffix == ".apkg":
        return options.output
    name = next(iter(decks)) if len(decks) == 1 else root.name
    return options.output / (_safe_file_name(name) + ".apkg")


def _safe_file_name(name: str) -> str:
    return re.sub(r'[\\/:*?"<>|\s]+', "-", name).strip("-.") or "deck"
