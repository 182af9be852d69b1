"""Write a file so that a crash at any moment leaves either the old file or the new one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
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
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _default_file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask
