"""The reference document becomes a deck that a real Anki imports, and re-imports safely."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from anki_genai.apkg import notetype
from tests.conftest import REFERENCE, AnkiCollection, build_project, only_package

TITLE = "生图AI：DALL·E 2与Imagen"


def _source_lines(first: int, last: int) -> list[str]:
    """Return lines `first`..`last` (1-based) of the reference document, stripped."""
    lines = REFERENCE.read_text(encoding="utf-8").splitlines()[first - 1 : last]
    return [line.strip() for line in lines if line.strip()]


def _bold_to_html(markdown_line: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", markdown_line)


def test_reference_document_imports_as_thirty_notes_in_one_deck(
    project: Path, anki: AnkiCollection
) -> None:
    """The reference document gives 30 notes and cards in a deck named after its title."""
    result = build_project(project)
    assert result.exit_code == 0, result.output
    log = anki.import_package(only_package(project))
    assert (log.new, log.updated) == (30, 0)
    assert len(anki.notes()) == 30
    assert anki.card_count() == 30
    assert anki.deck_names() - {"Default"} == {TITLE}
    assert {h.deck for h in anki.history().values()} == {TITLE}


def test_first_and_last_pair_fields_hold_the_documents_text(
    project: Path, anki: AnkiCollection
) -> None:
    """Pair 1 and pair 30 arrive with the document's question, answer, context and source."""
    build_project(project)
    anki.import_package(only_package(project))
    by_question = {fields["Question"]: fields for fields in anki.notes().values()}

    first = by_question["请简要介绍DALL·E 2和Imagen，以及它们在生图AI领域的应用。"]
    paragraphs = _source_lines(11, 15)
    items = _source_lines(17, 19)
    expected = (
        "\n".join(f"<p>{p}</p>" for p in paragraphs)
        + "\n<ul>\n"
        + "".join(f"<li>{_bold_to_html(item.removeprefix('- '))}</li>\n" for item in items)
        + "</ul>"
    )
    assert first["Answer"] == expected
    assert first["Context"] == "DALL·E 2与Imagen的基本概念"
    assert first["Source"] == f"{REFERENCE.name}:7"

    last = by_question["生图AI如何提升空间设计的效率和质量？"]
    assert last["Context"] == "生图AI在空间设计中的应用"
    assert last["Source"] == f"{REFERENCE.name}:408"
    intro, *items = _source_lines(412, 419)
    assert last["Answer"].startswith(f"<p>{intro}</p>")
    assert last["Answer"].count("<li>") == len(items) == 5
    for item in items:
        assert f"<li>{_bold_to_html(item.removeprefix('- '))}</li>" in last["Answer"]


def test_unchanged_rebuild_leaves_reviews_and_edits_made_in_anki_alone(
    project: Path, anki: AnkiCollection
) -> None:
    """Rebuilding unchanged sources imports as 0 new, 0 updated; reviews and Anki edits stay."""
    build_project(project)
    anki.import_package(only_package(project))
    anki.review_all()
    guid = next(iter(anki.notes()))
    note = anki.note_by_guid(guid)
    note["Answer"] = note["Answer"] + "<p>fixed on the phone</p>"
    anki.col.update_note(note)
    before = anki.history()

    assert build_project(project).exit_code == 0
    log = anki.import_package(only_package(project))

    assert (log.new, log.updated, log.conflicting) == (0, 0, 0)
    assert anki.history() == before
    assert all(h.reps == 1 and h.revlog == 1 for h in before.values())
    assert anki.note_by_guid(guid)["Answer"].endswith("<p>fixed on the phone</p>")


def test_edited_answer_updates_exactly_that_note_and_keeps_its_history(
    project: Path, anki: AnkiCollection
) -> None:
    """Editing one answer gives 1 updated, 0 new; that card's reviews are unchanged."""
    build_project(project)
    anki.import_package(only_package(project))
    anki.review_all()
    before = anki.history()
    source = project / "source" / REFERENCE.name
    text = source.read_text(encoding="utf-8")
    old = "- **数据增强**：通过图像旋转、缩放、剪裁等操作，增加数据集的多样性。"
    source.write_text(text.replace(old, old + "\n- **数据标注**：人工复核描述。"), encoding="utf-8")

    assert build_project(project).exit_code == 0
    log = anki.import_package(only_package(project))

    assert (log.new, log.updated, log.conflicting) == (0, 1, 0)
    assert anki.history() == before
    answers = [f["Answer"] for f in anki.notes().values() if "数据标注" in f["Answer"]]
    assert (
        answers == [answers[0]]
        and "<li><strong>数据标注</strong>：人工复核描述。</li>" in answers[0]
    )


def test_added_pair_is_the_only_new_note(project: Path, anki: AnkiCollection) -> None:
    """Adding a pair imports as 1 new and 0 updated."""
    build_project(project)
    anki.import_package(only_package(project))
    source = project / "source" / REFERENCE.name
    with source.open("a", encoding="utf-8") as handle:
        handle.write("\n### 31. 新问题\n\n**题目：** 什么是扩散模型？\n\n")
        handle.write("**答案：** 一种逐步去噪的生成模型。\n")

    assert build_project(project).exit_code == 0
    log = anki.import_package(only_package(project))

    assert (log.new, log.updated, log.conflicting) == (1, 0, 0)
    assert len(anki.notes()) == 31


def test_css_change_reaches_the_collection_without_copying_the_note_type(
    project: Path, anki: AnkiCollection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new CSS replaces the note type's CSS on import; no "+" copy, nothing conflicting."""
    build_project(project)
    anki.import_package(only_package(project))
    anki.review_all()
    monkeypatch.setattr(notetype, "CSS", notetype.CSS + "\n.question { color: #123456; }\n")

    assert build_project(project).exit_code == 0
    log = anki.import_package(only_package(project))

    assert (log.new, log.conflicting) == (0, 0)
    assert "#123456" in anki.note_type()["css"]
    assert [n for n in anki.note_type_names() if n.startswith("anki-genai")] == [
        notetype.NOTE_TYPE_NAME
    ]


def test_note_type_schema_is_the_released_one(project: Path, anki: AnkiCollection) -> None:
    """Anki sees the note type's released id, fields in order and single template: changing
    any of them would make every existing note "conflicting" on import."""
    build_project(project)
    anki.import_package(only_package(project))
    model = anki.note_type()
    assert model["id"] == 1876203471
    fields = [f["name"] for f in model["flds"]]
    assert fields == ["Question", "Answer", "Context", "Source", "Extra"]
    assert [t["name"] for t in model["tmpls"]] == ["Card 1"]


def test_question_without_answer_is_reported_and_skipped(
    project: Path, anki: AnkiCollection
) -> None:
    """A 题目 without 答案 is named with path:line; the other 30 pairs are still packaged."""
    source = project / "source" / REFERENCE.name
    with source.open("a", encoding="utf-8") as handle:
        handle.write("\n### 31. 草稿\n\n**题目：** 还没写答案的问题？\n")
    line = (
        source.read_text(encoding="utf-8").splitlines().index("**题目：** 还没写答案的问题？") + 1
    )

    result = build_project(project)

    assert result.exit_code == 0
    assert f"{source}:{line}: error: question has no answer" in result.stderr
    assert anki.import_package(only_package(project)).new == 30


def test_strict_build_fails_on_a_question_without_answer_and_writes_nothing(project: Path) -> None:
    """`build --strict` exits with 1 and writes neither package nor state file."""
    source = project / "source" / REFERENCE.name
    with source.open("a", encoding="utf-8") as handle:
        handle.write("\n### 31. 草稿\n\n**题目：** 还没写答案的问题？\n")

    result = build_project(project, "--strict")

    assert result.exit_code == 1
    assert "question has no answer" in result.stderr
    assert "nothing written" in result.stderr
    assert not (project / "build").exists() or not list((project / "build").iterdir())
    assert not (project / "source" / "anki-genai-state.json").exists()
