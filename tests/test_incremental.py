"""A rebuild that matches only the changed files gives exactly what matching every file gives:
the same notes in Anki (GUIDs, fields, mods, tags, decks) and the same state file."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from anki_genai import identity, incremental, statefile
from anki_genai.cache import CACHE_FILE_NAME
from anki_genai.identity import Status
from anki_genai.parse import normalize_question
from tests.test_build_paths import FILES, _build, _notes, _write_corpus

Edit = Callable[[Path], None]


def _replace(name: str, old: str, new: str) -> Edit:
    def edit(source: Path) -> None:
        path = source / name
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    return edit


def _add(source: Path) -> None:
    (source / "part50.md").write_text(
        "# 新题库\n\n**题目：** 新加的题目是什么？\n\n**答案：** 新加的答案。\n", encoding="utf-8"
    )


def _remove(source: Path) -> None:
    (source / "part04.md").unlink()


def _pair(f: int, n: int) -> str:
    return (
        f"## {n + 1}. 小节\n\n**题目：** 第{f}-{n}题：什么是第{n}种情况？\n\n"
        f"**答案：**\n\n- 要点 {f}.{n}\n- 公式 $x_{n}^2$\n\n"
        f"```python\nprint({f}, {n})\n```\n"
    )


def _move(question_edit: str = "") -> Edit:
    """Cut pair 3-2 from part03.md and paste it at the end of part07.md (its question
    edited by `question_edit` appended, if given)."""

    def edit(source: Path) -> None:
        pair = _pair(3, 2)
        _replace("part03.md", pair, "")(source)
        moved = pair.replace("种情况？", f"种情况{question_edit}？") if question_edit else pair
        with (source / "part07.md").open("a", encoding="utf-8") as handle:
            handle.write("\n" + moved)

    return edit


SCENARIOS: dict[str, tuple[list[Edit], bool]] = {
    # name: (edits, one after the other, each built; whether the last may take the shortcut,
    # as those before it do)
    "an answer edited": ([_replace("part05.md", "要点 5.3", "要点五点三")], True),
    "a file added": ([_add], True),
    "a file removed": ([_remove], True),
    "a pair moved to another file": ([_move()], True),
    "a pair moved, its question edited": ([_move("呢")], True),
    "a question edited": ([_replace("part02.md", "第2-1题：什么是", "第2-1题：究竟什么是")], True),
    "a question edited, then its answer": (
        [
            _replace("part02.md", "第2-1题：什么是", "第2-1题：究竟什么是"),
            _replace("part02.md", "要点 2.1", "要点二点一"),
        ],
        True,
    ),
    "a file edited after a file removed": ([_remove, _replace("part06.md", "6.1", "六点一")], True),
    "a question edited, then another file": (
        [
            _replace("part02.md", "第2-1题：什么是", "第2-1题：究竟什么是"),
            _replace("part09.md", "要点 9.1", "要点九点一"),
        ],
        True,
    ),
    # Two notes of part02.md then share a question, one under its older question's GUID.
    "a question edited into another of its file's, then another file": (
        [
            _replace("part02.md", "第2-1题：什么是第1种", "第2-2题：什么是第2种"),
            _replace("part09.md", "要点 9.1", "要点九点一"),
        ],
        True,
    ),
    # Matched first, part01.md's pair would take part02.md's note by its question.
    "a question edited, then copied to an earlier file": (
        [
            _replace("part02.md", "第2-1题：什么是", "第2-1题：究竟什么是"),
            _replace("part01.md", "第1-1题：什么是", "第2-1题：究竟什么是"),
        ],
        False,
    ),
    # A changed file gains the question of an unchanged file's pair: they are merged or
    # warned about across files, so the build matches every file.
    "a question copied from an unchanged file": (
        [_replace("part05.md", "第5-3题：什么是第3种情况？", "第9-3题：什么是第3种情况？")],
        False,
    ),
    "a whole pair copied from an unchanged file": (
        [
            lambda source: (source / "part11.md").write_text(
                (source / "part11.md").read_text(encoding="utf-8") + "\n" + _pair(9, 3), "utf-8"
            )
        ],
        False,
    ),
}


def _shortcuts_taken(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """A list that records, for each rebuild from now on, whether it took the shortcut."""
    taken: list[bool] = []
    real_plan_delta = incremental.plan_delta

    def spy(*args: object, **kwargs: object) -> object:
        delta = real_plan_delta(*args, **kwargs)  # type: ignore[arg-type]
        taken.append(delta is not None)
        return delta

    monkeypatch.setattr(incremental, "plan_delta", spy)
    return taken


def _edit_and_rebuild_both(
    tmp_path: Path,
    quick: Path,
    full: Path,
    edit: Edit,
    fixed_clock: list[float],
    taken: list[bool],
    build_quick: Callable[[Path, Path], None] = _build,
) -> None:
    """Copy the quick project (sources, state, package) to a fresh full one with no cache,
    make the same `edit` in both, and rebuild both a little later (the quick one with
    `build_quick`)."""
    shutil.rmtree(full.parent, ignore_errors=True)
    shutil.copytree(quick, full)
    shutil.copyfile(tmp_path / "quick" / "out.apkg", tmp_path / "full" / "out.apkg")
    for source in (quick, full):
        edit(source)
    fixed_clock[0] += 100
    taken.clear()
    build_quick(quick, tmp_path / "quick" / "out.apkg")
    _build(full, tmp_path / "full" / "out.apkg")


@pytest.mark.parametrize("name", SCENARIOS)
def test_rebuild_of_changed_files_equals_full_build(
    name: str, tmp_path: Path, fixed_clock: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the edit, a rebuild gives the notes and state a build that matches every
    file gives, and takes the shortcut wherever it may."""
    edits, shortcut = SCENARIOS[name]
    quick, full = tmp_path / "quick" / "source", tmp_path / "full" / "source"
    _write_corpus(quick)
    _build(quick, tmp_path / "quick" / "out.apkg")
    taken = _shortcuts_taken(monkeypatch)
    for number, edit in enumerate(edits, 1):
        # The full build starts from the same sources, state and package, with no cache:
        # it matches every file.
        _edit_and_rebuild_both(tmp_path, quick, full, edit, fixed_clock, taken)
        may = shortcut or number < len(edits)  # the edits before the last one may
        assert taken[:1] == [may] or (not may and taken[:1] in ([], [False]))
        state = statefile.STATE_FILE_NAME
        assert (quick / state).read_bytes() == (full / state).read_bytes()
    got = _notes(tmp_path / "quick" / "out.apkg", tmp_path / "anki-quick")
    want = _notes(tmp_path / "full" / "out.apkg", tmp_path / "anki-full")
    assert got == want
    assert len(got) >= FILES * 8 - 8


def _files_matched(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """A list that records, for each rebuild that takes the shortcut, the files it matches."""
    matched: list[list[str]] = []
    real_plan_delta = incremental.plan_delta

    def spy(parts: incremental.Split, *args: object, **kwargs: object) -> object:
        matched.append(sorted(job.relative for job in parts.changed.jobs))  # type: ignore[union-attr]
        return real_plan_delta(parts, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(incremental, "plan_delta", spy)
    return matched


@pytest.mark.parametrize(
    ("question_edit", "matched_again"),
    [
        # Its note keeps its GUID, and no other note has the new question.
        (("第2-1题：什么是", "第2-1题：究竟什么是"), ["part09.md"]),
        # Now two of its notes have one question: matching by question could pick either.
        (("第2-1题：什么是第1种", "第2-2题：什么是第2种"), ["part02.md", "part09.md"]),
    ],
)
def test_file_with_an_edited_question_is_matched_again_only_while_it_must_be(
    question_edit: tuple[str, str],
    matched_again: list[str],
    tmp_path: Path,
    fixed_clock: list[float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rebuild after an edit elsewhere matches again a file whose question was edited
    before only when its note could be matched another way than by its question (the
    scenarios above prove both give what a full build gives)."""
    source = tmp_path / "source"
    _write_corpus(source)
    package = tmp_path / "out.apkg"
    _build(source, package)
    _replace("part02.md", *question_edit)(source)
    _build(source, package)
    matched = _files_matched(monkeypatch)
    _replace("part09.md", "要点 9.1", "要点九点一")(source)
    fixed_clock[0] += 100
    _build(source, package)
    assert matched == [matched_again]


def test_rebuild_reports_what_a_full_build_reports(
    tmp_path: Path, fixed_clock: list[float]
) -> None:
    """The shortcut's counts, decks and problems are those a full build reports."""
    from anki_genai import build as build_module
    from anki_genai.build import BuildOptions

    results = []
    for name in ("quick", "full"):
        fixed_clock[0] = 1_800_000_000.0  # one project id for both: new GUIDs are made from it
        source = tmp_path / name / "source"
        _write_corpus(source)
        (source / "part03.md").write_text(
            (source / "part03.md").read_text(encoding="utf-8") + "\n**题目：** 无答案？\n",
            encoding="utf-8",
        )
        options = BuildOptions(sources=(source,), output=tmp_path / name / "out.apkg")
        build_module.build(options)
        _remove(source)
        _replace("part05.md", "要点 5.3", "要点五点三")(source)
        fixed_clock[0] += 100
        if name == "full":  # no cache: every file is parsed and matched
            shutil.rmtree(tmp_path / name / CACHE_FILE_NAME)
        results.append(build_module.build(options))
    quick, full = results
    assert quick.counts == full.counts
    assert quick.counts[Status.REMOVED] == 8 and quick.counts[Status.CHANGED] == 1
    assert list(quick.deck_counts.items()) == list(full.deck_counts.items())
    assert [str(d).replace("/quick/", "/") for d in quick.diagnostics] == [
        str(d).replace("/full/", "/") for d in full.diagnostics
    ]
    assert quick.diagnostics != ()
    assert quick.note_count == full.note_count
    assert [(c.guid, c.status) for c in quick.changes] == [(c.guid, c.status) for c in full.changes]


def test_package_patched_in_place_equals_full_build(
    tmp_path: Path, fixed_clock: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rebuilds that patch the kept collection where it lies and zip it from its kept
    segments give a sound package with the notes a full build gives, edit after edit."""
    import zipfile

    from anki_genai.apkg import deflate, inplace

    monkeypatch.setattr(deflate, "SEGMENT_SIZE", 4096)  # so that this small deck spans many
    patched: list[object] = []
    real_write_patched = inplace.write_patched

    def spy(*args: object) -> object:
        patched.append(real_write_patched(*args))  # type: ignore[arg-type]
        return patched[-1]

    monkeypatch.setattr(inplace, "write_patched", spy)
    quick, full = tmp_path / "quick" / "source", tmp_path / "full" / "source"
    _write_corpus(quick)
    package = tmp_path / "quick" / "out.apkg"
    _build(quick, package)
    edits = [
        _replace("part05.md", "要点 5.3", "要点五点三"),
        _add,
        _remove,
        _replace("part09.md", "要点 9.1", "要点九点一" * 200),  # a longer collection
    ]
    for edit in edits:
        shutil.rmtree(full.parent, ignore_errors=True)
        shutil.copytree(quick, full)
        shutil.copyfile(package, tmp_path / "full" / "out.apkg")
        for source in (quick, full):
            edit(source)
        fixed_clock[0] += 100
        _build(quick, package)
        with zipfile.ZipFile(package) as zf:
            assert zf.testzip() is None
    assert patched == [True] * len(edits)
    _build(full, tmp_path / "full" / "out.apkg")
    assert _notes(package, tmp_path / "anki-quick") == _notes(
        tmp_path / "full" / "out.apkg", tmp_path / "anki-full"
    )


def test_rebuild_reads_only_the_files_whose_stamp_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file whose size, times and inode are as when its key was taken, while it had been
    quiet, is not read again; a file rewritten with its size and mtime put back is."""
    import os

    from anki_genai import sources as sources_module

    monkeypatch.setattr(sources_module, "_QUIET_NS", 0)  # the files here were just written
    source = tmp_path / "source"
    _write_corpus(source)
    package = tmp_path / "out.apkg"
    _build(source, package)
    read: list[str] = []
    real_read_bytes = sources_module.read_bytes

    def reading(path: Path) -> bytes:
        read.append(path.name)
        return real_read_bytes(path)

    monkeypatch.setattr(sources_module, "read_bytes", reading)
    edited = source / "part05.md"
    before = edited.stat()
    text = edited.read_text(encoding="utf-8")
    assert "要点 5.3" in text
    edited.write_text(text.replace("要点 5.3", "要点 5.9"), encoding="utf-8")  # same size
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns))
    _build(source, package)
    assert read == ["part05.md"]
    got = _notes(package, tmp_path / "anki")
    assert sum("要点 5.9" in fields[1] for fields, *_ in got.values()) == 1


def test_a_file_read_while_it_was_being_written_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file changed less than the quiet time before its key was taken is read again by
    the next build, even if its stamp did not change: its times tick coarsely."""
    from anki_genai import sources as sources_module

    source = tmp_path / "source"
    _write_corpus(source)
    package = tmp_path / "out.apkg"
    _build(source, package)  # every file written just now: none is quiet yet
    read: list[str] = []
    real_read_bytes = sources_module.read_bytes

    def reading(path: Path) -> bytes:
        read.append(path.name)
        return real_read_bytes(path)

    monkeypatch.setattr(sources_module, "read_bytes", reading)
    _build(source, package)
    assert len(read) == FILES


def _rebuilds_equal_full_builds(
    tmp_path: Path,
    fixed_clock: list[float],
    monkeypatch: pytest.MonkeyPatch,
    edits: list[Edit],
    build_quick: Callable[[Path, Path], None] = _build,
) -> list[bool]:
    """Build `tmp_path/quick/source` after each edit (with `build_quick`), and a copy of it
    without the cache; check both give the same state file and, at the end, the same notes
    in Anki; return whether each rebuild took the shortcut."""
    quick = tmp_path / "quick" / "source"
    full = tmp_path / "full" / "source"
    taken = _shortcuts_taken(monkeypatch)
    shortcuts = []
    for edit in edits:
        _edit_and_rebuild_both(tmp_path, quick, full, edit, fixed_clock, taken, build_quick)
        shortcuts.append(taken[:1] == [True])
        state = statefile.STATE_FILE_NAME
        assert (quick / state).read_bytes() == (full / state).read_bytes()
    got = _notes(tmp_path / "quick" / "out.apkg", tmp_path / "anki-quick")
    want = _notes(tmp_path / "full" / "out.apkg", tmp_path / "anki-full")
    assert got == want
    return shortcuts


def test_project_upgraded_from_version_1_keeps_its_guids_on_the_shortcut(
    tmp_path: Path, fixed_clock: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project whose state was written before projects had ids keeps its notes' GUIDs
    (made from the question alone). A version 1 state file is not edited in place: the
    first rebuild matches every file and writes version 2; from then on the legacy GUIDs
    count as settled, the shortcut is taken, and a new note gets its GUID from the project
    id, exactly as a full build gives them."""
    quick = tmp_path / "quick" / "source"
    shutil.copytree(Path(__file__).parent / "fixtures" / "version-1-project", quick)
    old = statefile.load_state(quick / statefile.STATE_FILE_NAME)
    _build(quick, tmp_path / "quick" / "out.apkg")
    upgraded = statefile.load_state(quick / statefile.STATE_FILE_NAME)
    assert upgraded.project_id and set(old.notes) <= set(upgraded.notes)
    # Nothing changed, so the version 1 file stays as it was.
    assert b'"version": 1' in (quick / statefile.STATE_FILE_NAME).read_bytes()

    def add(source: Path) -> None:
        (source / "extra.md").write_text(
            "# 补充\n\n**题目：** 新加的题目是什么？\n\n**答案：** 新加的答案。\n", encoding="utf-8"
        )

    edits = [
        _replace("systems.md", "线程是调度的单位", "线程是处理器调度的单位"),
        _replace("systems.md", "线程是处理器调度的单位", "线程是 CPU 调度的单位"),
        add,
    ]
    shortcuts = _rebuilds_equal_full_builds(tmp_path, fixed_clock, monkeypatch, edits)
    assert shortcuts == [False, True, True]
    text = (quick / statefile.STATE_FILE_NAME).read_bytes()
    assert b'"version": 2' in text.split(b"\n", 1)[0]
    state = statefile.load_state(quick / statefile.STATE_FILE_NAME)
    assert set(old.notes) <= set(state.notes)  # every legacy GUID kept
    (new,) = [r for r in state.notes.values() if r.file == "extra.md"]
    key = normalize_question(new.question)
    assert new.guid == identity.own_guids(state.project_id, key, None)[0]
    assert new.guid != identity.own_guids(state.project_id, key, None)[1]


def test_state_set_right_on_reading_takes_the_full_way(
    tmp_path: Path, fixed_clock: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state file git left conflict markers in is resolved by a build that matches every
    file, and so is the next one; after that the shortcut is taken again. Each gives what
    a full build gives."""
    quick = tmp_path / "quick" / "source"
    _write_corpus(quick)
    _build(quick, tmp_path / "quick" / "out.apkg")

    def conflict(source: Path) -> None:
        path = source / statefile.STATE_FILE_NAME
        header, first, *rest = path.read_bytes().splitlines(keepends=True)
        theirs = first.replace(b'"mod": 1800000000', b'"mod": 1800000050')
        assert theirs != first
        marked = [b"<<<<<<< HEAD\n", first, b"=======\n", theirs, b">>>>>>> other\n"]
        path.write_bytes(b"".join([header, *marked, *rest]))

    edits = [
        lambda source: (conflict(source), _replace("part05.md", "要点 5.3", "要点五点三")(source)),
        _replace("part06.md", "要点 6.1", "要点六点一"),
        _replace("part07.md", "要点 7.1", "要点七点一"),
    ]
    shortcuts = _rebuilds_equal_full_builds(tmp_path, fixed_clock, monkeypatch, edits)  # type: ignore[arg-type]
    assert shortcuts == [False, False, True]
    state = (quick / statefile.STATE_FILE_NAME).read_bytes()
    assert b"<<<<<<<" not in state and b'"mod": 1800000050' in state


def test_note_held_while_its_pair_was_broken_is_found_by_the_shortcut(
    tmp_path: Path, fixed_clock: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pair broken for a build keeps its note (held, not removed); when it is fixed, the
    rebuild gives it that note back, as a full build does, even if its question had been
    edited before (and so its note's GUID is not its question's)."""
    quick = tmp_path / "quick" / "source"
    _write_corpus(quick)
    _build(quick, tmp_path / "quick" / "out.apkg")

    def guid_of(question: str) -> str:
        notes = statefile.load_state(quick / statefile.STATE_FILE_NAME).notes.values()
        return next(r.guid for r in notes if r.question == question and not r.removed)

    first = guid_of("第2-1题：什么是第1种情况？")
    answer = "- 要点 2.1\n- 公式 $x_1^2$\n\n```python\nprint(2, 1)\n```\n"
    asked = "第2-1题：究竟什么是第1种情况？\n\n**答案：**\n\n"
    edits = [
        _replace("part02.md", "第2-1题：什么是", "第2-1题：究竟什么是"),
        _replace("part02.md", asked + answer, asked),  # no answer: an error, the note waits
        _replace("part02.md", asked, asked + answer),
    ]
    _rebuilds_equal_full_builds(tmp_path, fixed_clock, monkeypatch, edits)
    assert guid_of("第2-1题：究竟什么是第1种情况？") == first


def test_a_build_that_waited_for_another_starts_from_what_it_left(
    tmp_path: Path, fixed_clock: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two builds of one project (a watching process and one from the shell): the second
    waits for the first's lock, then reads the cache that build left, so it finds the work
    done rather than building everything again."""
    import contextlib

    from anki_genai import build as build_module

    source = tmp_path / "source"
    _write_corpus(source)
    package = tmp_path / "out.apkg"
    _build(source, package)
    real_lock = build_module._lock

    @contextlib.contextmanager
    def lock_after_another_build(*args: object) -> Iterator[object]:
        # While this build waited, another built an edit.
        _replace("part05.md", "要点 5.3", "要点五点三")(source)
        fixed_clock[0] += 100
        monkeypatch.setattr(build_module, "_lock", real_lock)
        _build(source, package)
        with real_lock(*args) as held:  # type: ignore[arg-type]
            yield held

    monkeypatch.setattr(build_module, "_lock", lock_after_another_build)
    taken = _shortcuts_taken(monkeypatch)
    result = build_module.build(build_module.BuildOptions(sources=(source,), output=package))
    assert taken == [True]  # the other build's shortcut
    assert not result.written  # and this one found everything done
