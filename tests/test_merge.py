"""The state file under git: branches merge, conflicts are resolved by the next build, a
repeated GUID is caught, two projects never share a GUID, and old state files upgrade.

Every scenario runs a real `git` in a temporary repository and imports the decks into a
real Anki collection, checking GUIDs, review history and that nothing is duplicated.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from anki_genai import statefile
from anki_genai.errors import StateError
from anki_genai.statefile import STATE_FILE_NAME, NoteRecord, State
from tests.conftest import FIXTURES, AnkiCollection, run_cli, state_notes
from tests.test_statefile import version_1_text

# The project's id is fixed, so its notes' lines fall in the same places on every run.
PROJECT_ID = "merge-test-0001"


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    # No user or system configuration: the repository's own is the whole of it.
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    result = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def _pairs(topic: str, numbers: range) -> str:
    return "".join(
        f"## {n}. 第{n}节\n\n**题目：** {topic}的第{n}个问题？\n\n**答案：** {topic}答{n}。\n\n"
        for n in numbers
    )


class Repo:
    """A git repository holding a project in notes/, built into a folder outside it."""

    def __init__(self, root: Path, conflict_style: str = "merge") -> None:
        self.root = root / "repo"
        self.notes = self.root / "notes"
        self.out = root / "out"
        self.notes.mkdir(parents=True)
        _git(self.root, "init", "-q", "-b", "main")
        for key, value in (
            ("user.name", "Test User"),
            ("user.email", "test@example.com"),
            ("commit.gpgsign", "false"),
            ("merge.conflictStyle", conflict_style),
        ):
            _git(self.root, "config", key, value)
        statefile.save_state(State(project_id=PROJECT_ID), self.state)

    @property
    def state(self) -> Path:
        return self.notes / STATE_FILE_NAME

    @property
    def package(self) -> Path:
        return self.out / "notes.apkg"

    def write(self, name: str, text: str) -> None:
        (self.notes / name).write_text(text, encoding="utf-8")

    def build(self) -> tuple[str, str]:
        """Build the project; return its stdout and stderr."""
        result = run_cli("build", self.notes, "-o", self.package)
        assert result.exit_code == 0, result.output
        return result.stdout, result.stderr

    def commit(self, message: str) -> None:
        _git(self.root, "add", "-A")
        _git(self.root, "commit", "-q", "-m", message)

    def branch(self, name: str, start: str = "main") -> None:
        _git(self.root, "checkout", "-q", "-b", name, start)

    def built_branch(
        self, name: str, files: dict[str, str], start: str = "main"
    ) -> dict[str, dict[str, object]]:
        """On a new branch from `start`: write `files`, build, commit; its state's notes."""
        self.branch(name, start)
        for file, text in files.items():
            self.write(file, text)
        self.build()
        self.commit(f"{name} notes")
        return state_notes(self.state)

    def checkout(self, name: str) -> None:
        _git(self.root, "checkout", "-q", name)

    def merge(self, name: str) -> subprocess.CompletedProcess[str]:
        return _git(self.root, "merge", "--no-edit", name, check=False)


def _base(repo: Repo, anki: AnkiCollection) -> dict[str, object]:
    """main: two files built, committed, imported and studied; return the history."""
    repo.write("faq.md", "# 常见\n\n" + _pairs("常见", range(1, 9)))
    repo.write("llm.md", "# 模型\n\n" + _pairs("模型", range(1, 9)))
    repo.build()
    repo.commit("base")
    assert anki.import_package(repo.package).new == 16
    anki.review_all()
    return dict(anki.history())


def _edit_in_anki(anki: AnkiCollection, question: str, answer: str) -> str:
    """Change a note's answer as the user would on the phone; return its GUID."""
    (guid,) = [g for g, f in anki.notes().items() if f["Question"] == question]
    note = anki.note_by_guid(guid)
    note["Answer"] = answer
    anki.col.update_note(note)
    return guid


def _new_lines_share_a_gap(base: set[str], *branches: set[str]) -> bool:
    """Whether notes added on two branches fall between the same two lines of the base,
    which git cannot merge (the file is sorted by GUID)."""
    ordered = sorted(base)

    def gaps(added: set[str]) -> set[int]:
        return {sum(1 for g in ordered if g < guid) for guid in added}

    first, second = (gaps(guids - base) for guids in branches)
    return bool(first & second)


def _assert_imported_once(anki: AnkiCollection, state: Path) -> None:
    """Every note the state file keeps is in Anki once, under its GUID, with its question."""
    notes = anki.notes()
    recorded = state_notes(state)
    assert set(notes) == set(recorded)
    assert anki.card_count() == len(recorded)
    for guid, record in recorded.items():
        assert notes[guid]["Question"] == record["question"]


def test_branches_adding_notes_in_different_files_merge_without_conflict(
    tmp_path: Path, anki: AnkiCollection
) -> None:
    """Two branches each adding a file merge with plain `git merge`; the merged build sends
    the six new notes under the GUIDs their branches gave and touches no studied card."""
    repo = Repo(tmp_path)
    history = _base(repo, anki)
    base = set(state_notes(repo.state))
    edited = _edit_in_anki(anki, "模型的第2个问题？", "手机上改过的答案")
    go = repo.built_branch("go", {"go.md": "# 协程\n\n" + _pairs("协程", range(1, 4))})
    rust = repo.built_branch("rust", {"rust.md": "# 所有权\n\n" + _pairs("所有权", range(1, 4))})
    assert not _new_lines_share_a_gap(base, set(go), set(rust))

    repo.checkout("main")
    assert repo.merge("go").returncode == 0
    merged = repo.merge("rust")
    assert merged.returncode == 0, merged.stdout
    assert state_notes(repo.state) == {**go, **rust}  # every GUID and mod of both branches

    stdout, stderr = repo.build()
    assert "22 notes (0 new, 0 changed, 22 unchanged)" in stdout
    assert stderr == ""
    assert _git(repo.root, "status", "--porcelain").stdout == ""  # nothing to commit
    log = anki.import_package(repo.package)
    # Anki's "duplicate": a GUID it has, left as it is (the 16 notes it already had).
    assert (log.new, log.updated, log.duplicate, log.conflicting) == (6, 0, 16, 0)
    _assert_imported_once(anki, repo.state)
    assert {g: h for g, h in anki.history().items() if g in base} == history
    assert anki.notes()[edited]["Answer"] == "手机上改过的答案"  # the edit made in Anki stays


def test_branches_adding_notes_in_the_same_file_merge_without_conflict(
    tmp_path: Path, anki: AnkiCollection
) -> None:
    """Two branches adding pairs at different places of one file merge without conflict, in
    the Markdown and the state file; the merged build keeps every GUID."""
    repo = Repo(tmp_path)
    history = _base(repo, anki)
    base = set(state_notes(repo.state))
    faq = (repo.notes / "faq.md").read_text(encoding="utf-8")
    early = repo.built_branch(
        "early", {"faq.md": faq.replace("## 3. ", _pairs("早期", range(1, 4)) + "## 3. ")}
    )
    late = repo.built_branch("late", {"faq.md": faq + _pairs("后期", range(1, 4))})
    assert not _new_lines_share_a_gap(base, set(early), set(late))

    repo.checkout("main")
    assert repo.merge("early").returncode == 0
    merged = repo.merge("late")
    assert merged.returncode == 0, merged.stdout
    stdout, stderr = repo.build()
    assert "22 notes (0 new, 0 changed, 22 unchanged)" in stdout and stderr == ""
    assert state_notes(repo.state) == {**early, **late}
    log = anki.import_package(repo.package)
    assert (log.new, log.updated, log.duplicate) == (6, 0, 16)
    _assert_imported_once(anki, repo.state)
    assert {g: h for g, h in anki.history().items() if g in base} == history


@pytest.mark.parametrize("conflict_style", ["merge", "diff3"])
def test_the_same_note_edited_on_both_branches_is_resolved_by_the_next_build(
    tmp_path: Path, anki: AnkiCollection, conflict_style: str
) -> None:
    """The same note edited on both branches conflicts; after the Markdown is merged by
    hand, the next build resolves the state file, says in one line to `git add` it, and
    Anki gets the merged answer on the note's own GUID, history intact."""
    repo = Repo(tmp_path, conflict_style)
    _base(repo, anki)
    before = state_notes(repo.state)
    (guid,) = [g for g, r in before.items() if r["question"] == "常见的第2个问题？"]
    faq = (repo.notes / "faq.md").read_text(encoding="utf-8")
    repo.branch("ours")
    repo.write("faq.md", faq.replace("常见答2。", "我们的答案。"))
    repo.write("llm.md", (repo.notes / "llm.md").read_text("utf-8") + _pairs("新增", range(1, 3)))
    repo.build()
    repo.commit("our answer")
    # The phone got this branch's build; the user studied once more.
    assert anki.import_package(repo.package).updated == 1
    anki.review_all()
    history = anki.history()
    repo.branch("theirs", "main")
    repo.write("faq.md", faq.replace("常见答2。", "他们的答案。"))
    repo.build()
    repo.commit("their answer")

    repo.checkout("ours")
    merged = repo.merge("theirs")
    assert merged.returncode == 1 and "CONFLICT" in merged.stdout
    state_text = repo.state.read_text(encoding="utf-8")
    assert "<<<<<<<" in state_text and (("|||||||" in state_text) == (conflict_style == "diff3"))
    repo.write("faq.md", faq.replace("常见答2。", "我们的答案，加上他们的。"))
    _git(repo.root, "add", "notes/faq.md")

    stdout, stderr = repo.build()
    first_marker = state_text.split("\n").index(
        next(line for line in state_text.split("\n") if line.startswith("<<<<<<<"))
    )
    assert stderr.splitlines() == [
        f"{repo.state}:{first_marker + 1}: resolved git's merge conflict (1 part): kept the "
        "notes of both sides and, of the 1 on both that differ, the record changed last; "
        f"written resolved: run `git add {repo.state}` to mark it resolved."
    ]
    assert "git checkout" not in stderr
    assert "18 notes (0 new, 1 changed, 17 unchanged)" in stdout
    assert "<<<<<<<" not in repo.state.read_text(encoding="utf-8")
    assert statefile.load_state(repo.state).repairs == ()
    _git(repo.root, "add", str(repo.state))
    _git(repo.root, "commit", "-q", "--no-edit")
    assert repo.build()[1] == ""  # resolved once: nothing more to say

    resolved = state_notes(repo.state)
    assert set(before) < set(resolved) and len(resolved) == 18  # no note lost its GUID
    log = anki.import_package(repo.package)
    assert (log.new, log.updated, log.duplicate, log.conflicting) == (0, 1, 17, 0)
    assert "我们的答案，加上他们的。" in anki.notes()[guid]["Answer"]
    _assert_imported_once(anki, repo.state)
    assert anki.history() == history


def test_a_repeated_guid_of_one_note_is_repaired_with_a_message(
    tmp_path: Path, anki: AnkiCollection
) -> None:
    """A note's line copied in the state file: the build keeps its later record, says which
    line it dropped, and writes the file right; Anki sees no change."""
    repo = Repo(tmp_path)
    _base(repo, anki)
    kept = state_notes(repo.state)
    lines = repo.state.read_text(encoding="utf-8").split("\n")
    copy = json.loads(lines[3])
    copy["mod"] -= 10  # an older record of the same note, five lines further down
    lines.insert(8, json.dumps(copy, ensure_ascii=False))
    repo.state.write_text("\n".join(lines), encoding="utf-8")

    stdout, stderr = repo.build()
    (repaired,) = stderr.splitlines()
    assert repaired.startswith(f"{repo.state}:9: note {copy['guid']} ")
    assert repaired.endswith(
        "is recorded here a second time; kept of each the record changed last "
        "(the larger mod); written so."
    )
    assert "16 notes (0 new, 0 changed, 16 unchanged)" in stdout
    # Written right: one line per GUID, each note's record as it was before the copy.
    assert len(repo.state.read_text(encoding="utf-8").split("\n")) == 16 + 2
    assert state_notes(repo.state) == kept
    log = anki.import_package(repo.package)
    assert (log.new, log.updated, log.duplicate) == (0, 0, 16)
    _assert_imported_once(anki, repo.state)


def test_two_notes_under_one_guid_stop_the_build_at_the_line(tmp_path: Path) -> None:
    """A GUID given to a second, different question stops the build at that line, says what
    to do, and changes nothing: no note silently takes another's GUID."""
    repo = Repo(tmp_path)
    repo.write("faq.md", "# 常见\n\n" + _pairs("常见", range(1, 4)))
    repo.build()
    lines = repo.state.read_text(encoding="utf-8").split("\n")
    first, second = json.loads(lines[1]), json.loads(lines[2])
    second["guid"] = first["guid"]  # the second note now claims the first one's GUID
    lines[2] = json.dumps(second, ensure_ascii=False)
    repo.state.write_text("\n".join(lines), encoding="utf-8")
    before = repo.state.read_bytes(), repo.package.read_bytes()

    result = run_cli("build", repo.notes, "-o", repo.package)
    assert result.exit_code == 1
    (error,) = result.stderr.splitlines()
    assert error.startswith(
        f"Error: {repo.state}:3: note {first['guid']} is recorded here a second time, for "
        f'another question ("{second["question"]}" here, "{first["question"]}" at line 2)'
    )
    assert "Delete the line whose question is not that note's in Anki" in error
    assert "git checkout" not in error
    assert (repo.state.read_bytes(), repo.package.read_bytes()) == before


def test_two_projects_asking_the_same_question_both_arrive_in_one_collection(
    tmp_path: Path, anki: AnkiCollection
) -> None:
    """Two unrelated projects that both ask "什么是TCP？" give two notes in one collection."""
    for name, answer in (("network", "传输控制协议。"), ("interview", "面向连接的协议。")):
        project = tmp_path / name
        project.mkdir()
        (project / "tcp.md").write_text(
            f"# {name}\n\n**题目：** 什么是TCP？\n\n**答案：** {answer}\n", encoding="utf-8"
        )
        result = run_cli("build", project, "-o", tmp_path / f"{name}.apkg")
        assert result.exit_code == 0, result.output
        log = anki.import_package(tmp_path / f"{name}.apkg")
        assert (log.new, log.duplicate, log.updated) == (1, 0, 0)
    assert sorted(n["Answer"] for n in anki.notes().values()) == [
        "传输控制协议。",
        "面向连接的协议。",
    ]


def test_a_version_1_state_file_upgrades_keeping_every_guid_and_mod(
    tmp_path: Path, anki: AnkiCollection
) -> None:
    """A project whose state file the previous format wrote (committed fixture) builds with
    every GUID and mod it recorded; a new note then gets a GUID of this project's own."""
    project = tmp_path / "project"
    shutil.copytree(FIXTURES / "version-1-project", project)
    old_text = (project / STATE_FILE_NAME).read_text(encoding="utf-8")
    assert old_text.startswith('{"format": "anki-genai state", "version": 1,')
    old = state_notes(project / STATE_FILE_NAME)
    package = tmp_path / "deck.apkg"

    result = run_cli("build", project, "-o", package)
    assert result.exit_code == 0, result.output
    assert "5 notes (0 new, 0 changed, 5 unchanged)" in result.stdout
    assert (project / STATE_FILE_NAME).read_text(encoding="utf-8") == old_text  # untouched
    assert anki.import_package(package).new == 5
    assert {g: n.mod for g, n in _anki_notes(anki).items()} == {g: r["mod"] for g, r in old.items()}
    anki.review_all()
    history = anki.history()

    network = project / "network.md"
    network.write_text(
        network.read_text(encoding="utf-8")
        + "\n## 4. 拥塞\n\n**题目：** 什么是TCP拥塞控制？\n\n**答案：** 慢启动与拥塞避免。\n",
        encoding="utf-8",
    )
    result = run_cli("build", project, "-o", package)
    assert result.exit_code == 0, result.output
    assert "6 notes (1 new, 0 changed, 5 unchanged)" in result.stdout
    new = state_notes(project / STATE_FILE_NAME)
    assert {g: r for g, r in new.items() if g in old} == old  # GUIDs, mods, all of it
    header = (project / STATE_FILE_NAME).read_text(encoding="utf-8").split("\n")[0]
    assert '"version": 2' in header and '"project": ' in header
    log = anki.import_package(package)
    assert (log.new, log.updated, log.duplicate) == (1, 0, 5)
    _assert_imported_once(anki, project / STATE_FILE_NAME)
    assert {g: h for g, h in anki.history().items() if g in old} == history


def _anki_notes(anki: AnkiCollection) -> dict[str, object]:
    return {guid: anki.note_by_guid(guid) for guid in anki.notes()}


def _record(guid: str, question: str, mod: int) -> NoteRecord:
    return NoteRecord(guid, question, "a-" + question, "d-" + question, mod, "f.md")


def _merge_file(tmp_path: Path, base: str, ours: str, theirs: str, style: str) -> str:
    """What `git merge` leaves when it cannot merge `ours` and `theirs` (from `base`)."""
    paths = []
    for name, text in (("ours", ours), ("base", base), ("theirs", theirs)):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        paths.append(str(path))
    style_flag = ["--diff3"] if style == "diff3" else []
    result = _git(tmp_path, "merge-file", "-p", *style_flag, *paths, check=False)
    assert 0 < result.returncode < 128, f"expected conflicts: {result.stderr}"
    return result.stdout


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("style", ["merge", "diff3"])
def test_conflicts_in_either_format_resolve_to_both_sides(
    tmp_path: Path, version: int, style: str
) -> None:
    """Notes added at the same place on two branches, and one note edited on both, conflict
    in either format (version 1 being the one before project ids); reading keeps every
    note and, of the edited one, the record changed last."""
    base = {g: _record(g, q, 100) for g, q in (("b", "问题b"), ("d", "问题d"), ("f", "问题f"))}
    ours = {**base, "c1": _record("c1", "我们的", 200), "d": _record("d", "问题d改", 300)}
    theirs = {**base, "c2": _record("c2", "他们的", 250), "d": _record("d", "问题d又改", 250)}
    ours["z1"], theirs["z2"] = _record("z1", "末尾一", 200), _record("z2", "末尾二", 250)
    texts = []
    for notes in (base, ours, theirs):
        state = State(notes, "nt", 5, "p1")
        path = tmp_path / f"{len(texts)}.json"
        statefile.save_state(state, path)
        texts.append(path.read_text("utf-8") if version == 2 else version_1_text(state))
    conflicted = tmp_path / STATE_FILE_NAME
    conflicted.write_text(_merge_file(tmp_path, *texts, style), encoding="utf-8")

    state = statefile.load_state(conflicted)
    assert set(state.notes) == {"b", "c1", "c2", "d", "f", "z1", "z2"}
    assert state.notes["d"] == ours["d"]  # mod 300 against 250
    assert state.notes["c2"] == theirs["c2"] and state.notes["z1"] == ours["z1"]
    (repair,) = state.repairs
    assert repair.merge_conflict and "kept the notes of both sides" in repair.message


def test_conflict_markers_that_do_not_pair_up_stop_at_their_line(tmp_path: Path) -> None:
    """A conflict cut short by hand is an error at its line, never guessed at."""
    path = tmp_path / STATE_FILE_NAME
    statefile.save_state(State({"a": _record("a", "问", 1)}, "nt", 5, "p1"), path)
    lines = path.read_text(encoding="utf-8").split("\n")
    path.write_text("\n".join([lines[0], "<<<<<<< HEAD", lines[1], ""]), encoding="utf-8")
    with pytest.raises(StateError) as caught:
        statefile.load_state(path)
    assert str(caught.value).startswith(f"{path}:2: git's conflict markers do not pair up")


def test_a_state_file_added_on_both_branches_resolves_to_both(tmp_path: Path) -> None:
    """A project started on two branches at once (each first build wrote the state file,
    with its own project id): the conflict over the whole file resolves to every note of
    both, under the id of the branch merged into."""
    texts = []
    for project, guids in (("ours-id", ("a", "c")), ("theirs-id", ("b", "c"))):
        path = tmp_path / f"{project}.json"
        notes = {g: _record(g, f"问题{g}", 100 if project == "ours-id" else 200) for g in guids}
        statefile.save_state(State(notes, "nt", 5, project), path)
        texts.append(path.read_text(encoding="utf-8"))
    conflicted = tmp_path / STATE_FILE_NAME
    conflicted.write_text(_merge_file(tmp_path, "", *texts, "merge"), encoding="utf-8")

    state = statefile.load_state(conflicted)
    assert (sorted(state.notes), state.project_id) == (["a", "b", "c"], "ours-id")
    assert state.notes["c"].mod == 200
