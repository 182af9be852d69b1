"""A file that cannot be used keeps its notes as the last build made them; counts include the
removed notes a package carries; sources that give no card at all fail with advice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anki_genai.identity import REMOVED_TAG
from tests.conftest import AnkiCollection, run_cli
from tests.test_lost_state import FAQ, GO, Notes


@pytest.fixture
def notes(tmp_path: Path, anki: AnkiCollection) -> Notes:
    return Notes(tmp_path, anki)


def _state_lines(notes: Notes, file: str) -> list[str]:
    lines = notes.state.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if f'"file": "{file}"' in line]


def test_broken_front_matter_keeps_that_files_notes_and_builds_the_rest(
    notes: Notes, anki: AnkiCollection, tmp_path: Path
) -> None:
    """Invalid YAML front matter is an error at its line and the build exits 1, but the
    other files build, and that file's notes reach Anki exactly as the last build made
    them: same deck, tags and fields, the edit made in Anki and every history kept."""
    notes.built_and_studied()
    faq, go = notes.source / "faq.md", notes.source / "go.md"
    before = {guid: (fields, anki.tags(guid)) for guid, fields in anki.notes().items()}
    faq_state = _state_lines(notes, "faq.md")
    broken = FAQ.replace("tags: [网络]", "tags: [网络").replace("可靠的", "可靠、有序的")
    faq.write_text(broken, encoding="utf-8")
    go.write_text(GO.replace("A goroutine.", "A new goroutine."), encoding="utf-8")

    result = notes.build()
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{faq}:3: error: front matter is not valid YAML (expected ',' or ']', but got "
        "'<stream end>'); fix it or remove it (until then this file's notes stay as the "
        "last build made them)"
    ]
    assert "2 files, 3 notes (0 new, 1 changed, 2 unchanged)" in result.stdout
    assert "3 notes of files that could not be used packaged as the last build" in result.stdout
    assert _state_lines(notes, "faq.md") == faq_state

    log = anki.import_package(notes.package)
    assert (log.new, log.updated, log.conflicting) == (0, 1, 0)  # go.md's edit only
    after = {guid: (fields, anki.tags(guid)) for guid, fields in anki.notes().items()}
    changed = {guid for guid in before if before[guid] != after[guid]}
    assert [after[guid][0]["Answer"] for guid in changed] == ["A new goroutine."]
    faq_guids = [g for g, (fields, _) in after.items() if "协议" in fields["Question"]]
    assert len(faq_guids) == 2 and all("网络" in after[g][1] for g in faq_guids)
    assert anki.notes()[notes.edited]["Answer"] == "手机上改过的答案"
    assert anki.history() == notes.history  # the faq cards still in deck 常见问题
    fresh = AnkiCollection(tmp_path / "fresh.anki2")  # the package alone, as a new phone gets it
    try:
        assert fresh.import_package(notes.package).new == 6
        decks = {h.deck for g, h in fresh.history().items() if g in faq_guids}
        assert decks == {"常见问题"}
        assert all(fresh.tags(g) == anki.tags(g) for g in faq_guids)
    finally:
        fresh.close()

    check = run_cli("check", notes.source)
    assert check.exit_code == 1
    assert check.stdout.startswith(f"{faq}:3: error: front matter is not valid YAML")

    again = notes.build()  # nothing changed since: the same report, the same exit code
    assert again.exit_code == 1
    assert again.stderr == result.stderr

    faq.write_text(broken.replace("[网络", "[网络]"), encoding="utf-8")  # fixed
    fixed = notes.build()
    assert fixed.exit_code == 0, fixed.output
    assert "2 files, 6 notes (0 new, 1 changed, 5 unchanged)" in fixed.stdout


def test_an_unfinished_merge_in_a_file_keeps_its_notes_and_names_the_line(
    notes: Notes, anki: AnkiCollection
) -> None:
    """git's conflict markers left in a Markdown file are an error at the first marker for
    `check` and `build`; that file's notes go as the last build made them (nothing in Anki
    changes, nothing is removed), and once the merge is finished the edit arrives."""
    notes.built_and_studied()
    go = notes.source / "go.md"
    go.write_text(
        GO.replace(
            "**Answer:** A goroutine.\n",
            "<<<<<<< HEAD\n**Answer:** A goroutine, ours.\n=======\n"
            "**Answer:** A goroutine, theirs.\n>>>>>>> other\n",
        ),
        encoding="utf-8",
    )
    marker_line = go.read_text(encoding="utf-8").splitlines().index("<<<<<<< HEAD") + 1
    message = (
        f"{go}:{marker_line}: error: git's conflict markers (<<<<<<< … >>>>>>>) are still here"
    )

    check = run_cli("check", notes.source)
    assert check.exit_code == 1
    assert check.stdout.startswith(message)
    result = notes.build()
    assert result.exit_code == 1
    assert result.stderr.startswith(message)
    assert "0 new, 0 changed, 0 removed" not in result.stdout and "removed" not in result.stdout
    log = anki.import_package(notes.package)
    assert (log.new, log.updated) == (0, 0)
    assert anki.history() == notes.history

    go.write_text(GO.replace("A goroutine.", "A goroutine, merged."), encoding="utf-8")
    finished = notes.build()
    assert finished.exit_code == 0, finished.output
    assert anki.import_package(notes.package).updated == 1


def test_conflict_markers_inside_a_code_block_are_content(tmp_path: Path) -> None:
    """A note about git may show the markers in a code block: that is no unfinished merge."""
    (tmp_path / "git.md").write_text(
        "**题目：** 冲突长什么样？\n\n**答案：**\n\n```\n<<<<<<< HEAD\nours\n=======\n"
        "theirs\n>>>>>>> branch\n```\n",
        encoding="utf-8",
    )
    result = run_cli("check", tmp_path / "git.md")
    assert result.exit_code == 0, result.output


def test_a_pair_with_an_error_keeps_its_note_until_it_is_fixed(
    notes: Notes, anki: AnkiCollection
) -> None:
    """An answer emptied while editing gives an error at its line and no card, but its
    note is not removed: nothing is tagged for deletion, Anki keeps the card and its
    history, and the fixed pair finds its note again."""
    notes.built_and_studied()
    go = notes.source / "go.md"
    go.write_text(GO.replace("**Answer:** A goroutine.", "**Answer:**"), encoding="utf-8")
    result = notes.build()
    assert result.exit_code == 0, result.output
    assert "error: answer is empty" in result.stderr
    assert "removed" not in result.stdout
    log = anki.import_package(notes.package)
    assert (log.new, log.updated) == (0, 0)
    assert not any(REMOVED_TAG in anki.tags(g) for g in anki.notes())
    assert anki.history() == notes.history

    go.write_text(GO, encoding="utf-8")
    fixed = notes.build()
    assert fixed.exit_code == 0, fixed.output
    assert "(0 new, 0 changed, 6 unchanged)" in fixed.stdout
    assert anki.import_package(notes.package).new == 0
    assert anki.history() == notes.history


def test_counts_include_the_removed_notes_the_package_carries(notes: Notes) -> None:
    """A removed pair still travels in the package, tagged: the summary and JSON count it."""
    assert notes.build().exit_code == 0  # type: ignore[attr-defined]
    go = notes.source / "go.md"
    go.write_text(GO[: GO.index("**Question:** What is a nil map?")], encoding="utf-8")
    result = notes.build()
    assert result.exit_code == 0, result.output
    assert "2 files, 5 notes, 1 removed (0 new, 0 changed, 1 removed, 5 unchanged)" in (
        result.stdout
    )
    again = notes.build("--json")  # unchanged since: the same count from the last build
    assert json.loads(again.stdout)["removed_notes"] == 1
    assert json.loads(again.stdout)["notes"] == 5
    other = run_cli("build", notes.source / "faq.md", "-o", notes.out / "faq.apkg")
    assert "1 file, 3 notes (0 new" in other.stdout  # go.md's removed note is not faq's


def test_removed_notes_reach_anki_tagged(notes: Notes, anki: AnkiCollection) -> None:
    """The carried count is what Anki sees: the removed note arrives tagged as removed."""
    notes.built_and_studied()
    go = notes.source / "go.md"
    go.write_text(GO[: GO.index("**Question:** What is a nil map?")], encoding="utf-8")
    assert ", 1 removed (" in notes.build().stdout  # type: ignore[attr-defined]
    anki.import_package(notes.package)
    tagged = [g for g in anki.notes() if REMOVED_TAG in anki.tags(g)]
    assert len(tagged) == 1


def test_a_build_of_sources_without_any_card_fails_with_advice(tmp_path: Path) -> None:
    """A first build whose files give no card writes nothing and exits 1, saying why."""
    source = tmp_path / "notes"
    source.mkdir()
    (source / "prose.md").write_text("# Diary\n\nA day without questions.\n", encoding="utf-8")
    result = run_cli("build", source, "-o", tmp_path / "build")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: {source}: no cards in 1 file; nothing written. `anki-genai check -v "
        f"{source}` shows the layout each file was read in; mark questions and answers "
        "(**题目：** … **答案：** …, or Q: … A: …), or choose one with --layout"
    )
    assert not (tmp_path / "build").exists()
    assert not list(source.glob("anki-genai-state.json"))


def test_check_of_sources_without_any_card_fails_and_v_shows_each_layout(
    tmp_path: Path, notes: Notes
) -> None:
    """`check -v` names each file's layout and cards; no card at all is exit code 1."""
    verbose = run_cli("check", "-v", notes.source)
    assert verbose.exit_code == 0, verbose.output
    lines = verbose.stderr.splitlines()
    assert any(line.startswith(f"{notes.source / 'faq.md'}: markers, 3 cards") for line in lines)
    assert any(line.startswith(f"{notes.source / 'go.md'}: markers, 3 cards") for line in lines)

    source = tmp_path / "prose"
    source.mkdir()
    (source / "prose.md").write_text("# Diary\n\nA day without questions.\n", encoding="utf-8")
    empty = run_cli("check", source)
    assert empty.exit_code == 1
    assert f"Error: {source}: no cards in 1 file. `anki-genai check -v" in empty.stderr


@pytest.mark.parametrize(
    ("front_matter", "line", "message"),
    [
        ("deck: [网络]", 2, "front matter deck must be a name, not ['网络']"),
        ("deck: 网络\ntags: {a: 1}", 3, "front matter tags must be a name or a list of names"),
        ("layout: [markers]", 2, "front matter layout must be a name"),
    ],
)
def test_front_matter_of_the_wrong_shape_is_an_error_at_its_line(
    tmp_path: Path, front_matter: str, line: int, message: str
) -> None:
    """A setting that is not a name (or list of names) would name a deck or tag after
    Python's spelling of it; it stops at its line instead."""
    path = tmp_path / "net.md"
    path.write_text(f"---\n{front_matter}\n---\n**题目：** 问？\n\n**答案：** 答。\n", "utf-8")
    result = run_cli("check", path)
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{path}:{line}: error: {message}")
