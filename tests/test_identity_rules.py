"""The matching rules between a build's pairs and the notes the state file remembers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from anki_genai import identity
from anki_genai.identity import Candidate, NoteRecord, State, Status, assign_identities


def _state(*records: NoteRecord) -> State:
    return State({r.guid: r for r in records}, "digest", 100)


def _record(guid: str, question: str, answer: str = "a", digest: str = "d") -> NoteRecord:
    return NoteRecord(guid, question, answer, digest, mod=100, file="f.md")


def test_ambiguous_edit_never_merges_two_questions() -> None:
    """A question equally close to two vanished questions becomes a new note."""
    state = _state(
        _record("g1", "进程和线程的区别是什么？"), _record("g2", "进程和协程的区别是什么？")
    )
    plan = assign_identities([Candidate("进程和纤程的区别是什么？", "x", "dx", "f.md")], state, 200)
    assert plan.assignments[0].status is Status.NEW
    assert set(plan.newly_removed) == {"g1", "g2"}


def test_unchanged_answer_lets_a_larger_question_edit_match() -> None:
    """With the same answer, a more heavily edited question still keeps its note."""
    state = _state(_record("g1", "什么是死锁？", answer="same"))
    plan = assign_identities([Candidate("请解释什么是死锁？", "same", "d2", "f.md")], state, 200)
    assert (plan.assignments[0].guid, plan.assignments[0].status) == ("g1", Status.RENAMED)


def test_different_question_with_a_different_answer_is_new() -> None:
    """A substantially rewritten question with a new answer is a new note."""
    state = _state(_record("g1", "TCP 三次握手的过程是什么？"))
    plan = assign_identities([Candidate("什么是 DNS 劫持？", "b", "d2", "f.md")], state, 200)
    assert plan.assignments[0].status is Status.NEW
    assert plan.newly_removed == ("g1",)


def test_unchanged_note_keeps_its_mod_and_changed_note_gets_now() -> None:
    """Only a changed digest moves a note's mod time."""
    state = _state(_record("g1", "问题一", digest="d1"), _record("g2", "问题二", digest="d2"))
    plan = assign_identities(
        [Candidate("问题一", "a", "d1", "f.md"), Candidate("问题二", "a", "changed", "f.md")],
        state,
        200,
    )
    assert [(a.guid, a.mod, a.status) for a in plan.assignments] == [
        ("g1", 100, Status.UNCHANGED),
        ("g2", 200, Status.CHANGED),
    ]


def test_fresh_guids_do_not_depend_on_order_or_file() -> None:
    """Without a state, a pair's GUID comes from its question alone."""
    a = Candidate("问题一", "a", "d1", "one.md")
    b = Candidate("问题二", "b", "d2", "two.md")
    first = assign_identities([a, b], State(), 1).assignments
    second = assign_identities(
        [b.__class__("问题二", "b", "d2", "three.md"), a], State(), 1
    ).assignments
    assert {x.guid for x in first} == {x.guid for x in second}
    assert first[0].guid == second[1].guid


def test_state_file_round_trips_every_character(tmp_path: Path) -> None:
    """Whatever a question or a removed note's fields hold, the state file reads back equal,
    and a plain JSON reader sees the same records."""
    awkward = 'q "引号" \\ 反斜杠\n换行\t\u2028\x00 emoji 🦊 </script>'
    state = identity.State(
        {
            "a": identity.NoteRecord("a", awkward, "ans", "dig", 1_700_000_000, "dir/文件.md"),
            "b": identity.NoteRecord(
                "b", "已删除？", "x", "y", 1_700_000_001, "f.md", removed=True,
                deck="父::子", fields=(awkward, "<b>答</b>"), tags=("t::1", "标签"),
            ),
        },
        note_type_digest="nt",
        note_type_mod=5,
    )  # fmt: skip
    path = tmp_path / identity.STATE_FILE_NAME
    digest = identity.save_state(state, path)
    assert identity.load_state(path) == state
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    entries = json.loads(path.read_text(encoding="utf-8"))["notes"]
    assert entries[0]["question"] == awkward
    assert entries[1]["fields"] == [awkward, "<b>答</b>"] and entries[1]["removed"] is True
    # one line per note, as git diffs it: a header, two notes, the end, then the last newline
    assert len(path.read_text(encoding="utf-8").split("\n")) == 5


@pytest.mark.parametrize(
    ("layout", "read_whole"),
    [("as written", False), ("crlf", False), ("indented", True), ("one line", True)],
)
@pytest.mark.parametrize("notes", [2, 0])
def test_state_file_reads_back_however_it_is_laid_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str, read_whole: bool, notes: int
) -> None:
    """A state file re-indented by an editor or merge tool, or checked out with CRLF line
    ends, is the same state. The file as written is read a line at a time, never whole."""
    records = {
        "a": identity.NoteRecord("a", "问题？", "ans", "dig", 1_700_000_000, "f.md"),
        "b": identity.NoteRecord(
            "b", "删了", "x", "y", 1, "f.md", removed=True, deck="d", fields=("答",), tags=("t",)
        ),
    }
    state = identity.State(dict(list(records.items())[:notes]), "nt", 5)
    path = tmp_path / identity.STATE_FILE_NAME
    identity.save_state(state, path)
    text = path.read_text(encoding="utf-8")
    if layout == "crlf":
        path.write_bytes(text.replace("\n", "\r\n").encode())
    elif layout != "as written":
        data = json.loads(text)
        path.write_text(
            json.dumps(data, ensure_ascii=False, indent=2 if layout == "indented" else None),
            "utf-8",
        )
    whole_reads: list[Path] = []
    real_read_whole = identity._state_from_text

    def spy(path: Path, known: Any) -> identity.State:
        whole_reads.append(path)
        return real_read_whole(path, known)

    monkeypatch.setattr(identity, "_state_from_text", spy)
    assert identity.load_state(path) == state
    assert bool(whole_reads) == read_whole
