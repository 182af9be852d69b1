"""Finding and decoding the Markdown sources; deck names; where the package goes."""

from __future__ import annotations

import codecs
import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from anki_genai.errors import AnkiGenaiError, SourceError, SourceLocation
from anki_genai.parse import ParseOptions

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
        shape = (
            self.relative,
            self.root,
            self.encoding,
            self.parse,
            self.deck_root,
            self.single_file,
        )
        return repr(shape)

    def key(self, data: bytes) -> str:
        """What this file's cards depend on: its bytes and everything that shapes them."""
        return hashlib.sha256(self.options_key.encode() + b"\0" + data).hexdigest()


@dataclass(frozen=True, slots=True)
class Sources:
    """Every source file, read: the job that turns it into cards, or why it cannot be read."""

    root: Path
    files: tuple[Path, ...]
    jobs: tuple[FileJob | SourceError, ...]
    keys: tuple[str, ...]  # what the file's cards depend on; "" for an unreadable file


def read_sources(
    paths: Sequence[Path], encoding: str, parse: ParseOptions, deck: str | None
) -> Sources:
    """Find every source file and what its cards depend on (its bytes are not kept)."""
    root = source_root(paths)
    files = find_sources(paths)
    single_file = len(files) == 1
    jobs: list[FileJob | SourceError] = []
    keys: list[str] = []
    for path in files:
        try:
            data = read_bytes(path)
        except SourceError as exc:
            jobs.append(exc)
            keys.append("")
            continue
        job = FileJob(
            path, _relative(path, root), len(data), root, encoding, parse, deck, single_file
        )
        jobs.append(job)
        keys.append(job.key(data))
    return Sources(root, tuple(files), tuple(jobs), tuple(keys))


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
        dirnames[:] = sorted(d for d in dirnames if not skipped_folder(d))
        for name in filenames:
            if name.endswith(".md") and not name.startswith("."):
                yield Path(dirpath) / name


def skipped_folder(name: str) -> bool:
    """Hidden folders and build outputs are never sources."""
    return name.startswith(".") or name == "build"


def _real(path: Path) -> Path:
    # os.path.realpath, unlike Path.resolve, does not raise on a symlink loop.
    return Path(os.path.realpath(path))


def _relative(path: Path, root: Path) -> str:
    real = _real(path)
    return real.relative_to(root).as_posix() if real.is_relative_to(root) else path.name


def read_source(path: Path, encoding: str = "utf-8") -> str:
    """Read a Markdown file; UTF-8 may start with a BOM."""
    return decode_source(read_bytes(path), path, encoding)


def read_bytes(path: Path) -> bytes:
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
