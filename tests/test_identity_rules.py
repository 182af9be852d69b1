"""The matching rules between a build's pairs and the notes the state file remembers."""

from __future__ import annotations

import base64
import hashlib

from anki_genai.identity import Candidate, Status, assign_identities
from anki_genai.statefile import NoteRecord, State


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
    """In one project, a new pair's GUID comes from its question alone."""
    a = Candidate("问题一", "a", "d1", "one.md")
    b = Candidate("问题二", "b", "d2", "two.md")
    project = State(project_id="p1")
    first = assign_identities([a, b], project, 1).assignments
    second = assign_identities(
        [b.__class__("问题二", "b", "d2", "three.md"), a], project, 1
    ).assignments
    assert {x.guid for x in first} == {x.guid for x in second}
    assert first[0].guid == second[1].guid


def test_two_projects_give_the_same_question_two_guids() -> None:
    """The same new question in two projects (or two first builds) gets two GUIDs."""
    question = Candidate("什么是TCP？", "a", "d1", "net.md")
    other_answer = Candidate("什么是TCP？", "b", "d2", "net.md")
    guids = {
        assign_identities([question], State(project_id="p1"), 1).assignments[0].guid,
        assign_identities([question], State(project_id="p2"), 1).assignments[0].guid,
        assign_identities([question], State(), 1).assignments[0].guid,  # first builds
        assign_identities([question], State(), 2).assignments[0].guid,
        assign_identities([other_answer], State(), 1).assignments[0].guid,
    }
    assert len(guids) == 5


def _guid_before_project_ids(*parts: str) -> str:
    """A GUID as releases before project ids made it: from the question (or id) alone."""
    digest = hashlib.sha256("\x1f".join(("anki-genai", *parts)).encode()).digest()
    return base64.urlsafe_b64encode(digest[:9]).decode()


def test_guids_recorded_before_project_ids_are_kept() -> None:
    """A note recorded under a GUID made from its question alone (or its explicit id) keeps
    it, unchanged, in a project that now has an id; a new note gets the project's GUID."""
    records = [
        NoteRecord(_guid_before_project_ids("q", "问题一"), "问题一", "a", "d1", 100, "f.md"),
        NoteRecord(_guid_before_project_ids("id", "two"), "问题二", "b", "d2", 100, "f.md"),
    ]
    state = State({r.guid: r for r in records}, "digest", 100, project_id="p1")
    plan = assign_identities(
        [
            Candidate("问题一", "a", "d1", "f.md"),
            Candidate("问题二", "b", "d2", "f.md", "two"),
            Candidate("问题三", "c", "d3", "f.md"),
            Candidate("问题四", "d", "d4", "f.md", "four"),
        ],
        state,
        200,
    )
    assert [(a.guid, a.status) for a in plan.assignments] == [
        (records[0].guid, Status.UNCHANGED),
        (records[1].guid, Status.UNCHANGED),
        (plan.assignments[2].guid, Status.NEW),
        (plan.assignments[3].guid, Status.NEW),
    ]
    assert plan.assignments[2].guid != _guid_before_project_ids("q", "问题三")
    assert plan.assignments[3].guid != _guid_before_project_ids("id", "four")
    assert plan.project_id == "p1" and plan.newly_removed == ()


def test_matching_does_not_depend_on_the_order_of_the_records() -> None:
    """Notes that tie for a pair (same question, both with another answer, in other files)
    go as the state file lists them, whatever order the records are handed over in: a
    rebuild of the changed files holds only theirs, in another order."""
    records = [
        NoteRecord(guid, "同一个问题？", f"old {guid}", f"d{guid}", mod=100, file="a.md")
        for guid in ("g3", "g1", "g2")
    ]
    candidates = [Candidate("同一个问题？", f"new {n}", f"n{n}", "b.md") for n in range(2)]
    plans = [
        assign_identities(candidates, State({r.guid: r for r in order}, "digest", 100), 200)
        for order in (records, records[::-1], sorted(records, key=lambda r: r.guid))
    ]
    assert [a.guid for a in plans[0].assignments] == ["g1", "g2"]
    assert all(plan == plans[0] for plan in plans)
