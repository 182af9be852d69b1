"""A cache of each source file's cards, so a rebuild only parses the files that changed.

It lives in the output folder and is only ever a shortcut: an entry is used when the file's
bytes, the options that shape its cards, the versions of the tools that render them and
the images it shows are all unchanged. A missing, foreign or damaged cache is rebuilt,
never an error; deleting it is always safe.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anki_genai import __version__
from anki_genai.atomic import atomic_write
from anki_genai.cards import Card
from anki_genai.errors import Diagnostic, SourceLocation
from anki_genai.media import MediaFile
from anki_genai.sources import KnownKey
from anki_genai.store import (
    StoredHtml,
    dump_json,
    file_stat,
    read_checked,
    write_checked,
)

CACHE_FILE_NAME = ".anki-genai-cache"  # a folder in the output folder
# Entries hold a token since 8, a card's content digest since 9; 10: media checked by
# their bytes, math without links, Obsidian embeds (new HTML, new warnings); 11: each
# file's layout; 12: a marker on the next line of a paragraph starts a block, a title
# heading over the first question names the deck.
_FORMAT = 12


@dataclass(frozen=True, slots=True)
class FileResult:
    """What one source file yields: its cards and its problems."""

    cards: tuple[Card, ...]
    diagnostics: tuple[Diagnostic, ...]
    layout: str = ""  # the layout the file was read in, for `-v`


@dataclass(frozen=True, slots=True)
class RememberedFile:
    """A file's result kept in memory between builds of one process (`build --watch`)."""

    key: str
    result: FileResult
    media: tuple[tuple[str, int, int], ...]  # each image's path, size and mtime


def environment_key() -> str:
    """The tool versions that decide what a card's HTML looks like."""
    # The packages' own version attributes, not importlib.metadata: importing that alone
    # takes 20 ms, a tenth of a rebuild that finds nothing changed.
    import markdown_it
    import mdit_py_plugins
    import nh3
    import pygments

    nh3_version = str(getattr(nh3, "__version__", "?"))  # not in nh3's type stubs
    versions = (markdown_it.__version__, mdit_py_plugins.__version__, pygments.__version__)
    return "/".join((__version__, str(_FORMAT), *versions, nh3_version))


class Cache:
    """Cached file results by relative path, and what the last build read and wrote.

    A small index, read on every build, and one file of cards per source file, read when
    that file is looked up (an unchanged rebuild reads none) and again for the HTML of the
    notes a build packages. A build's new files are written as their cards are made, or
    at `save`.
    """

    def __init__(
        self,
        folder: Path | None,
        environment: str,
        memory: dict[str, RememberedFile] | None = None,
    ) -> None:
        self.folder = folder
        self.environment = environment
        # Results by relative path, kept by a process that builds again and again: they are
        # looked up first, and every result read or made goes there too.
        self._memory = memory
        self.package: dict[str, object] = {}
        self.last: dict[str, Any] = {}
        self._fresh: dict[str, tuple[str, FileResult]] = {}  # relative -> (key, result)
        self._keep: set[str] | None = None  # the files still in the sources
        self._index_changed = False
        self.write_failure: str | None = None  # why the cache could not be saved, if so
        index = self._read("index.json")
        if isinstance(index.get("package"), dict) and isinstance(index.get("last"), dict):
            self.package, self.last = index["package"], index["last"]
        self._keys: dict[str, Any] = index.get("sources") or {}

    def _read(self, name: str) -> dict[str, Any]:
        if self.folder is None:
            return {}
        try:
            text = (self.folder / name).read_text(encoding="utf-8")
            # Plain JSON, with no checksum: a flipped digit can make "1e999", infinity,
            # which no stamp or count can be.
            data = json.loads(text, parse_float=_finite, parse_constant=_finite)
        except (OSError, ValueError):
            return {}  # missing or damaged: start afresh
        if not isinstance(data, dict) or data.get("environment") != self.environment:
            return {}
        return data

    def _read_entry(self, relative: str) -> dict[str, Any]:
        if self.folder is None:
            return {}
        entry = read_checked(self.folder / _entry_name(relative))
        if not isinstance(entry, dict) or entry.get("environment") != self.environment:
            return {}
        return entry

    def get(self, relative: str, key: str) -> FileResult | None:
        remembered = self._memory.get(relative) if self._memory is not None else None
        if remembered is not None and remembered.key == key and _all_unchanged(remembered.media):
            return remembered.result
        entry = self._read_entry(relative)
        if entry.get("relative") != relative or entry.get("key") != key:
            return None
        try:
            media = tuple((str(p), int(s), int(m)) for p, s, m in entry["media"])
            if not _all_unchanged(media):
                return None
            path = Path(str(entry["path"]))
            token = bytes(entry["token"])
            # A process that builds again and again keeps the HTML; otherwise it stays here.
            folder = self.folder if self._memory is None else None
            stored = folder / _entry_name(relative) if folder is not None else None
            cards = tuple(
                _card_from_list(c, path, StoredHtml(stored, token, i) if stored else None)
                for i, c in enumerate(entry["cards"])
            )
            problems = tuple(Diagnostic.from_list(d) for d in entry["diagnostics"])
            layout = str(entry["layout"])
        except (KeyError, TypeError, ValueError, OSError):
            return None
        result = FileResult(cards, problems, layout)
        if self._memory is not None:
            self._memory[relative] = RememberedFile(key, result, media)
        return result

    def put(self, relative: str, key: str, result: FileResult, written: bool = False) -> None:
        """Add a file's new result; `written` if its entry is on disk already."""
        if not written:
            self._fresh[relative] = (key, result)
        if self._memory is not None:
            try:
                media = tuple(_stat(p) for p in _media_paths(result))
            except OSError:  # an image gone since: the next build reads the file again
                self._memory.pop(relative, None)
                return
            self._memory[relative] = RememberedFile(key, result, media)

    def writable_store(self) -> tuple[Path, str] | None:
        """Where workers may write new entries (the folder and its environment), if anywhere."""
        if self.folder is None:
            return None
        try:
            (self.folder / "files").mkdir(parents=True, exist_ok=True)
        except OSError:  # a cache that cannot be written is only slower
            return None
        return self.folder, self.environment

    def keep_only(self, relatives: set[str]) -> None:
        """Forget the files that are no longer among the sources (the cache's on saving)."""
        self._keep = relatives
        if self._memory is not None:
            for gone in self._memory.keys() - relatives:
                del self._memory[gone]

    def package_is_current(self, path: Path, digest: str) -> bool:
        """True when the package at `path` is the one last written with content `digest`."""
        if self.package.get("digest") != digest or self.package.get("path") != str(path):
            return False
        stat = self.package.get("stat")
        try:
            return isinstance(stat, list) and list(_stat(path)[1:]) == stat
        except OSError:
            return False

    def remember_package(self, path: Path, digest: str) -> None:
        self.package = {"path": str(path), "digest": digest, "stat": list(_stat(path)[1:])}
        self._index_changed = True

    def known_keys(self) -> dict[str, KnownKey]:
        """Each source file's key as the last build took it, with the file's stamp then."""
        known = {}
        with contextlib.suppress(TypeError, ValueError):
            for path, (stamp, taken, shape, key) in self._keys.items():
                size, mtime, ctime, inode = stamp
                known[str(path)] = (
                    (int(size), int(mtime), int(ctime), int(inode)),
                    int(taken),
                    str(shape),
                    str(key),
                )
        return known

    def remember_keys(self, known: dict[str, KnownKey] | None) -> None:
        """Keep each source file's key and stamp for the next build (`known_keys`)."""
        stored = {path: [list(stamp), *rest] for path, (stamp, *rest) in (known or {}).items()}
        if stored != self._keys:
            self._keys = stored
            self._index_changed = True

    def remember_build(
        self, inputs: str, package_path: Path, summary: dict[str, object], media: list[Path]
    ) -> None:
        """Remember what a build read and reported, for a rebuild that finds it all unchanged."""
        record = {
            "inputs": inputs,
            "package": str(package_path),
            "summary": summary,
            "media": [_stat(p) for p in media],
        }
        if self.last != record:
            self.last = record
            self._index_changed = True

    def last_build(self, inputs: str) -> tuple[Path, dict[str, Any]] | None:
        """The last build's package and summary, if it read exactly `inputs` and is intact."""
        last = self.last
        if not last or last.get("inputs") != inputs:
            return None
        try:
            package_path = Path(str(last["package"]))
            if not self.package_is_current(package_path, str(self.package.get("digest"))):
                return None
            if not _all_unchanged(last["media"]):
                return None
            summary = last["summary"]
        except (KeyError, TypeError, ValueError):
            return None
        return (package_path, summary) if isinstance(summary, dict) else None

    def save(self) -> None:
        if self.folder is None:
            return
        files = self.folder / "files"
        try:  # a cache that cannot be written is only slower: the build says so, and goes on
            files.mkdir(parents=True, exist_ok=True)
            # One small file per source file: a rebuild rewrites only the entries that
            # changed, and never holds the whole cache as one document.
            for relative, (key, result) in self._fresh.items():
                write_entry(self.folder, self.environment, relative, key, result)
            if self._keep is not None:
                # Names as strings: a large project has thousands of entries to look over.
                wanted = {_entry_name(relative).rpartition("/")[2] for relative in self._keep}
                for name in os.listdir(files):
                    if name not in wanted:
                        (files / name).unlink()
            if self._index_changed:
                index = {
                    "environment": self.environment,
                    "package": self.package,
                    "last": self.last,
                    "sources": self._keys,
                }
                atomic_write(
                    self.folder / "index.json", functools.partial(dump_json, index), durable=False
                )
        except OSError as exc:
            self.write_failure = exc.strerror or str(exc)
        self._fresh.clear()


def _entry_name(relative: str) -> str:
    return f"files/{hashlib.sha1(relative.encode()).hexdigest()}.bin"


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {text}")
    return number


def write_entry(
    folder: Path, environment: str, relative: str, key: str, result: FileResult
) -> FileResult:
    """Write one file's cache entry; return its result with each card's HTML left there."""
    path = folder / _entry_name(relative)
    paths = {card.location.path for card in result.cards}
    entry: dict[str, object] = {
        "environment": environment,
        "relative": relative,
        "key": key,
        "path": str(paths.pop()) if len(paths) == 1 else "",
        "media": [_stat(p) for p in _media_paths(result)],
        "cards": [_card_to_list(c) for c in result.cards],
        "diagnostics": [d.to_list() for d in result.diagnostics],
        "layout": result.layout,
    }
    token = entry["token"] = os.urandom(8)
    write_checked(path, entry)
    cards = tuple(
        card.stored_at(StoredHtml(path, token, index)) for index, card in enumerate(result.cards)
    )
    return FileResult(cards, result.diagnostics, result.layout)


def _stat(path: Path) -> tuple[str, int, int]:
    size, mtime_ns = file_stat(path)
    return str(path), size, mtime_ns


def _media_paths(result: FileResult) -> list[Path]:
    return sorted({file.path for card in result.cards for file in card.media})


def _all_unchanged(media: Iterable[tuple[str, int, int]]) -> bool:
    return all(_unchanged(Path(p), s, m) for p, s, m in media)


def _unchanged(path: Path, size: int, mtime_ns: int) -> bool:
    try:
        return _stat(path)[1:] == (size, mtime_ns)
    except OSError:
        return False


def _card_to_list(card: Card) -> list[object]:
    # A list, not a dict: a large deck's cache holds hundreds of thousands of these.
    return [
        card.deck,
        card.packed(),
        card.context,
        card.source_file,
        card.location.line,
        card.question_text,
        list(card.tags),
        card.explicit_id,
        [[str(m.path), m.name] for m in card.media],
        card.question_key,
        card.answer_digest,
        card.digest,
        card.shown_digest,
    ]


def _card_from_list(data: list[Any], path: Path, stored: StoredHtml | None) -> Card:
    (deck, packed, context, source_file, line, question_text, tags, explicit_id, media,
     question_key, answer_digest, digest, shown_digest) = data  # fmt: skip
    return Card(
        deck=str(deck),
        packed_html=stored or bytes(packed),
        context=str(context),
        source_file=str(source_file),
        location=SourceLocation(path, int(line)),
        question_text=str(question_text),
        tags=tuple(str(t) for t in tags),
        explicit_id=None if explicit_id is None else str(explicit_id),
        media=tuple(MediaFile(Path(p), str(n)) for p, n in media),
        question_key=str(question_key),
        answer_digest=str(answer_digest),
        digest=str(digest),
        shown_digest=str(shown_digest),
    )
