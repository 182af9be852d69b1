"""Everyday workflows keep every note's GUID, its review history and the edits made in Anki:
building one file or sub-folder of a project, forgetting removed notes of one file."""

from __future__ import annotations

from pathlib import Path

from anki_genai.identity import REMOVED_TAG
from anki_genai.statefile import STATE_FILE_NAME
from tests.conftest import AnkiCollection, run_cli


def _pairs(topic: str, count: int) -> str:
    parts = [f"# {topic}\n"]
    for n in range(1, count + 1):
        parts.append(
            f"## {n}. 第{n}节\n\n**题目：** {topic}的第{n}个问题？\n\n**答案：** {topic}答{n}。\n"
        )
    return "\n".join(parts)


def _project(root: Path) -> Path:
    """A project of two files, faq.md and llm.md, with its state in notes/."""
    notes = root / "notes"
    (notes / "go").mkdir(parents=True)
    (notes / "faq.md").write_text(_pairs("常见", 3), encoding="utf-8")
    (notes / "llm.md").write_text(_pairs("模型", 3), encoding="utf-8")
    (notes / "go" / "goroutine.md").write_text(_pairs("协程", 2), encoding="utf-8")
    return notes


def _edit_in_anki(anki: AnkiCollection, question: str, answer: str) -> str:
    """Change a note's answer as the user would on the phone; return its GUID."""
    (guid,) = [g for g, f in anki.notes().items() if question in f["Question"]]
    note = anki.note_by_guid(guid)
    note["Answer"] = answer
    anki.col.update_note(note)
    return guid


def test_building_one_file_of_a_project_leaves_the_other_files_notes_alone(
    tmp_path: Path, anki: AnkiCollection
) -> None:
    notes = _project(tmp_path)
    out = tmp_path / "build"
    first = run_cli("build", notes, "-o", out)
    assert first.exit_code == 0, first.output
    assert anki.import_package(out / "notes.apkg").new == 8
    anki.review_all()
    history = anki.history()
    edited = _edit_in_anki(anki, "模型的第2个问题", "手机上改过的答案")
    state_before = (notes / STATE_FILE_NAME).read_text(encoding="utf-8")

    one = run_cli("build", notes / "faq.md", "-o", out / "faq.apkg")
    assert one.exit_code == 0, one.output
    assert "removed" not in one.output
    assert "1 file, 3 notes (0 new, 0 changed, 3 unchanged)" in one.stdout
    log = anki.import_package(out / "faq.apkg")
    assert (log.new, log.updated, log.conflicting) == (0, 0, 0)  # the same notes
    assert (notes / STATE_FILE_NAME).read_text(encoding="utf-8") == state_before

    # The other file, alone, after that: no "state of another project", nothing removed.
    other = run_cli("build", notes / "llm.md", "-o", out / "llm.apkg")
    assert other.exit_code == 0, other.output
    assert "removed" not in other.output
    anki.import_package(out / "llm.apkg")
    assert anki.notes()[edited]["Answer"] == "手机上改过的答案"
    assert all(REMOVED_TAG not in anki.tags(guid) for guid in anki.notes())
    assert anki.history() == history
    assert len(anki.notes()) == 8


def test_building_a_sub_folder_uses_the_projects_state_and_decks(
    tmp_path: Path, anki: AnkiCollection
) -> None:
    notes = _project(tmp_path)
    out = tmp_path / "build"
    assert run_cli("build", notes, "-o", out).exit_code == 0
    anki.import_package(out / "notes.apkg")
    anki.review_all()
    history, decks = anki.history(), anki.deck_names()

    for part in (notes / "go", notes / "go" / "goroutine.md"):
        result = run_cli("build", part, "-o", out / "go.apkg")
        assert result.exit_code == 0, result.output
        assert "0 new, 0 changed, 2 unchanged" in result.stdout
        log = anki.import_package(out / "go.apkg")
        assert (log.new, log.updated) == (0, 0)
    assert not (notes / "go" / STATE_FILE_NAME).exists()
    assert anki.deck_names() == decks  # no empty deck of its own
    assert anki.history() == history


def test_forget_removed_of_one_file_lists_and_forgets_only_its_notes(tmp_path: Path) -> None:
    notes = _project(tmp_path)
    out = tmp_path / "build"
    assert run_cli("build", notes, "-o", out).exit_code == 0
    for name in ("faq.md", "llm.md"):  # one pair removed from each file
        path = notes / name
        text = path.read_text(encoding="utf-8")
        path.write_text(text[: text.index("## 3.")], encoding="utf-8")
    assert "2 removed" in run_cli("build", notes, "-o", out).stdout

    dry = run_cli("forget-removed", notes / "faq.md", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.splitlines() == [
        "would forget faq.md: 常见的第3个问题？",
        f"Dry run, nothing changed: would forget 1 removed note(s) in {notes / STATE_FILE_NAME}.",
    ]
    state = notes / STATE_FILE_NAME
    before = state.read_bytes()
    assert run_cli("forget-removed", notes / "faq.md").exit_code == 0
    assert state.read_bytes() != before
    text = state.read_text(encoding="utf-8")
    assert "常见的第3个问题" not in text and "模型的第3个问题" in text


def test_renaming_moving_and_retitling_overwrite_no_edit_made_in_anki(
    tmp_path: Path, anki: AnkiCollection
) -> None:
    """A file renamed, moved into a sub-folder and a section retitled: no note is resent, so
    the edit made on the phone and every card's history survive; the build says so."""
    notes = _project(tmp_path)
    out = tmp_path / "build"
    assert run_cli("build", notes, "-o", out).exit_code == 0
    anki.import_package(out / "notes.apkg")
    anki.review_all()
    history = anki.history()
    edited = _edit_in_anki(anki, "模型的第1个问题", "手机上改过的答案")
    (notes / "llm.md").rename(notes / "go" / "large-models.md")
    faq = notes / "faq.md"
    faq.write_text(faq.read_text(encoding="utf-8").replace("## 2. 第2节", "## 二、新标题"), "utf-8")
    result = run_cli("build", notes, "-o", out)
    assert result.exit_code == 0, result.output
    assert "0 new, 0 changed, 8 unchanged" in result.stdout
    assert "3 notes moved to another file, unchanged" in result.stdout
    log = anki.import_package(out / "notes.apkg")
    assert (log.new, log.updated) == (0, 0)
    assert anki.notes()[edited]["Answer"] == "手机上改过的答案"
    assert anki.history() == history


def test_a_package_that_takes_another_name_says_the_old_one_is_out_of_date(
    tmp_path: Path, anki: AnkiCollection
) -> None:
    """The package is named after its deck, or after the source folder when there are
    several: when that changes, the build says which package to import from now on, and
    the notes it removes keep in Anki what they showed (the last package had them)."""
    source = tmp_path / "notes"
    source.mkdir()
    for name in ("网络", "系统"):
        (source / f"{name}.md").write_text(
            f"# {name}\n\n**题目：** {name}是什么？\n\n**答案：** 一门课。\n", encoding="utf-8"
        )
    output = tmp_path / "build"
    assert run_cli("build", source, "-o", output).exit_code == 0
    assert (output / "notes.apkg").exists()
    (source / "系统.md").unlink()
    result = run_cli("build", source, "-o", output)
    assert result.exit_code == 0, result.output
    new, old = output / "网络.apkg", output / "notes.apkg"
    assert f"the package is now {new}" in result.output
    assert f"{old} is the last build's and out of date" in result.output
    anki.import_package(old)
    anki.import_package(new)
    answers = sorted(fields["Answer"] for fields in anki.notes().values())
    assert answers == ["一门课。", "一门课。"]  # the removed note's as it was, not a stub
    (source / "网络.md").write_text(
        "# 网络\n\n**题目：** 网络是什么？\n\n**答案：** 两门课。\n", encoding="utf-8"
    )
    again = run_cli("build", source, "-o", output.resolve())  # said once, when it changes
    assert again.exit_code == 0 and "Wrote" in again.output
    assert "out of date" not in again.output
