"""A failing machine: a full disk, a file-size limit, a read-only or forbidden folder, a
file in the way. Each is one line naming the file and what to do, exit code 1, no
traceback, and the previous package and state left byte for byte as they were.

The faults are real, not simulated: a small tmpfs, RLIMIT_FSIZE, read-only bind mounts and
a process without CAP_DAC_OVERRIDE (root ignores file modes). Where the machine does not
allow them (not root, no mount), the test is skipped and says why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from anki_genai import cli, lock
from anki_genai.cache import CACHE_FILE_NAME
from anki_genai.statefile import STATE_FILE_NAME
from tests.conftest import run_cli

NOTES = "# 笔记\n\n" + "".join(
    f"## {n}\n\n**题目：** 问题{n}？\n\n**答案：** 答案{n}。\n\n" for n in range(1, 6)
)
PACKAGE_NAME = "笔记.apkg"


def _cli(
    *args: str | Path, preexec: Callable[[], None] | None = None, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """The command line as its own process: limits, mounts and capabilities apply to it."""
    command = [*prefix, sys.executable, "-m", "anki_genai", *map(str, args)]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, preexec_fn=preexec
    )


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"mount {' '.join(args)} is not permitted here: {result.stderr.strip()}")


@contextlib.contextmanager
def _mounted(target: Path) -> Iterator[None]:
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs, to fill up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount("-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk))
    with _mounted(disk):
        yield disk


def _read_only(folder: Path) -> contextlib.AbstractContextManager[None]:
    """Make `folder` read-only for everyone, root too: a read-only bind mount onto itself."""
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    _mount("--bind", str(folder), str(folder))
    context = _mounted(folder)
    _mount("-o", "remount,ro,bind", str(folder))
    return context


def _fill(disk: Path) -> None:
    """Write to `disk` until no byte more fits."""
    with (disk / "filler").open("wb", buffering=0) as filler, contextlib.suppress(OSError):
        while True:
            filler.write(b"\0" * 4096)


def _project(folder: Path) -> Path:
    source = folder / "source"
    source.mkdir(parents=True)
    (source / "notes.md").write_text(NOTES, encoding="utf-8")
    return source


def _edit(source: Path) -> None:
    notes = source / "notes.md"
    notes.write_text(notes.read_text(encoding="utf-8").replace("答案3", "答案三"), "utf-8")


class Snapshot:
    """Every file of some folders, name and bytes, hidden ones and the cache aside."""

    def __init__(self, *folders: Path) -> None:
        self.folders = folders
        self.files = self._take()

    def _take(self) -> dict[Path, bytes]:
        return {
            path: path.read_bytes()
            for folder in self.folders
            for path in folder.iterdir()
            if path.is_file() and path.name != "filler"
        }

    def unchanged(self) -> bool:
        """True when the same files hold the same bytes, and no other file appeared
        (a temporary file left behind would)."""
        listing = {p for folder in self.folders for p in folder.iterdir() if p.name != "filler"}
        dirs = {p for p in listing if p.is_dir()}
        return listing - dirs == set(self.files) and self._take() == self.files


def _built_and_edited(source: Path, output: Path) -> Snapshot:
    """Build once, edit a note so that the next build must write, and snapshot both."""
    assert _cli("build", source, "-o", output).returncode == 0
    _edit(source)
    return Snapshot(source, output)


def _failed_leaving(before: Snapshot, result: subprocess.CompletedProcess[str], line: str) -> None:
    """The build failed with `line` alone, exit 1, and left every file as it was."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr == f"Error: {line}\n"
    assert result.returncode == 1
    assert before.unchanged()


def test_a_full_disk_under_the_output(tmp_path: Path, small_disk: Path) -> None:
    source, output = _project(tmp_path), small_disk / "build"
    before = _built_and_edited(source, output)
    _fill(small_disk)
    result = _cli("build", source, "-o", output)
    _failed_leaving(
        before,
        result,
        f"{output / PACKAGE_NAME}: cannot write the package: the disk is full; "
        "free some space on it and build again",
    )


def test_a_full_disk_under_the_sources(tmp_path: Path, small_disk: Path) -> None:
    source, output = _project(small_disk), tmp_path / "build"
    before = _built_and_edited(source, output)
    _fill(small_disk)
    result = _cli("build", source, "-o", output)
    _failed_leaving(
        before,
        result,
        f"{source / STATE_FILE_NAME}: cannot write the state file: the disk is full; "
        "free some space on it and build again",
    )


def test_a_file_size_limit(tmp_path: Path) -> None:
    """Past `ulimit -f` the build is not killed by SIGXFSZ: the write fails, and says so."""
    source, output = _project(tmp_path), tmp_path / "build"
    before = _built_and_edited(source, output)
    limit = 16 * 1024  # the state and its backup fit; the package's collection does not

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = _cli("build", source, "-o", output, preexec=limited)
    _failed_leaving(
        before,
        result,
        f"{output / PACKAGE_NAME}: cannot write the package: the file-size limit is reached; "
        "raise the limit (ulimit -f) and build again",
    )


def test_a_read_only_output_folder(tmp_path: Path) -> None:
    source, output = _project(tmp_path), tmp_path / "build"
    before = _built_and_edited(source, output)
    with _read_only(output):
        result = _cli("build", source, "-o", output)
    _failed_leaving(
        before,
        result,
        f"{output / PACKAGE_NAME}: cannot write the package: the file system is read-only; "
        "choose another output with -o",
    )


def test_read_only_sources_build_when_the_state_needs_no_change(tmp_path: Path) -> None:
    """Nothing but the state is ever written beside the sources (the lock lives in the
    temporary folder): read-only sources build, as long as the state stays as it is."""
    source, output = _project(tmp_path), tmp_path / "build"
    assert _cli("build", source, "-o", output).returncode == 0
    (output / PACKAGE_NAME).unlink()
    before = Snapshot(source)
    with _read_only(source):
        result = _cli("build", source, "-o", output)
    assert result.returncode == 0, result.stderr
    assert "5 unchanged" in result.stdout
    assert (output / PACKAGE_NAME).is_file()
    assert before.unchanged()


def test_read_only_sources_whose_state_must_change(tmp_path: Path) -> None:
    """The state that cannot be saved is named before the package is touched."""
    source, output = _project(tmp_path), tmp_path / "build"
    before = _built_and_edited(source, output)
    with _read_only(source):
        result = _cli("build", source, "-o", output)
    _failed_leaving(
        before,
        result,
        f"{source / STATE_FILE_NAME}: cannot write the state file: the file system is "
        f"read-only; make {source} writable: the state file, which keeps each note's "
        "identity, lives beside the sources",
    )


def _without_dac_override() -> tuple[str, ...]:
    """A command prefix that takes away root's right to ignore file modes."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run a process that file modes bind")
    return (setpriv, "--inh-caps=-dac_override", "--bounding-set=-dac_override")


def test_permission_denied_for_the_output(tmp_path: Path) -> None:
    source, output = _project(tmp_path), tmp_path / "build"
    before = _built_and_edited(source, output)
    output.chmod(0o555)
    try:
        result = _cli("build", source, "-o", output, prefix=_without_dac_override())
    finally:
        output.chmod(0o755)
    _failed_leaving(
        before,
        result,
        f"{output / PACKAGE_NAME}: cannot write the package: permission denied; "
        "choose another output with -o",
    )


def test_permission_denied_for_the_state(tmp_path: Path) -> None:
    source, output = _project(tmp_path), tmp_path / "build"
    before = _built_and_edited(source, output)
    source.chmod(0o555)
    try:
        result = _cli("build", source, "-o", output, prefix=_without_dac_override())
    finally:
        source.chmod(0o755)
    _failed_leaving(
        before,
        result,
        f"{source / STATE_FILE_NAME}: cannot write the state file: permission denied; "
        f"make {source} writable: the state file, which keeps each note's identity, "
        "lives beside the sources",
    )


@pytest.mark.parametrize(
    ("output", "in_the_way", "name"),
    [
        ("build", "build", PACKAGE_NAME),
        ("build/decks/deck.apkg", "build", "deck.apkg"),
        ("a/b/deck.apkg", "a/b", "deck.apkg"),
    ],
    ids=["output-folder-is-a-file", "its-parent-is-a-file", "a-deeper-parent-is-a-file"],
)
def test_a_file_in_the_way_is_named(
    tmp_path: Path, output: str, in_the_way: str, name: str
) -> None:
    source = _project(tmp_path)
    assert run_cli("build", source, "-o", tmp_path / "good").exit_code == 0
    _edit(source)
    blocker = tmp_path / in_the_way
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder", encoding="utf-8")
    before = Snapshot(source, tmp_path / "good")
    result = run_cli("build", source, "-o", tmp_path / output)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {blocker}: is a file, not a folder, so {name} cannot be written in it; "
        "move it away, or choose another output with -o\n"
    )
    assert before.unchanged()
    assert blocker.read_text(encoding="utf-8") == "not a folder"


def test_a_folder_in_the_way_of_the_preview_page(tmp_path: Path) -> None:
    source = _project(tmp_path)
    blocker = tmp_path / "pages"
    blocker.write_text("", encoding="utf-8")
    result = run_cli("preview", source, "-o", blocker / "cards.html")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {blocker}: is a file, not a folder, so cards.html cannot be written in it; "
        "move it away, or choose another place with -o\n"
    )


def test_a_cache_that_cannot_be_saved_is_a_warning_once(tmp_path: Path) -> None:
    """The cache only saves time: the build goes through and says, once, why the next
    one will be slower."""
    source, output = _project(tmp_path), tmp_path / "build"
    output.mkdir()
    (output / CACHE_FILE_NAME).write_text("", encoding="utf-8")  # a file where it goes
    result = run_cli("build", source, "-o", output)
    assert result.exit_code == 0
    assert result.stderr == (
        f"{output / CACHE_FILE_NAME}:1: warning: cannot save the build cache (Not a "
        "directory); this build is complete, but the next one will read every file again\n"
    )
    assert "5 new" in result.stdout


def test_a_lock_file_that_cannot_be_made_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    source = _project(tmp_path)
    lock_file = lock.lock_path(source)
    lock_file.mkdir()  # a folder in its place
    result = run_cli("build", source, "-o", tmp_path / "build")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {lock_file}: is a folder, where the lock file should be; move it away, "
        "or set TMPDIR to a folder you can write, and build again\n"
    )
    assert not (tmp_path / "build").exists()


def test_an_os_error_no_stage_expected_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command line's last resort: the machine's fault is told, not shown as a bug."""
    source = _project(tmp_path)

    def failing_disk(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(source / "notes.md"))

    monkeypatch.setattr(cli, "check", failing_disk)
    result = run_cli("check", source)
    assert result.exit_code == 1
    assert result.stderr == f"Error: {source / 'notes.md'}: Input/output error\n"


def test_forget_removed_on_read_only_sources(tmp_path: Path) -> None:
    """forget-removed writes only the state: on read-only sources it says so, in one line."""
    source, output = _project(tmp_path), tmp_path / "build"
    assert _cli("build", source, "-o", output).returncode == 0
    notes = source / "notes.md"
    notes.write_text(NOTES.split("## 5")[0], encoding="utf-8")  # the fifth pair goes
    assert _cli("build", source, "-o", output).returncode == 0
    before = Snapshot(source, output)
    with _read_only(source):
        result = _cli("forget-removed", source)
    _failed_leaving(
        before,
        result,
        f"{source / STATE_FILE_NAME}: cannot write the state file: the file system is "
        f"read-only; make {source} writable: the state file, which keeps each note's "
        "identity, lives beside the sources",
    )
