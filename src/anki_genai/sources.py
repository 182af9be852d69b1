"""The Markdown sources of a build: each file's job and key (walking the folders is
`walk`'s, decoding a file `decoding`'s); deck names; where the package goes."""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from anki_genai.config import CONFIG_FILE_NAME
from anki_genai.decoding import read_bytes
from anki_genai.errors import AnkiGenaiError, Diagnostic, Severity, SourceError
from anki_genai.parse import ParseOptions
from anki_genai.statefile import STATE_FILE_NAME
from anki_genai.walk import Stamp, found_files, real_path, relative_in, skipped_folder, stamp_of

PACKAGE_SUFFIX = ".apkg"
PAGE_SUFFIXES = (".html", ".htm")
PREVIEW_FILE_NAME = "preview.html"


@dataclass(frozen=True, slots=True)
class FileJob:
    """One source file to turn into cards, with everything that shapes them."""

    path: Path
    relative: str  # to the source root, '/'-separated
    size: int  # bytes, to judge whether parsing in parallel pays
    root: Path
    encoding: str
    parse: ParseOptions
    deck_root: str | None
    single_file: bool

    @property
    def options_key(self) -> str:
        # repr((relative, root, encoding, parse, deck_root, single_file)), its shared tail
        # written out once per build rather than once per file.
        shared = _shared_options_repr(
            self.root, self.encoding, self.parse, self.deck_root, self.single_file
        )
        return f"({self.relative!r}, {shared}"

    def key(self, data: bytes) -> str:
        """What this file's cards depend on: its bytes and everything that shapes them."""
        return hashlib.sha256(self.options_key.encode() + b"\0" + data).hexdigest()


@functools.lru_cache(maxsize=8)
def _shared_options_repr(
    root: Path, encoding: str, parse: ParseOptions, deck_root: str | None, single_file: bool
) -> str:
    return repr((root, encoding, parse, deck_root, single_file))[1:]


@dataclass(frozen=True, slots=True)
class Scope:
    """The files a build speaks for. A build of one file or folder of a project leaves the
    notes of every other file as they are: it neither reports, removes nor forgets them."""

    named: tuple[str, ...]  # relative paths: "" the whole project, "dir/" a folder, a file
    skipped: frozenset[str] = frozenset()  # files in it whose cards could not be made now

    def __contains__(self, relative: object) -> bool:
        if not isinstance(relative, str) or relative in self.skipped:
            return False
        return any(
            n == "" or relative == n or (n.endswith("/") and relative.startswith(n))
            for n in self.named
        )

    def without(self, relatives: Iterable[str]) -> Scope:
        """This scope, less files that could not be read this time (their notes stay)."""
        return Scope(self.named, self.skipped | frozenset(relatives))


# What a file's key was when it had a stamp: the stamp, when it was taken (ns), the digest of
# the options that shape the key, and the key.
KnownKey = tuple[Stamp, int, str, str]
# A file untouched for this long before its key was taken keeps that key while its stamp
# stays the same: a file's times tick coarsely, so a write just after it was read could
# leave the same stamp (git calls such an entry "racily clean").
_QUIET_NS = 2_000_000_000


@dataclass(frozen=True, slots=True)
class Sources:
    """Every source file, read: the job that turns it into cards, or why it cannot be read."""

    root: Path
    files: tuple[Path, ...]
    jobs: tuple[FileJob | SourceError, ...]
    keys: tuple[str, ...]  # what the file's cards depend on; "" for an unreadable file
    skipped: tuple[Diagnostic, ...] = ()  # what was passed over: FIFOs, devices, ...
    scope: Scope = Scope(("",))
    known: dict[str, KnownKey] | None = None  # every file's key with its stamp, by path


def read_sources(
    paths: Sequence[Path],
    encoding: str,
    parse: ParseOptions,
    deck: str | None,
    encodings: Sequence[tuple[str, str]] = (),
    known: Mapping[str, KnownKey] | None = None,
) -> Sources:
    """Find every source file and what its cards depend on (its bytes are not kept).

    `encodings` are (glob, encoding) pairs for files whose encoding is not `encoding`; the
    first glob that matches a file's path relative to the root wins. A file whose stamp is
    in `known` as it is now, taken while the file was quiet, is not read again.
    """
    root = source_root(paths)
    found, skipped = found_files(paths)
    files = [path for path, _, _ in found]
    single_file = len(files) == 1
    jobs: list[FileJob | SourceError] = []
    keys: list[str] = []
    stamps: dict[str, KnownKey] = {}
    for path, real, stamp in found:
        relative = relative_in(real, root) or path.name
        own = next((e for glob, e in encodings if fnmatch.fnmatch(relative, glob)), encoding)
        size = stamp[0] if stamp is not None else 0
        job = FileJob(path, relative, size, root, own, parse, deck, single_file)
        shape = hashlib.sha256(job.options_key.encode()).hexdigest()[:32]
        was = known.get(str(path)) if known is not None and stamp is not None else None
        if was is not None and was[0] == stamp and was[2] == shape and _quiet(stamp, was[1]):
            jobs.append(job)
            keys.append(was[3])
            stamps[str(path)] = was
            continue
        taken = time.time_ns()
        try:
            data = read_bytes(path)
        except SourceError as exc:
            jobs.append(exc)
            keys.append("")
            continue
        job = replace(job, size=len(data))
        jobs.append(job)
        keys.append(job.key(data))
        if stamp is not None and stamp == _stamp(path):  # not written while it was read
            stamps[str(path)] = (stamp, taken, shape, keys[-1])
    return Sources(
        root, tuple(files), tuple(jobs), tuple(keys), tuple(skipped), scope_of(paths, root),
        stamps,
    )  # fmt: skip


def _stamp(path: Path) -> Stamp | None:
    try:
        return stamp_of(os.stat(path))
    except OSError:
        return None


def _quiet(stamp: Stamp, taken: int) -> bool:
    return taken - max(stamp[1], stamp[2]) > _QUIET_NS


def scope_of(paths: Sequence[Path], root: Path) -> Scope:
    """The scope of a build of `paths` in the project at `root`."""
    return Scope(tuple(_named(path, root) for path in paths))


def _named(path: Path, root: Path) -> str:
    if not path.is_dir():
        return relative_to_root(path, root)
    real = real_path(path)
    return "" if real == root else real.relative_to(root).as_posix() + "/"


def source_root(sources: Sequence[Path]) -> Path:
    """Return the project's root, where its state file and anki-genai.toml live.

    As git and black find theirs: the nearest folder at or above the sources that holds
    either file, not looking past the repository's root; else the sources' common folder.
    So a build of one file or sub-folder of a project uses the project's state.
    """
    folders = [p if p.is_dir() else p.parent for p in sources]
    common = Path(os.path.commonpath([real_path(f) for f in folders])) if folders else Path.cwd()
    for folder in (common, *common.parents):
        if (folder / STATE_FILE_NAME).is_file() or (folder / CONFIG_FILE_NAME).is_file():
            return folder
        if (folder / ".git").exists():
            break
    return common


def relative_to_root(path: Path, root: Path) -> str:
    """A source file's path as the state file records it: relative to the root, '/'-separated."""
    return relative_in(real_path(path), root) or path.name


def broken_files(diagnostics: Iterable[Diagnostic], root: Path) -> frozenset[str]:
    """The files, as the state records them, with an error: a pair there gave no card."""
    return frozenset(
        relative_to_root(d.location.path, root) for d in diagnostics if d.severity is Severity.ERROR
    )


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


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders digit runs by number: `文件 11` before `文件 109`."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part.casefold())
        for part in re.split(r"(\d+)", name)
        if part
    )


def deck_name(name: str | None, fallback: str = "") -> str:
    """Return `name` as a valid Anki deck name: no empty parts around or between `::`."""
    parts = [part.strip() for part in (name or "").split("::")]
    cleaned = "::".join(part for part in parts if part)
    if cleaned:
        return cleaned
    if fallback:
        return deck_name(fallback)
    raise AnkiGenaiError(f"{name!r} is not a usable deck name; give a name such as 'Interview::Go'")


def is_package_path(output: Path) -> bool:
    """True when `-o` names the package file itself rather than its folder: it ends in
    .apkg, in any case (`Out.APKG`), and is not a folder that exists."""
    return _names_a_file(output, (PACKAGE_SUFFIX,))


def preview_page(output: Path) -> Path:
    """Where `preview -o` writes: the .html file named, else preview.html in the folder."""
    return output if _names_a_file(output, PAGE_SUFFIXES) else output / PREVIEW_FILE_NAME


def _names_a_file(output: Path, suffixes: tuple[str, ...]) -> bool:
    return output.suffix.lower() in suffixes and not output.is_dir()


def package_folder(output: Path) -> Path:
    """The folder the package, its cache and the state backup go to."""
    return output.parent if is_package_path(output) else output


def output_path(output: Path, root: Path, decks: set[str]) -> Path:
    """Return where the package goes: `-o FILE.apkg`, or the output folder and a derived name."""
    if is_package_path(output):
        return output
    name = next(iter(decks)) if len(decks) == 1 else root.name
    return output / (_safe_file_name(name) + PACKAGE_SUFFIX)


def _safe_file_name(name: str) -> str:
    return re.sub(r'[\\/:*?"<>|\s]+', "-", name).strip("-.") or "deck"


def check_output_outside_sources(folder: Path, sources: Sequence[Path]) -> None:
    """Refuse an output folder that a later build would read back as sources.

    Folders named `build` and hidden folders are never searched, so `anki-genai build .`
    with the default `build/` output is fine.
    """
    output = folder.resolve()
    for source in sources:
        if not source.is_dir() or not output.is_relative_to(source.resolve()):
            continue
        inside = output.relative_to(source.resolve()).parts
        if not any(skipped_folder(part) for part in inside):
            raise AnkiGenaiError(
                f"{folder}: the output folder is inside the sources ({source}), where the "
                "next build would read it; choose an output outside them with -o, e.g. -o build"
            )
