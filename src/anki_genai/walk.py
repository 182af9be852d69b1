"""The source folders, walked: every Markdown file once, with its real path and stamp, and
the files passed over because they are not regular files."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from anki_genai.errors import Diagnostic, Severity, SourceError, SourceLocation

# A file's stamp: size, modification and change times (ns), inode.
Stamp = tuple[int, int, int, int]


def find_sources(sources: Sequence[Path]) -> tuple[list[Path], list[Diagnostic]]:
    """Return every Markdown file in `sources`, as the user named them (folders are
    searched), and a warning for each one passed over because it is not a regular file."""
    found, skipped = found_files(sources)
    return [path for path, _, _ in found], skipped


def found_files(
    sources: Sequence[Path],
) -> tuple[list[tuple[Path, str, Stamp | None]], list[Diagnostic]]:
    """As `find_sources`, each file with its real path and its stamp (None: gone)."""
    # Paths are strings until the end: pathlib's operations cost a large project's rebuild
    # more than finding and stat-ing its files.
    # real path -> as named, so a file given twice is read once
    found: dict[str, tuple[str, Stamp | None]] = {}
    real_folders: dict[str, str] = {}
    skipped: list[Diagnostic] = []
    for source in sources:
        if not source.exists():
            raise SourceError("no such file or folder", source)
        if source.is_dir():
            entries = sorted(_walk_markdown(source), key=lambda entry: entry[0].split(os.sep))
        else:
            entries = [(str(source), os.path.islink(source))]
        if not entries:
            raise SourceError(
                "no Markdown files (*.md) in this folder or below it; name the folder that "
                "holds your notes",
                source,
            )
        for path, is_link in entries:
            try:
                info: os.stat_result | None = os.stat(path)
            except OSError:
                info = None  # gone, or a broken link: reading it reports what is wrong
            kind = _not_regular(info.st_mode) if info is not None else ""
            if kind:
                # Reading a FIFO would wait forever for a writer; a device, read forever.
                message = f"{kind}, not a regular file: skipped"
                location = SourceLocation(Path(path), 1)
                skipped.append(Diagnostic(location, message, Severity.WARNING))
                continue
            real = os.path.realpath(path) if is_link else _real_in(path, real_folders)
            found.setdefault(real, (path, stamp_of(info) if info is not None else None))
    return [(Path(path), real, stamp) for real, (path, stamp) in found.items()], skipped


def _real_in(path: str, real_folders: dict[str, str]) -> str:
    """`os.path.realpath(path)` of a file that is not a link, the real path of its folder
    found once for all the files in it."""
    parent, name = os.path.split(path)  # ("/", name) for a file at the root
    folder = real_folders.get(parent)
    if folder is None:
        folder = real_folders[parent] = os.path.realpath(parent or os.curdir)
    return os.path.join(folder, name)


def _not_regular(mode: int) -> str:
    """What a file of `mode` is when it is not a regular file ("" when it is one)."""
    if stat.S_ISREG(mode):
        return ""
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a folder" if stat.S_ISDIR(mode) else "a special file"


def _walk_markdown(folder: Path) -> Iterator[tuple[str, bool]]:
    """Every Markdown file under `folder`, and whether it is a symbolic link."""
    # Symlinked folders are not followed, so a link loop cannot make the walk endless.
    pending = [str(folder)]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as listing:
                entries = list(listing)
        except OSError as error:
            raise SourceError(
                f"cannot read the folder: {error.strerror}; allow reading it, or name only the "
                "folders to build",
                Path(error.filename or current),
            ) from None
        for entry in entries:
            name = entry.name
            try:
                is_folder = entry.is_dir()
            except OSError:
                is_folder = False
            if is_folder:
                if not entry.is_symlink() and not skipped_folder(name):
                    pending.append(os.path.join(current, name))
            elif name.endswith(".md") and not name.startswith("."):
                yield os.path.join(current, name), entry.is_symlink()


def skipped_folder(name: str) -> bool:
    """Hidden folders and build outputs are never sources."""
    return name.startswith(".") or name == "build"


def real_path(path: Path) -> Path:
    """The path with every link resolved; os.path.realpath, unlike Path.resolve, does not
    raise on a symlink loop."""
    return Path(os.path.realpath(path))


def relative_in(real: Path | str, root: Path) -> str | None:
    """`real`'s path relative to `root`, '/'-separated; None when it is not inside."""
    # Strings, not pathlib's operations: a large project has thousands of files, and a
    # rebuild that finds few of them changed spends most of its time finding them.
    inside = str(root) if str(root).endswith(os.sep) else str(root) + os.sep
    text = str(real)
    return text[len(inside) :].replace(os.sep, "/") if text.startswith(inside) else None


def stamp_of(info: os.stat_result) -> Stamp:
    return info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino
