"""Turning source files into cards, in this process or spread over worker processes."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from anki_genai.cache import FileResult, write_entry
from anki_genai.cards import make_cards
from anki_genai.decoding import decode_source, read_bytes
from anki_genai.errors import SourceError
from anki_genai.parse import markdown_parser, parse_markdown
from anki_genai.sources import FileJob, file_deck

if TYPE_CHECKING:
    from anki_genai.render import Renderer

# With no `workers` given, spreading files over processes pays off only when there is
# enough to parse.
_PARALLEL_MIN_FILES = 8
_PARALLEL_MIN_BYTES = 512 * 1024
_MAX_WORKERS = 4

# (folder, environment): where a worker writes the cache entry of the file it made cards of.
Store = tuple[Path, str]
# The file's cards or why it has none, its key, whether its cards went to the cache, and
# how many seconds it took.
Processed = tuple[FileResult | SourceError, str, bool, float]


def default_workers(jobs: Sequence[FileJob]) -> int:
    """How many processes pay off for `jobs`: one unless there is enough to parse."""
    if len(jobs) < _PARALLEL_MIN_FILES or sum(j.size for j in jobs) < _PARALLEL_MIN_BYTES:
        return 1
    return min(os.cpu_count() or 1, _MAX_WORKERS, len(jobs))


def process_all(
    jobs: Sequence[FileJob], store: Store | None = None, workers: int | None = None
) -> Iterator[Processed]:
    """Turn files into cards on `workers` processes (1: this one; None: as pays off).

    Same order, same result, however many processes.
    """
    count = min(default_workers(jobs) if workers is None else workers, len(jobs))
    process = functools.partial(process_file, store=store)
    if count < 2:
        yield from map(process, jobs)
        return
    import concurrent.futures  # only for a build that parses in parallel
    import multiprocessing

    context = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    )
    # Small chunks: the last one keeps one core busy while the other waits for it.
    chunk = max(1, len(jobs) // (count * 32))
    with concurrent.futures.ProcessPoolExecutor(
        count, mp_context=context, initializer=_end_with, initargs=(os.getpid(),)
    ) as pool:
        yield from pool.map(process, jobs, chunksize=chunk)


def _end_with(parent: int) -> None:
    """Make this worker end when the build that started it ends, however it ends: a build
    killed by SIGKILL or the OOM killer cannot tell its workers to stop."""
    # Ctrl-C reaches every process of the terminal's group: a worker would print its own
    # traceback. The main process stops the build and the pool instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)
    else:  # pragma: no cover - CI runs on Linux
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # it died before we asked to go with it
        os._exit(1)


def _watch_parent(parent: int) -> None:  # pragma: no cover - CI runs on Linux
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


def warm_up() -> None:
    """Load now what a rebuild after an edit needs: the renderer, and genanki to patch the
    package. A watching process does it while it waits, so that its first save costs what
    the later ones do; an unchanged project's first build needed neither."""
    from anki_genai.apkg.collection import CollectionWriter

    _renderer()
    CollectionWriter()


@functools.cache
def _renderer() -> Renderer:
    """One renderer per process: building its parser and sanitiser takes a while."""
    from anki_genai.render import Renderer  # not needed when every file is cached

    return Renderer(markdown_parser())


def process_file(job: FileJob, store: Store | None = None) -> Processed:
    """Read, parse and render one file (in this process or a worker); return its key too,
    and whether its cards went to the cache at `store`.

    The file is read again here rather than kept in memory since it was hashed: a large
    collection's Markdown need not sit in the main process, nor travel to the workers. The
    key returned is that of the bytes actually parsed.
    """
    start = time.perf_counter()
    renderer = _renderer()
    try:
        data = read_bytes(job.path)
        key = job.key(data)
        text = decode_source(data, job.path, job.encoding)
        document = parse_markdown(text, job.path, renderer.md, job.parse)
    except SourceError as exc:
        return exc, "", False, time.perf_counter() - start
    own = document.deck or document.title or job.path.stem
    deck = file_deck(job.deck_root, own, job.relative, job.single_file)
    cards, image_problems = make_cards(document, deck, job.relative, renderer, job.root)
    diagnostics = (*document.diagnostics, *image_problems)
    result = FileResult(tuple(cards), diagnostics, document.layout.value)
    if store is not None:
        # Written here, by the worker: its HTML then neither travels back nor waits in
        # the main process for packaging.
        with contextlib.suppress(OSError):  # not written: the cards keep their HTML
            stored = write_entry(*store, job.relative, key, result)
            return stored, key, True, time.perf_counter() - start
    return result, key, False, time.perf_counter() - start
