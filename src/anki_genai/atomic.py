"""Write a file so that a crash at any moment leaves either the old file or the new one."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


def atomic_write(
    path: Path,
    write: Callable[[IO[Any]], object],
    *,
    binary: bool = False,
    durable: bool = True,
) -> None:
    """Let `write` fill a temporary file in `path`'s folder, then rename it to `path`.

    Text is UTF-8 with `\\n` line ends. `durable` also waits for the disk, so a power cut
    cannot leave an empty file under the new name; only files whose loss costs nothing (the
    cache) skip it. The file gets the usual permissions, not mkstemp's private ones.
    """
    with staged_write(path, write, binary=binary, durable=durable) as commit:
        commit()


@contextlib.contextmanager
def staged_write(
    path: Path,
    write: Callable[[IO[Any]], object],
    *,
    binary: bool = False,
    durable: bool = True,
) -> Iterator[Callable[[], None]]:
    """Write `path`'s new content now, under a temporary name beside it, and yield the
    function that renames it into place, as `atomic_write` would.

    Several files staged so are replaced together or not at all: each is whole before any
    is renamed, and a block that fails before calling the function leaves `path` as it was
    and no temporary file.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    renamed = False

    def commit() -> None:
        nonlocal renamed
        os.replace(tmp_name, path)
        renamed = True

    try:
        handle = (
            os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        )
        with handle:
            write(handle)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(tmp_name, _default_file_mode())
        yield commit
    finally:
        if not renamed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)


def unwritable_folder(folder: Path) -> OSError | None:
    """Why no file can be written in `folder` (read-only, no permission), if it cannot;
    found without writing anything there."""
    if not folder.is_dir() or os.access(folder, os.W_OK | os.X_OK):
        return None  # a missing folder: the write itself will say why
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # gone, or not POSIX
        read_only = False
    code = errno.EROFS if read_only else errno.EACCES
    return OSError(code, os.strerror(code), str(folder))


def _default_file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask
