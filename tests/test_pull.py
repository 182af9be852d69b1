"""`pull`: an edit made on the phone comes back into the Markdown, and nothing else changes."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.sync_profile import Holder, Profile

QUESTION = "如何对比DALL·E 2和Imagen在图像生成质量上的性能？"
QUESTION_LINE = 49
OLD, NEW = "能够生成更逼真的图像", "能够生成更加逼真的图像"
EXPORTS = ["apkg", "colpkg"]


@pytest.fixture
def phone(tmp_path: Path) -> Profile:
    """The reference deck built, imported, studied, and one answer edited in Anki."""
    profile = Profile(tmp_path)
    profile.build_import_review()
    profile.guid = profile.guid_of(QUESTION)  # type: ignore[attr-defined]
    profile.edit_in_anki(profile.guid, "Answer", OLD, NEW)  # type: ignore[attr-defined]
    return profile


@pytest.mark.parametrize("kind", EXPORTS)
def test_pull_lists_the_edit_as_path_line_with_a_diff_and_writes_nothing(
    phone: Profile, kind: str
) -> None:
    """Without --apply, each note edited in Anki is listed at its path:line; nothing is written."""
    export = phone.export(kind)
    before = phone.sources_bytes()
    result = phone.cli("pull", export)
    assert result.exit_code == 0, result.output
    assert f"{phone.reference}:{QUESTION_LINE}: {QUESTION}\n  answer edited in Anki:\n" in (
        result.stdout
    )
    old_line = next(
        line for line in phone.reference.read_text(encoding="utf-8").splitlines() if OLD in line
    )
    assert f"    -{old_line}\n    +{old_line.replace(OLD, NEW)}\n" in result.stdout
    assert "1 edit to apply, 0 edits to make by hand, 0 conflicts" in result.stderr
    assert "run again with --apply" in result.stderr
    assert phone.sources_bytes() == before


def test_pull_quiet_prints_only_what_fails_it(phone: Profile) -> None:
    """-q leaves out the edits that can be applied and the summary; -v adds the time."""
    export = phone.export("apkg")
    quiet = phone.cli("pull", export, "-q")
    assert quiet.exit_code == 0, quiet.output
    assert (quiet.stdout, quiet.stderr) == ("", "")
    verbose = phone.cli("pull", export, "-v")
    assert f"{phone.reference}:{QUESTION_LINE}: {QUESTION}\n" in verbose.stdout
    assert verbose.stderr.splitlines()[-1].startswith("Done in ")


@pytest.mark.parametrize("kind", EXPORTS)
def test_pull_apply_writes_the_edit_and_the_next_build_leaves_the_note_in_anki_alone(
    phone: Profile, kind: str
) -> None:
    """--apply changes exactly the edited text in the Markdown; rebuilding and importing
    keeps Anki's version and every card's review history, and updates no note."""
    anki_answer = phone.field(phone.guid, "Answer")  # type: ignore[attr-defined]
    export = phone.export(kind)
    original = phone.reference.read_bytes()
    reviews = phone.reviews()
    result = phone.cli("pull", export, "--apply")
    assert result.exit_code == 0, result.output
    assert "1 edit written" in result.stderr
    assert f"Wrote {phone.reference}" in result.stderr
    # The edited span changed and not one byte around it.
    assert original.count(OLD.encode()) == 1
    assert phone.reference.read_bytes() == original.replace(OLD.encode(), NEW.encode())

    log = phone.col.import_package(phone.build())
    assert (log.new, log.updated, log.conflicting) == (0, 0, 0)
    assert phone.field(phone.guid, "Answer") == anki_answer  # type: ignore[attr-defined]
    assert phone.reviews() == reviews
    # What the Markdown now gives is what Anki has: a second pull finds nothing to do.
    again = phone.cli("pull", phone.export("apkg"))
    assert again.exit_code == 0
    assert again.stdout == ""
    assert "0 edits to apply" in again.stderr


def test_a_second_edit_in_anki_after_an_applied_pull_is_an_edit_not_a_conflict(
    phone: Profile,
) -> None:
    """What pull wrote counts as sent: editing the note in Anki again, before any build,
    is pulled like the first edit."""
    assert phone.cli("pull", phone.export("apkg"), "--apply").exit_code == 0
    phone.edit_in_anki(phone.guid, "Answer", NEW, "能够生成非常逼真的图像")  # type: ignore[attr-defined]
    result = phone.cli("pull", phone.export("apkg"), "--apply")
    assert result.exit_code == 0, result.output
    assert "1 edit written, 0 edits to make by hand, 0 conflicts" in result.stderr
    assert "能够生成非常逼真的图像" in phone.reference.read_text(encoding="utf-8")


def test_a_note_changed_in_anki_and_in_the_markdown_is_a_conflict_and_neither_is_overwritten(
    phone: Profile,
) -> None:
    """Both versions are shown at the pair's path:line, exit 1, nothing written."""
    text = phone.reference.read_text(encoding="utf-8")
    phone.reference.write_text(text.replace(OLD, "能够生成最逼真的图像"), encoding="utf-8")
    before = phone.sources_bytes()
    result = phone.cli("pull", phone.export("apkg"), "--apply")
    assert result.exit_code == 1
    assert (
        f"{phone.reference}:{QUESTION_LINE}: {QUESTION}\n  conflict: answer changed in Anki "
        in (result.stdout)
    )
    lead = "生成质量：通常来说，DALL·E 2在图像生成的细节和色彩还原方面表现更好，"
    anki, markdown = result.stdout.split("  Answer in Anki:\n")[1].split(
        "  Answer in the Markdown:\n"
    )
    assert f"    -{lead}{OLD}" in anki and f"    +{lead}{NEW}" in anki
    assert f"    -{lead}{OLD}" in markdown and f"    +{lead}能够生成最逼真的图像" in markdown
    assert "1 conflict" in result.stderr
    assert phone.sources_bytes() == before


def test_pull_reads_a_profiles_collection_directly_and_leaves_it_as_it_was(
    phone: Profile,
) -> None:
    """A closed collection.anki2 is read as an export; its files are not changed."""
    phone.close()
    collection = phone.fingerprint()
    result = phone.cli("pull", phone.collection_path, "--apply")
    assert result.exit_code == 0, result.output
    assert NEW in phone.reference.read_text(encoding="utf-8")
    assert phone.fingerprint() == collection


@pytest.mark.parametrize("how", ["anki", "sqlite"])
def test_pull_from_a_collection_open_in_another_process_says_close_anki_first(
    phone: Profile, how: str
) -> None:
    """While Anki (or any program) has the collection open, pull refuses and changes nothing."""
    phone.close()
    holder = Holder(phone.collection_path, how)
    try:
        collection, sources = phone.fingerprint(), phone.sources_bytes()
        result = phone.cli("pull", phone.collection_path, "--apply")
        assert result.exit_code == 1
        assert result.stderr == (
            f"Error: {phone.collection_path}: the collection is open in Anki (or another "
            "program); close Anki first, then run this again\n"
        )
        assert phone.fingerprint() == collection
        assert phone.sources_bytes() == sources
    finally:
        holder.stop()


CODE_AND_MATH = """\
# 算法

## 1. 快速排序

**题目：** 快速排序的平均时间复杂度是多少？

**答案：** 平均为 $O(n \\log n)$，最坏情况下退化。

## 2. 代码

**题目：** 如何在 Python 中交换两个变量？

**答案：**

```python
a, b = b, a
```

不需要临时变量。
"""


@pytest.mark.parametrize(
    ("question", "old", "new", "reason", "markdown"),
    [
        (
            "平均时间复杂度",
            "退化",
            "<b>退化</b>",
            "adds or removes formatting",
            "平均为 $O(n \\log n)$，最坏情况下**退化**。",
        ),
        (
            "交换两个变量",
            '<span class="o">=</span>',
            '<span class="o">:=</span>',
            "is inside highlighted code",
            "```python\na, b := b, a\n```",
        ),
        (
            "平均时间复杂度",
            "\\log n",
            "\\log_2 n",
            "is inside math",
            "平均为 $O(n \\log_2 n)$，最坏情况下退化。",
        ),
    ],
    ids=["bold added", "code", "math"],
)
def test_an_edit_that_cannot_be_mapped_back_exactly_is_suggested_not_written(
    tmp_path: Path, question: str, old: str, new: str, reason: str, markdown: str
) -> None:
    """Formatting added by Anki's editor, an edit in highlighted code or in math: the edit
    is reported with a Markdown suggestion, and the Markdown is left alone (exit 1)."""
    profile = Profile(tmp_path, {"algo.md": CODE_AND_MATH})
    profile.build_import_review()
    guid = profile.guid_of(question)
    profile.edit_in_anki(guid, "Answer", old, new)
    before = profile.sources_bytes()
    result = profile.cli("pull", profile.export("apkg"), "--apply")
    assert result.exit_code == 1
    assert f"answer edited in Anki, not written back: the edit {reason}" in result.stdout
    assert "suggested Markdown for the answer" in result.stdout
    assert textwrap.indent(markdown, "    ") in result.stdout
    assert "0 edits written, 1 edit to make by hand" in result.stderr
    assert profile.sources_bytes() == before


def test_an_edit_to_the_question_is_written_back_and_keeps_the_note(tmp_path: Path) -> None:
    """A question edited in Anki is written to the Markdown; the next build gives the same
    GUID and sends nothing Anki would take as newer."""
    profile = Profile(tmp_path, {"algo.md": CODE_AND_MATH})
    profile.build_import_review()
    guid = profile.guid_of("交换两个变量")
    profile.edit_in_anki(guid, "Question", "两个变量", "两个变量的值")
    result = profile.cli("pull", profile.export("apkg"), "--apply")
    assert result.exit_code == 0, result.output
    assert "**题目：** 如何在 Python 中交换两个变量的值？\n" in (
        profile.source / "algo.md"
    ).read_text(encoding="utf-8")
    log = profile.col.import_package(profile.build())
    assert (log.new, log.updated) == (0, 0)
    assert "交换两个变量的值" in profile.field(guid, "Question")


def test_pull_without_the_anki_package_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the optional anki package the command exits 1 and names the extra."""
    export = tmp_path / "deck.apkg"
    export.write_bytes(b"")
    (tmp_path / "source").mkdir()
    (tmp_path / "source" / "a.md").write_text("**题目：** Q？\n\n**答案：** A。\n", "utf-8")
    monkeypatch.setitem(sys.modules, "anki", None)
    monkeypatch.setitem(sys.modules, "anki.collection", None)
    for command in ("pull", "push"):
        result = run_cli(command, export, tmp_path / "source", "-o", tmp_path / "build")
        assert result.exit_code == 1
        assert result.stderr.endswith("install it with: pip install 'anki-genai[anki]'\n")
        assert not (tmp_path / "build").exists()
