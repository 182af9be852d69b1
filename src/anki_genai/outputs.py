"""Writing a build's outputs, the package first and the state second, so that a failure
at any moment leaves what the user had."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from anki_genai import statefile
from anki_genai.apkg import package
from anki_genai.cache import CACHE_FILE_NAME, Cache
from anki_genai.errors import AnkiGenaiError
from anki_genai.plan import Plan


def write_outputs(
    plan: Plan, state_path: Path, cache: Cache, state_changed: bool, state_digest: str | None
) -> tuple[bool, str]:
    """Write the package (unless it is current) and then the state (if it changed); return
    whether anything was written, and the digest of the state file now.

    Either both are replaced, or neither: the package is written first (to a temporary
    file, then renamed), the state second. A crash between the two leaves the old state,
    whose GUIDs the next build reuses, so it only resends notes.
    """
    path, note_type_mod = plan.package_path, plan.state.note_type_mod
    digest = package.content_digest(plan.notes, note_type_mod)
    if not state_changed and cache.package_is_current(path, digest):
        assert state_digest is not None  # a missing state file counts as changed
        return False, state_digest
    _remove_stale_temporary_files(path.parent, ".*.apkg.*.tmp")
    _remove_stale_temporary_files(state_path.parent, f".{state_path.name}.*.tmp")
    keep = cache.folder / "collection" if cache.folder is not None else None
    try:
        package.write_package(plan.notes, note_type_mod, path, keep)
    except OSError as exc:
        raise AnkiGenaiError(
            f"{path}: cannot write the package ({exc.strerror}); choose a writable output with -o"
        ) from None
    cache.remember_package(path, digest)
    if state_changed:
        state_digest = statefile.save_with_backup(plan.state, state_path, path.parent)
    assert state_digest is not None
    return True, state_digest


@contextlib.contextmanager
def gone_if_failed(folder: Path) -> Iterator[None]:
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


def _remove_stale_temporary_files(folder: Path, pattern: str) -> None:
    # A build killed mid-write (SIGKILL, power loss) leaves its temporary package or state
    # behind; we hold the lock, so no other build is writing one now.
    if folder.is_dir():
        for stale in folder.glob(pattern):
            with contextlib.suppress(OSError):
                stale.unlink()
