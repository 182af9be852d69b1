"""Bad input and faults: clear errors, nothing the user had is lost, nothing left behind."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

from anki_genai import lock
from anki_genai.cache import CACHE_FILE_NAME
from anki_genai.statefile import STATE_BACKUP_NAME, STATE_FILE_NAME, load_state
from tests.conftest import REFERENCE, AnkiCollection, build_project, only_package, run_cli

SIMPLE = "# 笔记\n\n## 一\n\n**题目：** 问题一？\n\n**答案：** 答案一。\n"


@pytest.fixture
def clean_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the temp folder at an empty folder of our own, to see what a build leaves there."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


def _state(project: Path) -> Path:
    return project / "source" / STATE_FILE_NAME


def _edit_reference(project: Path) -> None:
    """Edit two answers of the project's reference document."""
    source = project / "source" / REFERENCE.name
    source.write_text(source.read_text(encoding="utf-8").replace("逼真", "逼真【修订】"), "utf-8")


def _built_then_edited(project: Path) -> tuple[Path, bytes, bytes]:
    """Build the project, then edit its source; return the package and both files' bytes."""
    assert build_project(project).exit_code == 0
    package = only_package(project)
    before = package.read_bytes(), _state(project).read_bytes()
    _edit_reference(project)
    return package, *before


def test_no_files_are_left_in_temp_or_beside_outputs(project: Path, clean_tmp: Path) -> None:
    """A successful and a failed build leave nothing in the temp folder or the output folder."""
    assert build_project(project).exit_code == 0
    _edit_reference(project)
    assert build_project(project).exit_code == 0
    source = project / "source" / REFERENCE.name
    source.write_text(source.read_text(encoding="utf-8") + "\n**题目：** 无答案？\n", "utf-8")
    assert build_project(project, "--strict").exit_code == 1
    assert list(clean_tmp.iterdir()) == []
    package = only_package(project)
    assert sorted(p.name for p in (project / "build").iterdir()) == sorted(
        [package.name, STATE_BACKUP_NAME, CACHE_FILE_NAME]
    )
    assert sorted(p.name for p in (project / "source").iterdir()) == sorted(
        [REFERENCE.name, STATE_FILE_NAME]
    )


def test_exception_while_writing_keeps_the_previous_package_and_state(
    project: Path, anki: AnkiCollection, monkeypatch: pytest.MonkeyPatch, clean_tmp: Path
) -> None:
    """A disk-full error half way through packaging leaves the old package and state intact."""
    package, package_before, state_before = _built_then_edited(project)

    real_writestr = zipfile.ZipFile.writestr

    def disk_full(self: zipfile.ZipFile, name: str, data: object, *args: object) -> None:
        if name == "media":
            raise OSError(28, "No space left on device")
        real_writestr(self, name, data, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(zipfile.ZipFile, "writestr", disk_full)
    result = build_project(project)

    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {package}: cannot write the package: the disk is full; "
        "free some space on it and build again\n"
    )
    assert package.read_bytes() == package_before
    assert _state(project).read_bytes() == state_before
    assert sorted(p.name for p in (project / "build").iterdir()) == sorted(
        [package.name, CACHE_FILE_NAME]
    )
    assert list(clean_tmp.iterdir()) == []
    assert anki.import_package(package).new == 30


_KILLABLE_BUILD = """
import sys, time, zipfile
from pathlib import Path
real = zipfile.ZipFile.writestr
def slow(self, name, data, *args):
    real(self, name, data, *args)
    if name == "media":
        Path(sys.argv[1]).write_text("writing")
        time.sleep(60)
zipfile.ZipFile.writestr = slow
from anki_genai.cli import main
main(["build", sys.argv[2], "-o", sys.argv[3]])
"""


def test_build_killed_mid_write_leaves_the_previous_package_importable(
    project: Path, anki: AnkiCollection
) -> None:
    """SIGKILL during packaging leaves the old package and a byte-identical state file."""
    package, package_before, state_before = _built_then_edited(project)
    marker = project / "writing"

    child = subprocess.Popen(
        [sys.executable, "-c", _KILLABLE_BUILD, marker, project / "source", project / "build"]
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, "the build ended before it was killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()

    assert _state(project).read_bytes() == state_before
    assert package.read_bytes() == package_before
    log = anki.import_package(package)
    assert (log.new, log.updated) == (30, 0)
    assert "【修订】" not in json.dumps(anki.notes(), ensure_ascii=False)
    # The next build cleans up what the killed one left, and goes through.
    assert build_project(project).exit_code == 0
    assert sorted(p.name for p in (project / "build").iterdir()) == sorted(
        [package.name, STATE_BACKUP_NAME, CACHE_FILE_NAME]
    )
    assert not lock.lock_path(project / "source").exists()


def test_a_second_build_waits_for_the_first_then_gives_up(project: Path) -> None:
    """While another build holds the sources, a build waits, says so, and gives up cleanly."""
    lock_path = lock.lock_path(project / "source")
    with lock.build_lock(lock_path, timeout=1):
        result = build_project(project, "--wait", "0.3")
    assert result.exit_code == 1
    assert "Another build of these sources is running; waiting" in result.stderr
    assert (
        f"Error: {lock_path}: another anki-genai build of these sources is still running"
        in result.stderr
    )
    assert not (project / "build").exists()
    assert not lock_path.exists()


def test_forget_removed_waits_for_a_running_build(project: Path) -> None:
    """forget-removed rewrites the state file, so it too waits while a build holds the
    sources, rather than writing the state under the build's feet."""
    source = project / "source"
    assert build_project(project).exit_code == 0
    (source / REFERENCE.name).write_text("# 空\n", encoding="utf-8")
    assert build_project(project).exit_code == 0  # 30 notes removed: tombstones
    state_before = (source / STATE_FILE_NAME).read_bytes()
    lock_path = lock.lock_path(source)
    with lock.build_lock(lock_path, timeout=1):
        result = run_cli("forget-removed", source, "--wait", "0.3")
    assert result.exit_code == 1
    assert f"Error: {lock_path}: another anki-genai build" in result.stderr
    assert (source / STATE_FILE_NAME).read_bytes() == state_before
    result = run_cli("forget-removed", source)
    assert result.stdout.endswith(f"Forgot 30 removed note(s) in {source / STATE_FILE_NAME}.\n")


def test_two_builds_at_once_both_finish_with_a_valid_state(
    project: Path, anki: AnkiCollection
) -> None:
    """Two concurrent builds of the same sources serialise; the result imports cleanly."""
    command = [sys.executable, "-m", "anki_genai", "build", project / "source"]
    command += ["-o", project / "build"]
    children = [subprocess.Popen(command, stdout=subprocess.DEVNULL) for _ in range(2)]
    assert [child.wait(timeout=120) for child in children] == [0, 0]
    assert load_state(_state(project)).repairs == ()  # readable, nothing to set right
    assert anki.import_package(only_package(project)).new == 30


def test_gbk_file_is_reported_with_a_hint_and_nothing_is_written(tmp_path: Path) -> None:
    """A GBK file stops the build with its name and how to convert or decode it."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "good.md").write_text(SIMPLE, encoding="utf-8")
    (source / "gbk.md").write_bytes(SIMPLE.replace("一", "二").encode("gbk"))
    result = run_cli("build", source, "-o", tmp_path / "build")
    assert result.exit_code == 1
    assert f"{source / 'gbk.md'}:1: error: not valid utf-8; it reads as gbk: convert it" in (
        result.stderr
    )
    assert "--encoding gbk" in result.stderr
    assert "pass --skip-unreadable to build the others" in result.stderr
    assert not (tmp_path / "build").exists()
    assert not (source / STATE_FILE_NAME).exists()


def test_skip_unreadable_builds_the_other_files(tmp_path: Path, anki: AnkiCollection) -> None:
    """With --skip-unreadable the readable files still build, and the bad one is reported."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "good.md").write_text(SIMPLE, encoding="utf-8")
    (source / "gbk.md").write_bytes(SIMPLE.replace("一", "二").encode("gbk"))
    result = run_cli("build", source, "-o", tmp_path / "out.apkg", "--skip-unreadable")
    assert result.exit_code == 0
    assert "gbk.md:1: error: not valid utf-8" in result.stderr
    assert anki.import_package(tmp_path / "out.apkg").new == 1


def test_encoding_option_decodes_gbk(tmp_path: Path, anki: AnkiCollection) -> None:
    """`--encoding gbk` reads a GBK document correctly."""
    source = tmp_path / "gbk.md"
    source.write_bytes(SIMPLE.encode("gbk"))
    result = run_cli("build", source, "-o", tmp_path / "out.apkg", "--encoding", "gbk")
    assert result.exit_code == 0, result.output
    anki.import_package(tmp_path / "out.apkg")
    assert [f["Question"] for f in anki.notes().values()] == ["问题一？"]


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.encode("utf-8"),
        lambda text: b"\xef\xbb\xbf" + text.encode("utf-8"),
        lambda text: text.replace("\n", "\r\n").encode("utf-8"),
        lambda text: text.replace("\n", "\r").encode("utf-8"),
        lambda text: text.rstrip("\n").encode("utf-8"),
    ],
    ids=["lf", "bom", "crlf", "cr", "no-final-newline"],
)
def test_line_endings_and_bom_make_no_difference(
    tmp_path: Path, anki: AnkiCollection, encode: object
) -> None:
    """BOM, CRLF, CR and a missing final newline give the same note, on the same line."""
    source = tmp_path / "notes.md"
    source.write_bytes(encode(SIMPLE))  # type: ignore[operator]
    assert run_cli("build", source, "-o", tmp_path / "out.apkg").exit_code == 0
    anki.import_package(tmp_path / "out.apkg")
    (fields,) = anki.notes().values()
    assert (fields["Question"], fields["Answer"], fields["Source"]) == (
        "问题一？",
        "答案一。",
        "notes.md:5",
    )


def test_missing_source_is_a_usage_error(tmp_path: Path) -> None:
    """A source path that does not exist is refused with exit code 2 before anything runs."""
    result = run_cli("build", tmp_path / "nope")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_output_inside_the_sources_is_refused(project: Path) -> None:
    """An output folder inside the source tree is refused: builds would feed on themselves."""
    result = run_cli("build", project / "source", "-o", project / "source" / "out")
    assert result.exit_code == 1
    assert "the output folder is inside the sources" in result.stderr
    assert not (project / "source" / "out").exists()


def test_unwritable_output_is_reported(project: Path) -> None:
    """An output that cannot be written is named, with what to do; the state is not saved."""
    blocker = project / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    result = run_cli("build", project / "source", "-o", blocker / "deck.apkg")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {blocker}: is a file, not a folder, so deck.apkg cannot be written in it; "
        "move it away, or choose another output with -o\n"
    )
    assert not _state(project).exists()


@pytest.mark.parametrize("target", ["missing.md", "loop.md"], ids=["broken-link", "link-loop"])
def test_unreadable_file_is_named(tmp_path: Path, target: str) -> None:
    """A broken symlink or a symlink loop among the sources is reported by name."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "good.md").write_text(SIMPLE, encoding="utf-8")
    os.symlink(source / target, source / "loop.md")
    result = run_cli("build", source, "-o", tmp_path / "build")
    assert result.exit_code == 1
    assert f"{source / 'loop.md'}:1: error: cannot read the file" in result.stderr


def test_unreadable_folder_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder among the sources that cannot be listed stops the build: it is named, with
    what to do, and nothing is written (its notes would otherwise count as removed)."""
    source = tmp_path / "source"
    (source / "private").mkdir(parents=True)
    (source / "good.md").write_text(SIMPLE, encoding="utf-8")
    real_scandir = os.scandir

    def scandir(path: object) -> object:
        if str(path).endswith("private"):  # as chmod 000 does, which root would ignore
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "scandir", scandir)
    result = run_cli("build", source, "-o", tmp_path / "build")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: {source / 'private'}: cannot read the folder: Permission denied;"
    )
    assert "Traceback" not in result.output + result.stderr
    assert not (tmp_path / "build").exists()
    assert not (source / STATE_FILE_NAME).exists()


def test_symlinked_folder_loop_does_not_hang(tmp_path: Path) -> None:
    """A folder symlink pointing at its parent is not followed."""
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "notes.md").write_text(SIMPLE, encoding="utf-8")
    os.symlink(source, source / "sub" / "again")
    result = run_cli("build", source, "-o", tmp_path / "build")
    assert result.exit_code == 0
    assert "1 file, 1 note (" in result.output


def test_backup_of_the_last_good_state_is_kept(project: Path) -> None:
    """Each build keeps the previous state file as a backup in the output folder."""
    build_project(project)
    first = _state(project).read_bytes()
    _edit_reference(project)
    build_project(project)
    assert (project / "build" / STATE_BACKUP_NAME).read_bytes() == first
    assert _state(project).read_bytes() != first


def test_state_from_another_project_stops_the_build(project: Path, tmp_path: Path) -> None:
    """A state file none of whose notes are in these sources is refused, not overwritten."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "other.md").write_text(SIMPLE, encoding="utf-8")
    assert run_cli("build", other, "-o", tmp_path / "other.apkg").exit_code == 0
    shutil.copy(other / STATE_FILE_NAME, _state(project))
    foreign = _state(project).read_bytes()
    result = build_project(project)
    assert result.exit_code == 1
    assert "probably belongs to another project" in result.stderr
    assert _state(project).read_bytes() == foreign


@pytest.mark.parametrize(
    ("title", "deck"),
    [("# ::面试:: ::Go::", "面试::Go"), ("# 　", "notes")],
    ids=["empty-parts", "blank-title"],
)
def test_deck_names_are_made_valid(
    tmp_path: Path, anki: AnkiCollection, title: str, deck: str
) -> None:
    """Titles with empty `::` parts or only blanks still give a valid deck name."""
    source = tmp_path / "notes.md"
    source.write_text(title + "\n\n" + SIMPLE.split("\n", 2)[2], encoding="utf-8")
    assert run_cli("build", source, "-o", tmp_path / "out.apkg").exit_code == 0
    anki.import_package(tmp_path / "out.apkg")
    assert {h.deck for h in anki.history().values()} == {deck}


def test_file_names_with_spaces_become_valid_tags(tmp_path: Path, anki: AnkiCollection) -> None:
    """Every note is tagged with its file's stem, spaces replaced, Chinese kept."""
    source = tmp_path / "Go 面试 题.md"
    source.write_text(SIMPLE, encoding="utf-8")
    assert run_cli("build", source, "-o", tmp_path / "out.apkg").exit_code == 0
    anki.import_package(tmp_path / "out.apkg")
    (guid,) = anki.notes()
    assert anki.tags(guid) == ["Go_面试_题"]


def test_huge_answer_is_reported_for_ankidroid(tmp_path: Path) -> None:
    """An answer too large for AnkiDroid to show comfortably gets a warning with its line."""
    source = tmp_path / "big.md"
    source.write_text("# 大\n\n**题目：** 很长？\n\n**答案：** " + "长" * 50_000 + "\n", "utf-8")
    result = run_cli("build", source, "-o", tmp_path / "out.apkg")
    assert result.exit_code == 0
    assert f"{source}:3: warning: answer is 146 KiB of HTML; AnkiDroid becomes slow" in (
        result.stderr
    )


def test_folder_without_markdown_is_an_error(tmp_path: Path) -> None:
    """Pointing the build at a folder with no Markdown in it says so and writes nothing."""
    (tmp_path / "empty").mkdir()
    result = run_cli("build", tmp_path / "empty", "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {tmp_path / 'empty'}: no Markdown files (*.md) in this folder or below it; "
        "name the folder that holds your notes\n"
    )
    assert not (tmp_path / "out").exists()


def test_default_build_folder_inside_the_sources_is_fine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`anki-genai build .` writes to ./build, which is never read back as sources."""
    (tmp_path / "notes.md").write_text(SIMPLE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    first = run_cli("build", ".")
    assert first.exit_code == 0, first.output
    assert "1 file, 1 note (1 new" in first.stdout
    assert run_cli("build", ".").stdout.startswith("Up to date:")


def _write_large_project(source: Path, files: int = 40, pairs: int = 50) -> None:
    """`files` files of `pairs` pairs each: enough for a build that parses on every core."""
    source.mkdir(parents=True)
    for f in range(files):
        parts = [f"# 题库 {f}\n"]
        for n in range(pairs):
            parts.append(
                f"## {n + 1}. 小节\n\n**题目：** 第{f}-{n}题：第{n}种情况是什么意思？\n\n"
                f"**答案：**\n\n- 要点 {f}.{n}，" + "说明文字，" * 40 + "\n- 公式 $x^2$\n\n"
                f"```python\nprint({f}, {n})\n```\n"
            )
        (source / f"part{f:02d}.md").write_text("\n".join(parts), encoding="utf-8")


def _children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux: read from /proc)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    children.append(int(entry.name))
    return children


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
@pytest.mark.parametrize("moment", ["parsing", "caching", "packaging"])
def test_killed_cold_build_leaves_nothing_that_blocks_the_next(tmp_path: Path, moment: str) -> None:
    """SIGKILL at any moment of a 2,000-pair cold build: its worker processes end with it,
    nothing is left among the sources, and the next build succeeds at once, untouched."""
    source, output = tmp_path / "source", tmp_path / "build"
    _write_large_project(source)
    command = [sys.executable, "-m", "anki_genai", "build", source, "-o", output, "-q"]
    child = subprocess.Popen(command)
    cache_files = output / CACHE_FILE_NAME / "files"
    seen = {
        "parsing": lambda: bool(_children_of(child.pid)),  # the workers have started
        "caching": lambda: cache_files.is_dir() and len(list(cache_files.iterdir())) >= 10,
        "packaging": lambda: bool(list(output.glob(".*.apkg.*.tmp"))),
    }[moment]
    try:
        deadline = time.monotonic() + 60
        while not seen():
            assert child.poll() is None, f"the build ended before the {moment} moment"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        workers = _children_of(child.pid)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "workers outlived it"
    assert sorted(p.name for p in source.iterdir()) == [f"part{f:02d}.md" for f in range(40)]

    started = time.monotonic()
    result = run_cli("build", source, "-o", output, "--wait", "60")
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 60
    assert "2000 new" in result.stdout
    assert "waiting" not in result.stderr
