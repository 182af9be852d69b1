"""One build at a time per state file: an advisory lock that leaves no file behind."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from anki_genai.errors import AnkiGenaiError, write_error


class LockTimeoutError(AnkiGenaiError):
    """Another build held the lock for longer than we were willing to wait."""


_LOCK_ADVICE = "set TMPDIR to a folder you can write, and build again"

# The descriptors of the locks this process holds. A forked child (a parse worker) closes
# its copies at once: a flock belongs to the open file, so a worker that outlived a killed
# build would otherwise go on holding the lock, and every later build would wait for it.
_HELD: set[int] = set()


def _close_held_locks() -> None:
    for fd in _HELD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_held_locks)


def lock_path(root: Path) -> Path:
    """The lock file of the project at `root`: in the temporary folder, not among the
    sources, so a killed build leaves nothing there for `git status` to show, and sources
    on a read-only file system can still be built."""
    key = hashlib.sha256(os.fsencode(os.path.realpath(root))).hexdigest()[:16]
    user = os.getuid() if hasattr(os, "getuid") else 0  # one user cannot open another's
    return Path(tempfile.gettempdir()) / f"anki-genai-{user}-{key}.lock"


def project_lock(
    root: Path, timeout: float, on_wait: Callable[[], None] = lambda: None
) -> contextlib.AbstractContextManager[None]:
    """The lock that one build (or forget-removed) of the project at `root` holds."""
    return build_lock(lock_path(root), timeout, on_wait)


@contextlib.contextmanager
def build_lock(
    path: Path, timeout: float, on_wait: Callable[[], None] = lambda: None
) -> Iterator[None]:
    """Hold an exclusive lock on `path` while the block runs; wait up to `timeout` seconds.

    The file is removed on release. A waiter may then hold a lock on the removed file, so
    after locking we check that the path still names the file we locked, else try again.
    """
    deadline = time.monotonic() + timeout
    warned = False
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise write_error(path, exc, "the lock file", _LOCK_ADVICE) from None
        try:
            _lock_without_waiting(fd)
        except (BlockingIOError, PermissionError):
            os.close(fd)
            if not warned:
                on_wait()
                warned = True
            if time.monotonic() >= deadline:
                raise LockTimeoutError(
                    f"{path}: another anki-genai build of these sources is still running; "
                    "gave up waiting. Try again when it has finished."
                ) from None
            time.sleep(0.05)
            continue
        if _same_file(fd, path):
            break
        os.close(fd)
    _HELD.add(fd)
    try:
        with contextlib.suppress(OSError):  # only for a curious reader: it locks without
            os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        # Windows cannot remove a file still open; there the lock file stays.
        with contextlib.suppress(FileNotFoundError, PermissionError):
            os.unlink(path)
        _HELD.discard(fd)
        os.close(fd)


if sys.platform == "win32":  # pragma: no cover - CI runs on Linux
    import msvcrt

    def _lock_without_waiting(fd: int) -> None:
        # Raises PermissionError while another process holds the byte.
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

else:
    import fcntl

    def _lock_without_waiting(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)
