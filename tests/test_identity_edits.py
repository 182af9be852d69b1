"""A card keeps its GUID and review history however its note is edited."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from anki_genai.identity import REMOVED_TAG
from anki_genai.statefile import STATE_FILE_NAME
from tests.conftest import AnkiCollection, ImportLog, run_cli

ORIGINAL = """\
# 网络基础

## 1. TCP

**题目：** TCP 三次握手的过程是什么？

**答案：**

- 客户端发送 SYN
- 服务端回复 SYN-ACK
- 客户端发送 ACK

## 2. UDP

**题目：** UDP 与 TCP 的主要区别是什么？

**答案：** UDP 无连接、不可靠，但开销小。

## 3. HTTP

**题目：** HTTP 的常见状态码有哪些？

**答案：**

200 表示成功，404 表示未找到，500 表示服务器错误。
"""


class Project:
    """A user's notes folder, built and imported into Anki, then edited and rebuilt."""

    def __init__(self, root: Path, anki: AnkiCollection, files: dict[str, str]) -> None:
        self.root = root
        self.anki = anki
        self.source = root / "source"
        self.source.mkdir(parents=True)
        for name, text in files.items():
            (self.source / name).write_text(text, encoding="utf-8")
        result = self.build()
        assert result.exit_code == 0, result.output
        self.anki.import_package(self.package)
        self.anki.review_all()
        self.guids = self.guids_by_question()
        self.history = self.anki.history()

    @property
    def package(self) -> Path:
        return self.root / "build" / "notes.apkg"

    @property
    def state_file(self) -> Path:
        return self.source / STATE_FILE_NAME

    def build(self, *extra: str):  # type: ignore[no-untyped-def]
        return run_cli("build", self.source, "-o", self.package, *extra)

    def edit(self, name: str, old: str, new: str) -> None:
        path = self.source / name
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new), encoding="utf-8")

    def rebuild_and_import(self) -> ImportLog:
        result = self.build()
        assert result.exit_code == 0, result.output
        self.last_output = result.output
        return self.anki.import_package(self.package)

    def guids_by_question(self) -> dict[str, str]:
        return {fields["Question"]: guid for guid, fields in self.anki.notes().items()}

    def assert_history_kept(self) -> None:
        """Every card reviewed before the edit has exactly the same review state now."""
        now = self.anki.history()
        for guid, before in self.history.items():
            assert now[guid] == before
            assert before.reps == 1 and before.revlog == 1


@pytest.fixture
def notes(tmp_path: Path, anki: AnkiCollection) -> Project:
    return Project(tmp_path, anki, {"network.md": ORIGINAL})


def test_edited_answer_updates_the_same_note(notes: Project) -> None:
    """Editing an answer keeps the note's GUID and updates it in place."""
    notes.edit("network.md", "但开销小。", "但开销小，适合实时音视频。")
    log = notes.rebuild_and_import()
    assert (log.new, log.updated) == (0, 1)
    assert notes.guids_by_question() == notes.guids
    assert (
        "实时音视频" in notes.anki.notes()[notes.guids["UDP 与 TCP 的主要区别是什么？"]]["Answer"]
    )
    notes.assert_history_kept()


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("**答案：**\n\n- 客户端", "**答案：**\n\n\n\n- 客户端"),
        (
            "- 客户端发送 SYN\n- 服务端回复 SYN-ACK\n- 客户端发送 ACK",
            "* 客户端发送 SYN\n* 服务端回复 SYN-ACK\n* 客户端发送 ACK",
        ),
        ("**题目：** UDP", "**题目:** UDP"),
        ("**答案：** UDP", "**答案**： UDP"),
        (
            "200 表示成功，404 表示未找到，500 表示服务器错误。",
            "200 表示成功，404 表示未找到，500 表示服务器错误。   ",
        ),
    ],
    ids=[
        "blank-lines",
        "bullet-style",
        "half-width-colon",
        "colon-outside-bold",
        "trailing-spaces",
    ],
)
def test_formatting_only_edit_is_not_a_change(notes: Project, old: str, new: str) -> None:
    """Formatting-only edits keep the content hash and mod: Anki reports the notes up to date."""
    state_before = notes.state_file.read_text(encoding="utf-8")
    notes.edit("network.md", old, new)
    log = notes.rebuild_and_import()
    assert (log.new, log.updated, log.duplicate) == (0, 0, 3)
    assert "0 changed, 3 unchanged" in notes.last_output
    assert notes.state_file.read_text(encoding="utf-8") == state_before


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("TCP 三次握手的过程是什么？", "TCP 三次握手的过程是怎样的？"),
        ("HTTP 的常见状态码有哪些？", "HTTP 的常见状态码有哪些"),
        ("UDP 与 TCP 的主要区别是什么？", "UDP 和 TCP 的主要区别是什么？"),
    ],
    ids=["word-changed", "punctuation-dropped", "typo"],
)
def test_small_question_fix_keeps_the_note(notes: Project, old: str, new: str) -> None:
    """A small fix to a question keeps the GUID; the note is updated, none is added."""
    notes.edit("network.md", old, new)
    log = notes.rebuild_and_import()
    assert (log.new, log.updated) == (0, 1)
    assert notes.guids_by_question()[new] == notes.guids[old]
    assert len(notes.anki.notes()) == 3
    notes.assert_history_kept()


def test_rewritten_question_is_a_new_note_and_the_old_one_is_tagged_removed(notes: Project) -> None:
    """A different question becomes a new note; the old note is kept and tagged for deletion."""
    old_guid = notes.guids["HTTP 的常见状态码有哪些？"]
    notes.edit(
        "network.md", "HTTP 的常见状态码有哪些？", "浏览器缓存是如何被 Cache-Control 控制的？"
    )
    log = notes.rebuild_and_import()
    assert log.new == 1
    assert len(notes.anki.notes()) == 4
    assert REMOVED_TAG in notes.anki.tags(old_guid)
    assert notes.anki.notes()[old_guid]["Question"] == "HTTP 的常见状态码有哪些？"
    notes.assert_history_kept()


def test_reordered_renumbered_and_retitled_sections_keep_their_notes(notes: Project) -> None:
    """Moving, renumbering and renaming sections changes no GUID and adds no note."""
    text = (notes.source / "network.md").read_text(encoding="utf-8")
    head, tcp, udp, http = text.split("## ")
    reordered = (
        head
        + "## "
        + http.replace("3. HTTP", "1. 超文本传输协议")
        + "## "
        + tcp.replace("1. TCP", "2. TCP")
        + "## "
        + udp.replace("2. UDP", "3. UDP")
    )
    (notes.source / "network.md").write_text(reordered, encoding="utf-8")
    log = notes.rebuild_and_import()
    assert log.new == 0
    assert log.updated == 0  # a retitled section is no change of content: nothing is resent
    assert notes.guids_by_question() == notes.guids
    # The new heading travels with the note's next real change; until then Anki keeps
    # the old one, and whatever the user edited in Anki.
    assert notes.anki.notes()[notes.guids["HTTP 的常见状态码有哪些？"]]["Context"] == "HTTP"
    notes.assert_history_kept()


def test_pair_moved_to_another_file_keeps_its_note(notes: Project) -> None:
    """Moving a pair into another file of the same source tree keeps its GUID."""
    text = (notes.source / "network.md").read_text(encoding="utf-8")
    head, rest = text.split("## 3. HTTP")
    (notes.source / "network.md").write_text(head, encoding="utf-8")
    (notes.source / "web.md").write_text("# 网络基础\n\n## 3. HTTP" + rest, encoding="utf-8")
    log = notes.rebuild_and_import()
    assert log.new == 0
    assert notes.guids_by_question() == notes.guids
    assert len(notes.anki.notes()) == 3
    notes.assert_history_kept()


def test_removed_pair_is_tagged_then_forgotten_on_request(notes: Project) -> None:
    """A removed pair arrives tagged anki-genai::removed; forget-removed drops it from the state."""
    guid = notes.guids["UDP 与 TCP 的主要区别是什么？"]
    text = (notes.source / "network.md").read_text(encoding="utf-8")
    start = text.index("## 2. UDP")
    notes.edit("network.md", text[start : text.index("## 3. HTTP")], "")
    log = notes.rebuild_and_import()
    assert (log.new, log.updated) == (0, 1)
    assert "1 removed" in notes.last_output
    assert REMOVED_TAG in notes.anki.tags(guid)
    assert notes.anki.notes()[guid]["Answer"] == "UDP 无连接、不可靠，但开销小。"
    # its last content was read from the previous package, unpacked beside it and removed
    assert list(notes.package.parent.glob(".*.tmp")) == []

    # After the user deleted the cards in Anki, they forget the tombstone.
    result = run_cli("forget-removed", notes.source)
    assert result.exit_code == 0
    assert "Forgot 1 removed note(s)" in result.output
    assert guid not in notes.state_file.read_text(encoding="utf-8")
    again = notes.rebuild_and_import()
    assert (again.new, again.updated) == (0, 0)


def test_pair_removed_after_the_build_folder_was_deleted(notes: Project) -> None:
    """With the last package gone (a fresh clone, a cleaned build folder), a removed pair's
    last content is unknown: its note still arrives tagged, with its question and a word
    that it was removed, and keeps its GUID, deck and review history."""
    guid = notes.guids["UDP 与 TCP 的主要区别是什么？"]
    text = (notes.source / "network.md").read_text(encoding="utf-8")
    shutil.rmtree(notes.package.parent)
    notes.edit("network.md", text[text.index("## 2. UDP") : text.index("## 3. HTTP")], "")
    log = notes.rebuild_and_import()
    assert (log.new, log.updated, log.conflicting) == (0, 1, 0)
    assert "1 removed" in notes.last_output
    note = notes.anki.notes()[guid]
    assert note["Question"] == "UDP 与 TCP 的主要区别是什么？"
    assert note["Answer"] == "(removed from the Markdown sources)"
    assert REMOVED_TAG in notes.anki.tags(guid)
    assert notes.anki.history() == notes.history
    assert len(notes.anki.notes()) == 3
    again = notes.rebuild_and_import()
    assert (again.new, again.updated) == (0, 0)


def test_identical_duplicate_pair_builds_one_note_and_warns(
    tmp_path: Path, anki: AnkiCollection
) -> None:
    """The same question and answer twice gives one note and a warning naming both places."""
    tcp_section = ORIGINAL[ORIGINAL.index("**题目：** TCP") : ORIGINAL.index("## 2. UDP")]
    duplicate = ORIGINAL + "\n## 4. 重复\n\n" + tcp_section
    project = Project(tmp_path, anki, {"network.md": duplicate})
    assert len(project.anki.notes()) == 3
    result = project.build()
    source = project.source / "network.md"
    lines = duplicate.splitlines()
    second = lines.index("**题目：** TCP 三次握手的过程是什么？", 5) + 1
    assert (
        f"{source}:{second}: warning: same question and answer as {source}:5; built once"
        in result.stderr
    )


def test_same_question_with_other_answers_builds_stable_distinct_notes(
    tmp_path: Path, anki: AnkiCollection
) -> None:
    """The same question with different answers gives two notes whose GUIDs survive rebuilds."""
    other = "# 其他\n\n## TCP\n\n**题目：** TCP 三次握手的过程是什么？\n\n**答案：** 见 RFC 793。\n"
    project = Project(tmp_path, anki, {"network.md": ORIGINAL, "other.md": other})
    assert len(project.anki.notes()) == 4
    result = project.build()
    assert "warning: same question as" in result.stderr
    project.edit("other.md", "见 RFC 793。", "见 RFC 9293。")
    log = project.rebuild_and_import()
    assert (log.new, log.updated) == (0, 1)
    assert len(project.anki.notes()) == 4
    project.assert_history_kept()


def test_explicit_id_keeps_the_note_even_when_the_question_is_rewritten(
    tmp_path: Path, anki: AnkiCollection
) -> None:
    """An `<!-- anki-genai-id: … -->` comment overrides all matching for its pair."""
    text = ORIGINAL.replace(
        "**题目：** HTTP", "<!-- anki-genai-id: http-codes -->\n**题目：** HTTP"
    )
    project = Project(tmp_path, anki, {"network.md": text})
    guid = project.guids["HTTP 的常见状态码有哪些？"]
    project.edit("network.md", "HTTP 的常见状态码有哪些？", "列举五个 HTTP 状态码及含义。")
    edited = (project.source / "network.md").read_bytes()
    log = project.rebuild_and_import()
    assert (log.new, log.updated) == (0, 1)
    assert project.guids_by_question()["列举五个 HTTP 状态码及含义。"] == guid
    assert (project.source / "network.md").read_bytes() == edited  # the source is never rewritten


def test_an_id_added_to_an_existing_pair_keeps_its_note(
    tmp_path: Path, anki: AnkiCollection
) -> None:
    """Pinning a studied pair with `<!-- anki-genai-id: … -->` keeps the note it already
    is: nothing new, nothing removed, its history kept, also on later rebuilds."""
    project = Project(tmp_path, anki, {"network.md": ORIGINAL})
    guid = project.guids["HTTP 的常见状态码有哪些？"]
    project.edit(
        "network.md", "**题目：** HTTP", "<!-- anki-genai-id: http-codes -->\n**题目：** HTTP"
    )
    result = project.build()
    assert "removed" not in result.stdout and "1 new" not in result.stdout, result.stdout
    log = project.rebuild_and_import()
    assert (log.new, log.updated) == (0, 0)
    assert project.guids_by_question()["HTTP 的常见状态码有哪些？"] == guid
    project.edit("network.md", "HTTP 的常见状态码有哪些？", "HTTP 的常见状态码有哪些呢？")
    log = project.rebuild_and_import()
    assert (log.new, log.updated) == (0, 1)
    assert project.guids_by_question()["HTTP 的常见状态码有哪些呢？"] == guid
    project.assert_history_kept()


def test_dry_run_lists_the_plan_and_writes_nothing(notes: Project) -> None:
    """`build --dry-run` prints new, changed, renamed and removed notes and writes nothing."""
    notes.edit("network.md", "TCP 三次握手的过程是什么？", "TCP 三次握手的过程是怎样的？")
    notes.edit("network.md", "但开销小。", "但开销很小。")
    notes.edit(
        "network.md", "HTTP 的常见状态码有哪些？", "浏览器缓存是如何被 Cache-Control 控制的？"
    )
    package_before = notes.package.read_bytes()
    state_before = notes.state_file.read_text(encoding="utf-8")
    outputs = notes.package.parent
    outputs_before = {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in outputs.rglob("*")}

    result = notes.build("--dry-run")

    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert any(
        line.startswith("renamed")
        and "TCP 三次握手的过程是什么？ -> TCP 三次握手的过程是怎样的？" in line
        for line in lines
    )
    assert any(line.startswith("changed") and "UDP 与 TCP" in line for line in lines)
    assert any(line.startswith("new") and "Cache-Control" in line for line in lines)
    assert any(line.startswith("removed") and "HTTP 的常见状态码有哪些？" in line for line in lines)
    assert lines[-1].startswith("Dry run, nothing written")
    assert notes.package.read_bytes() == package_before
    assert notes.state_file.read_text(encoding="utf-8") == state_before
    # nor anything beside the package: not even the cache of the edited file
    assert {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in outputs.rglob("*")} == (
        outputs_before
    )


def test_a_state_of_a_newer_version_stops_the_build(notes: Project) -> None:
    """A state file of a newer version stops the build, even with the package there to
    restore from: it is never reset, nor restored over."""
    content = '{"format": "anki-genai state", "version": 99, "note_type": {}, "notes": []}'
    notes.state_file.write_text(content, encoding="utf-8")
    package_before = notes.package.read_bytes()
    result = notes.build()
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {notes.state_file}")
    assert "version 99 is not supported" in result.stderr
    assert notes.state_file.read_text(encoding="utf-8") == content
    assert notes.package.read_bytes() == package_before


_DAMAGED = pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"format": "anki-genai state", "version": 1, "notes": [', "the state file is damaged"),
        ('{"something": "else"}', "not an anki-genai state file"),
        (
            '{"format": "anki-genai state", "version": 1, "notes": []}',
            "the state file is damaged (entry 'note_type' is missing)",
        ),
        (
            '{"format": "anki-genai state", "version": 1, "note_type": 5, "notes": []}',
            "the state file is damaged (an entry is malformed)",
        ),
        (
            '{"format": "anki-genai state", "version": 1, "note_type": {"digest": "", "mod": 0},'
            ' "notes": [{"guid": "abc", "question": "Q?"}]}',
            "the state file is damaged (entry 'answer' is missing)",
        ),
    ],
    ids=["truncated", "foreign", "entry-missing", "note-type", "note-field"],
)


@_DAMAGED
def test_a_damaged_state_with_nothing_to_restore_from_stops_the_build(
    notes: Project, content: str, message: str
) -> None:
    """A truncated or foreign state file, with no package or backup beside the output,
    stops the build; it is never reset."""
    notes.state_file.write_text(content, encoding="utf-8")
    notes.package.unlink()
    result = notes.build()
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {notes.state_file}")
    assert message in result.stderr
    assert notes.state_file.read_text(encoding="utf-8") == content
    assert not notes.package.exists()


@_DAMAGED
def test_a_damaged_state_is_restored_from_the_package(
    notes: Project, content: str, message: str
) -> None:
    """The same damage with the last package beside the output: the state is restored from
    it, the damaged file kept beside, and importing changes nothing in Anki."""
    notes.state_file.write_text(content, encoding="utf-8")
    result = notes.build()
    assert result.exit_code == 0, result.output
    assert f"{notes.state_file} is damaged: restored it from {notes.package}" in result.stderr
    kept = notes.source / f"{STATE_FILE_NAME}.damaged"
    assert kept.read_text(encoding="utf-8") == content
    log = notes.anki.import_package(notes.package)
    assert (log.new, log.updated) == (0, 0)
    assert notes.guids_by_question() == notes.guids
    assert notes.anki.history() == notes.history


def test_state_file_is_sorted_json_with_a_version(notes: Project) -> None:
    """The state file is human-readable JSON, a header line with its version and the
    project's id, then one line per note, sorted by GUID."""
    lines = notes.state_file.read_text(encoding="utf-8").split("\n")
    assert lines.pop() == ""
    header, *entries = map(json.loads, lines)
    assert header["version"] == 2 and len(header["project"]) == 16
    guids = [entry["guid"] for entry in entries]
    assert guids == sorted(guids) and len(guids) == 3
    assert {e["question"] for e in entries} == set(notes.guids)
    assert notes.state_file.stat().st_mode & 0o044, "others (and git) can read the state file"


def test_restored_pair_gets_its_note_back_without_the_removed_tag(notes: Project) -> None:
    """Deleting a pair and putting it back revives the same note, untagged, history intact."""
    guid = notes.guids["UDP 与 TCP 的主要区别是什么？"]
    original = (notes.source / "network.md").read_text(encoding="utf-8")
    start = original.index("## 2. UDP")
    notes.edit("network.md", original[start : original.index("## 3. HTTP")], "")
    notes.rebuild_and_import()
    assert REMOVED_TAG in notes.anki.tags(guid)
    (notes.source / "network.md").write_text(original, encoding="utf-8")
    log = notes.rebuild_and_import()
    assert (log.new, log.updated) == (0, 1)
    assert REMOVED_TAG not in notes.anki.tags(guid)
    assert notes.guids_by_question() == notes.guids
    notes.assert_history_kept()


def test_repeated_explicit_id_is_an_error_and_the_pair_left_out(tmp_path: Path) -> None:
    """Two pairs with one explicit id would share a GUID: the second is reported and skipped."""
    text = ORIGINAL.replace(
        "**题目：** TCP", "<!-- anki-genai-id: net -->\n**题目：** TCP"
    ).replace("**题目：** UDP", "<!-- anki-genai-id: net -->\n**题目：** UDP")
    source = tmp_path / "network.md"
    source.write_text(text, encoding="utf-8")
    result = run_cli("build", source, "-o", tmp_path / "out.apkg", "--json")
    problems = json.loads(result.stdout)["diagnostics"]
    udp_line = text.splitlines().index("**题目：** UDP 与 TCP 的主要区别是什么？") + 1
    tcp_line = text.splitlines().index("**题目：** TCP 三次握手的过程是什么？") + 1
    assert problems == [
        {
            "path": str(source),
            "line": udp_line,
            "severity": "error",
            "message": f"anki-genai-id 'net' is already used at {source}:{tcp_line}; "
            "give each pair its own id",
        }
    ]
    assert json.loads(result.stdout)["notes"] == 2
