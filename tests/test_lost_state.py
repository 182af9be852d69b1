"""A lost or damaged state file is restored from the output folder: every note keeps its
GUID and mod, so Anki changes nothing, an edit made there survives, and no card's review
history moves. With nothing to restore from, the build says every note goes as new."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from anki_genai.statefile import STATE_BACKUP_NAME, STATE_FILE_NAME
from tests.conftest import AnkiCollection, run_cli

FAQ = """---
deck: 常见问题
tags: [网络]
---
# 常见问题

## 1. TCP

**题目：** 什么是 TCP 协议？

**答案：** 面向连接、可靠的传输层协议。

## 2. UDP

**题目：** 什么是 UDP 协议？

**答案：** 无连接、尽力而为的传输层协议。

## 3. DNS

**题目：** DNS 做什么？

**答案：** 把域名解析为 IP 地址。
"""

GO = """# Go

**Question:** What does `go` start?

**Answer:** A goroutine.

**Question:** What closes a channel?

**Answer:** `close(ch)`, called by the sender.

**Question:** What is a nil map?

**Answer:** A map that reads as empty and panics on write.
"""


class Notes:
    """A two-file project, built into `build/`, imported into Anki, reviewed, and with one
    answer edited on the phone."""

    def __init__(self, root: Path, anki: AnkiCollection) -> None:
        self.source = root / "notes"
        self.source.mkdir()
        (self.source / "faq.md").write_text(FAQ, encoding="utf-8")
        (self.source / "go.md").write_text(GO, encoding="utf-8")
        self.out = root / "build"
        self.package = self.out / "notes.apkg"
        self.state = self.source / STATE_FILE_NAME
        self.anki = anki

    def build(self, *extra: str) -> subprocess.CompletedProcess[str] | object:
        return run_cli("build", self.source, "-o", self.out, *extra)

    def built_and_studied(self) -> None:
        first = self.build()
        assert first.exit_code == 0, first.output  # type: ignore[attr-defined]
        assert self.anki.import_package(self.package).new == 6
        self.anki.review_all()
        self.history = self.anki.history()
        self.guids = set(self.anki.notes())
        (self.edited,) = [g for g, f in self.anki.notes().items() if "DNS" in f["Question"]]
        note = self.anki.note_by_guid(self.edited)
        note["Answer"] = "手机上改过的答案"
        self.anki.col.update_note(note)

    def assert_nothing_changed_in_anki(self) -> None:
        log = self.anki.import_package(self.package)
        assert (log.new, log.updated, log.conflicting) == (0, 0, 0)
        assert set(self.anki.notes()) == self.guids
        assert self.anki.notes()[self.edited]["Answer"] == "手机上改过的答案"
        assert self.anki.history() == self.history


@pytest.fixture
def notes(tmp_path: Path, anki: AnkiCollection) -> Notes:
    return Notes(tmp_path, anki)


def test_a_deleted_state_file_is_restored_from_the_last_package(notes: Notes) -> None:
    """With build/ present, a deleted state comes back as it was: same GUIDs and mods, so
    Anki updates nothing and keeps the edit made there and every card's history."""
    notes.built_and_studied()
    state_before = notes.state.read_bytes()
    notes.state.unlink()

    result = notes.build()
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"{notes.state} was missing: restored the notes' identities from {notes.package}"
    ]
    assert "2 files, 6 notes (0 new, 0 changed, 6 unchanged)" in result.stdout
    # Written again, record for record; only the project id (for GUIDs of notes still to
    # come) is new, as a first build's only copy was the lost file.
    restored = notes.state.read_text("utf-8").splitlines()
    assert restored[1:] == state_before.decode().splitlines()[1:]
    assert json.loads(restored[0])["project"] != json.loads(state_before.splitlines()[0])["project"]
    notes.assert_nothing_changed_in_anki()


def test_an_edited_question_after_a_lost_state_is_the_same_note(notes: Notes) -> None:
    """A question edited while the state was lost finds its note in the last package: it
    is renamed, not a duplicate, and the other notes stay unchanged."""
    notes.built_and_studied()
    notes.state.unlink()
    go = notes.source / "go.md"
    go.write_text(GO.replace("What closes a channel?", "Who closes a channel?"), "utf-8")

    result = notes.build()
    assert result.exit_code == 0, result.output
    assert "(0 new, 0 changed, 1 renamed, 5 unchanged)" in result.stdout
    log = notes.anki.import_package(notes.package)
    assert (log.new, log.updated) == (0, 1)
    assert set(notes.anki.notes()) == notes.guids
    assert notes.anki.notes()[notes.edited]["Answer"] == "手机上改过的答案"
    assert notes.anki.history() == notes.history


def test_a_state_lost_with_the_build_folder_warns_once_built(notes: Notes) -> None:
    """With the package and backup gone too, but the cache still remembering a build, the
    build warns in one line that every note is sent as new."""
    notes.built_and_studied()
    notes.state.unlink()
    notes.package.unlink()

    result = notes.build()
    assert result.exit_code == 0, result.output
    (warning,) = result.stderr.splitlines()
    assert warning.startswith(f"Warning: {notes.state} is missing and {notes.out} holds neither")
    assert "every note will be sent as new" in warning
    assert "6 notes (6 new, 0 changed, 0 unchanged)" in result.stdout
    # Each note's mod is now the build's time: a later import overwrites edits made in Anki.
    notes.anki.import_package(notes.package)
    assert notes.anki.history().items() >= notes.history.items()  # no card's history moves


def test_a_state_committed_to_git_and_lost_with_build_says_how_to_restore(
    notes: Notes, tmp_path: Path
) -> None:
    """State and build/ both gone, but git has the state: the warning names `git checkout`."""
    notes.built_and_studied()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "notes"], check=True)
    subprocess.run([*git, "commit", "-qm", "notes"], check=True)
    notes.state.unlink()
    subprocess.run(["rm", "-r", str(notes.out)], check=True)

    result = notes.build()
    assert result.exit_code == 0, result.output
    (warning,) = result.stderr.splitlines()
    assert warning.endswith(f"To keep them, stop and git checkout -- {notes.state}")


def test_a_first_build_has_nothing_to_warn_about(notes: Notes) -> None:
    """A project never built (no state, no output) builds silently: all notes new."""
    result = notes.build()
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert "6 notes (6 new, 0 changed, 0 unchanged)" in result.stdout


def test_a_damaged_state_is_restored_and_kept_beside_as_damaged(notes: Notes) -> None:
    """A damaged state with the backup and package present: restored, the damaged file kept
    as *.damaged, the backup left good; Anki changes nothing."""
    notes.built_and_studied()
    faq = notes.source / "faq.md"
    faq.write_text(FAQ.replace("可靠的", "可靠、有序的"), "utf-8")  # so a backup exists
    assert notes.build().exit_code == 0  # type: ignore[attr-defined]
    log = notes.anki.import_package(notes.package)
    assert (log.new, log.updated) == (0, 1)
    notes.history = notes.anki.history()
    backup = notes.out / STATE_BACKUP_NAME
    backup_before, state_before = backup.read_bytes(), notes.state.read_bytes()
    damaged = state_before[: len(state_before) // 2]  # cut short, as a crashed editor leaves it
    notes.state.write_bytes(damaged)

    result = notes.build()
    assert result.exit_code == 0, result.output
    kept = notes.source / (STATE_FILE_NAME + ".damaged")
    assert result.stderr.splitlines() == [
        f"{notes.state} is damaged: restored it from {notes.package} and {backup}; "
        f"the damaged file is kept as {kept.name}"
    ]
    assert kept.read_bytes() == damaged
    assert notes.state.read_bytes() == state_before
    assert backup.read_bytes() == backup_before  # not replaced by the damaged file
    notes.assert_nothing_changed_in_anki()


def test_a_backup_without_its_package_is_not_trusted(notes: Notes) -> None:
    """The backup alone (package deleted) may be another project's that shares the output
    folder: a damaged state then stops the build, and nothing is changed."""
    notes.built_and_studied()
    assert notes.build().exit_code == 0  # type: ignore[attr-defined]
    damaged = '{"format": "anki-genai state", "version": 1, "notes": ['
    notes.state.write_text(damaged, "utf-8")
    notes.package.unlink()

    result = notes.build()
    assert result.exit_code == 1
    assert "the state file is damaged" in result.stderr
    assert notes.state.read_text("utf-8") == damaged


def test_a_damaged_state_with_nothing_to_restore_from_still_stops(notes: Notes) -> None:
    """No backup and no package: the damaged state stops the build and is left as it is."""
    assert notes.build().exit_code == 0  # type: ignore[attr-defined]
    subprocess.run(["rm", "-r", str(notes.out)], check=True)
    notes.state.write_text("{", encoding="utf-8")
    result = notes.build()
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {notes.state}:1: the state file is damaged")
    assert notes.state.read_text(encoding="utf-8") == "{"
    assert not (notes.source / (STATE_FILE_NAME + ".damaged")).exists()


def test_a_lost_state_is_restored_by_a_build_of_one_file_too(notes: Notes) -> None:
    """Building one file after the state was lost finds the whole project's last package
    in the output folder (never a package named otherwise, which may be another project's):
    that file's notes keep their mods, and the other file's records come back untouched."""
    notes.built_and_studied()
    state_before = notes.state.read_bytes()
    notes.state.unlink()

    one = run_cli("build", notes.source / "faq.md", "-o", notes.out)
    assert one.exit_code == 0, one.output
    assert f"restored the notes' identities from {notes.package}" in one.stderr
    assert "1 file, 3 notes (0 new, 0 changed, 3 unchanged)" in one.stdout
    restored = notes.state.read_text("utf-8").splitlines()
    assert restored[1:] == state_before.decode().splitlines()[1:]
    (faq_package,) = set(notes.out.glob("*.apkg")) - {notes.package}
    log = notes.anki.import_package(faq_package)
    assert (log.new, log.updated) == (0, 0)
    assert notes.anki.notes()[notes.edited]["Answer"] == "手机上改过的答案"
