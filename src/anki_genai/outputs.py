"""Writing a build's outputs, the package first and the state second, so that a failure
at any moment leaves what the user had."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from anki_genai import statefile
from anki_genai.apkg import package
from anki_genai.cache import CACHE_FILE_NAME, Cache
from anki_genai.errors import write_error
from anki_genai.plan import Plan
from anki_genai.results import BuildResult


def write_outputs(
    plan: Plan, state_path: Path, cache: Cache, state_changed: bool, state_digest: str | None
) -> tuple[bool, str]:
    """Write the package (unless it is current) and then the state (if it changed); return
    whether anything was written, and the digest of the state file now.

    Either both are replaced, or neither: the package is written to a temporary file, then
    the new state (and the old one's backup) to temporary files, and only when all are
    whole are they renamed into place, the package first. A failure to write any of them
    is one line naming the file and what to do, and leaves what the user had. A crash
    between the renames leaves the old state, whose GUIDs the next build reuses, so it
    only resends notes.
    """
    path, note_type_mod = plan.package_path, plan.state.note_type_mod
    digest = package.content_digest(plan.notes, note_type_mod)
    if not state_changed and cache.package_is_current(path, digest):
        assert state_digest is not None  # a missing state file counts as changed
        return False, state_digest
    prepare(path, state_path)
    if state_changed:
        statefile.check_writable(state_path)  # before the work of packaging, not after
    with contextlib.ExitStack() as staged:
        commit_state = None

        def stage_state() -> None:
            # Once the new package is whole, before it replaces the old one: a state that
            # cannot be written (a full disk) then leaves the old package standing, and a
            # build killed while packaging leaves no temporary file among the sources.
            nonlocal commit_state, state_digest
            if state_changed:
                commit_state, state_digest = staged.enter_context(
                    statefile.staged_save(plan.state, state_path, path.parent)
                )

        keep = cache.folder / "collection" if cache.folder is not None else None
        try:
            package.write_package(plan.notes, note_type_mod, path, keep, stage_state)
        except (OSError, sqlite3.Error) as exc:
            raise write_error(path, exc, "the package", _ADVICE) from None
        cache.remember_package(path, digest)
        if commit_state is not None:
            commit_state()
    assert state_digest is not None
    return True, state_digest


_ADVICE = "choose another output with -o"


def prepare(path: Path, state_path: Path) -> None:
    """Clear what a dead build left, and make the package's folder."""
    _remove_stale_temporary_files(path.parent, ".*.apkg.*.tmp")
    _remove_stale_temporary_files(path.parent, f".{statefile.STATE_BACKUP_NAME}.*.tmp")
    _remove_stale_temporary_files(state_path.parent, f".{state_path.name}.*.tmp")
    _make_folder(path)


def package_error(path: Path, exc: OSError | sqlite3.Error) -> Exception:
    """The one line a package that cannot be written is reported as."""
    return write_error(path, exc, "the package", _ADVICE)


def _make_folder(package_path: Path) -> None:
    """Make the package's folder, or say what stands in the way."""
    try:
        package_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(package_path, exc, "the package", _ADVICE) from None


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


def other_package_beside(last: object, package_path: Path) -> Path | None:
    """The package the last build wrote (`last`, as that build named it), if it is another
    file than `package_path` in the same folder: its name follows its decks."""
    if not isinstance(last, str):
        return None
    old = Path(last)
    try:
        # The last path as that build was given it: from another folder it may name another
        # file, so only a package beside the new one counts.
        if not old.exists() or not old.parent.samefile(package_path.parent):
            return None
        if package_path.exists() and old.samefile(package_path):
            return None
    except OSError:  # the folder is not there (yet)
        return None
    return old


def package_renamed(last: object, result: BuildResult) -> tuple[str, ...]:
    """A word when the package took another name and the last one is still there (one
    deck: the deck's name; several: the source folder's)."""
    old = other_package_beside(last, result.package_path) if result.written else None
    if old is None:
        return ()
    return (
        f"the package is now {result.package_path} (its name follows its decks); {old} is "
        "the last build's and out of date: import the new one, and delete the old one",
    )
