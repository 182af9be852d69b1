"""Parallel, cached and patched builds give exactly the notes a clean serial build gives."""

from __future__ import annotations

import concurrent.futures
import importlib
import os
import re
import shutil
import sqlite3
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from anki_genai import build as build_module
from anki_genai import cache as cache_module
from anki_genai import statefile
from anki_genai import workers as workers_module
from anki_genai.apkg import deflate, inplace
from anki_genai.apkg.collection import CollectionWriter
from anki_genai.build import BuildMemo, BuildOptions
from anki_genai.cache import CACHE_FILE_NAME
from anki_genai.identity import Status
from tests.conftest import AnkiCollection, run_cli

FILES = 12


def _write_corpus(folder: Path) -> None:
    folder.mkdir(parents=True)
    for f in range(FILES):
        parts = [f"# 题库 {f}\n"]
        for n in range(8):
            parts.append(
                f"## {n + 1}. 小节\n\n**题目：** 第{f}-{n}题：什么是第{n}种情况？\n\n"
                f"**答案：**\n\n- 要点 {f}.{n}\n- 公式 $x_{n}^2$\n\n"
                f"```python\nprint({f}, {n})\n```\n"
            )
        (folder / f"part{f:02d}.md").write_text("\n".join(parts), encoding="utf-8")


def _edit_one_answer(source: Path) -> None:
    """Edit one answer in part05.md: the edited text reads 要点五点三."""
    edited = source / "part05.md"
    edited.write_text(edited.read_text(encoding="utf-8").replace("要点 5.3", "要点五点三"), "utf-8")


def _notes(package: Path, collection_dir: Path) -> dict[str, tuple[tuple[str, ...], int, str, str]]:
    """What Anki holds after importing `package`: fields, mod, tags and deck by GUID."""
    collection_dir.mkdir()
    anki = AnkiCollection(collection_dir / "collection.anki2")
    try:
        anki.import_package(package)
        result = {}
        for note_id in anki.col.find_notes(""):
            note = anki.col.get_note(note_id)
            (card,) = note.cards()
            deck = anki.col.decks.name(card.did)
            result[note.guid] = (tuple(note.fields), note.mod, " ".join(note.tags), deck)
        return result
    finally:
        anki.close()


def _assert_anki_gets_the_edit(package: Path, collection_dir: Path) -> None:
    """Imported into Anki, `package` holds every note, and the one edited answer once."""
    notes = _notes(package, collection_dir)
    assert len(notes) == FILES * 8
    assert sum("要点五点三" in fields[1] for fields, *_ in notes.values()) == 1


def _clean_build_notes(source: Path, tmp_path: Path) -> dict[str, Any]:
    """What Anki holds after importing a build from a copy of `source` (its state included)
    with no cache: the notes every faster path must reproduce."""
    shutil.copytree(source, tmp_path / "clean" / "source")
    _build(tmp_path / "clean" / "source", tmp_path / "clean" / "out.apkg")
    return _notes(tmp_path / "clean" / "out.apkg", tmp_path / "anki-clean")


@pytest.fixture
def fresh_collections(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the packages written from a new collection rather than by patching the kept one."""
    written: list[int] = []
    real_new_collection = CollectionWriter.new_collection

    def spy(*args: object) -> object:
        written.append(1)
        return real_new_collection(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(CollectionWriter, "new_collection", spy)
    return written


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files that builds parse, in order (in this process: no worker processes)."""
    files: list[Path] = []
    real_parse = workers_module.parse_markdown

    def spy(text: str, path: Path, *args: object) -> object:
        files.append(path)
        return real_parse(text, path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(workers_module, "parse_markdown", spy)
    return files


def _build(source: Path, output: Path, workers: int | None = None) -> None:
    """Build as the command line does, or on exactly `workers` processes."""
    if workers is None:
        result = run_cli("build", source, "-o", output, "-q")
        assert result.exit_code == 0, result.output
    else:
        build_module.build(BuildOptions(sources=(source,), output=output), workers=workers)


def test_parallel_build_equals_serial_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixed_clock: list[float]
) -> None:
    """Spreading the files over processes changes nothing in the notes Anki receives."""
    for name in ("serial", "parallel"):
        _write_corpus(tmp_path / name / "source")
    _build(tmp_path / "serial" / "source", tmp_path / "serial" / "out.apkg", workers=1)
    workers = []
    real_pool = concurrent.futures.ProcessPoolExecutor

    def counting_pool(*args: object, **kwargs: object) -> object:
        workers.append(args[0])
        return real_pool(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", counting_pool)
    _build(tmp_path / "parallel" / "source", tmp_path / "parallel" / "out.apkg", workers=2)

    assert workers and workers[0] >= 2, "the parallel build did not use worker processes"
    serial = _notes(tmp_path / "serial" / "out.apkg", tmp_path / "anki-serial")
    parallel = _notes(tmp_path / "parallel" / "out.apkg", tmp_path / "anki-parallel")
    assert len(serial) == FILES * 8
    assert parallel == serial


def test_cached_rebuild_equals_clean_build(
    tmp_path: Path, fixed_clock: list[float], parsed: list[Path]
) -> None:
    """A rebuild that reuses cached files gives the notes a build from scratch gives."""
    source = tmp_path / "cached" / "source"
    _write_corpus(source)
    _build(source, tmp_path / "cached" / "out.apkg")
    _edit_one_answer(source)
    # The clean build starts from the same sources and state, with no cache.
    shutil.copytree(source, tmp_path / "clean" / "source")
    parsed.clear()
    fixed_clock[0] += 100
    _build(source, tmp_path / "cached" / "out.apkg")
    assert [p.name for p in parsed] == ["part05.md"]
    _build(tmp_path / "clean" / "source", tmp_path / "clean" / "out.apkg")
    assert len(parsed) == 1 + FILES

    cached = _notes(tmp_path / "cached" / "out.apkg", tmp_path / "anki-cached")
    clean = _notes(tmp_path / "clean" / "out.apkg", tmp_path / "anki-clean")
    assert cached == clean
    assert sum(1 for _, mod, _, _ in cached.values() if mod == int(fixed_clock[0])) == 1


@pytest.mark.parametrize("module_name", ["markdown_it", "mdit_py_plugins", "pygments", "nh3"])
def test_upgrading_a_renderer_library_rebuilds_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module_name: str, parsed: list[Path]
) -> None:
    """A new version of a library that shapes the HTML may render differently: no cached
    file is trusted after an upgrade."""
    source = tmp_path / "source"
    _write_corpus(source)
    _build(source, tmp_path / "out.apkg")
    parsed.clear()
    _build(source, tmp_path / "out.apkg")
    assert parsed == []
    monkeypatch.setattr(importlib.import_module(module_name), "__version__", "999.0", raising=False)
    _build(source, tmp_path / "out.apkg")
    assert len(parsed) == FILES


def test_cache_changed_under_a_running_build_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cards keep their HTML in the cache until packaging. Should that cache change
    meanwhile (another build into the same folder), the build stops with what to do,
    and the last package and state stay as they were."""
    source = tmp_path / "source"
    _write_corpus(source)
    package = tmp_path / "out" / "deck.apkg"
    _build(source, package)
    before = package.read_bytes(), (source / statefile.STATE_FILE_NAME).read_bytes()
    real_plan = build_module.plan_notes

    def plan_then_another_build(*args: Any) -> Any:
        planned = real_plan(*args)
        for entry in (tmp_path / "out" / CACHE_FILE_NAME / "files").iterdir():
            entry.write_bytes(entry.read_bytes() + b"another build's")  # no longer checks out
        return planned

    monkeypatch.setattr(build_module, "plan_notes", plan_then_another_build)
    (tmp_path / "out" / CACHE_FILE_NAME / "collection" / "collection.index").unlink()
    _edit_one_answer(source)
    result = run_cli("build", source, "-o", package)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {tmp_path / 'out' / CACHE_FILE_NAME}: the cache changed while this build "
        "ran (another build into the same folder?); build again\n"
    )
    assert (package.read_bytes(), (source / statefile.STATE_FILE_NAME).read_bytes()) == before
    assert list(package.parent.glob(".*.tmp")) == []


def test_watching_process_rebuilds_from_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixed_clock: list[float]
) -> None:
    """`build --watch` keeps every file's cards and the state between builds: after an edit
    it reads neither from disk again, and Anki gets what a clean build gives it."""
    source = tmp_path / "watched" / "source"
    _write_corpus(source)
    options = BuildOptions(sources=(source,), output=tmp_path / "watched" / "out.apkg")
    memo = BuildMemo()
    build_module.build(options, memo=memo)
    reads: list[Path] = []
    real_read_checked = cache_module.read_checked
    real_load_state = statefile.load_state

    def reading_entry(path: Path) -> object:
        reads.append(path)
        return real_read_checked(path)

    def loading_state(path: Path, known: Any = None) -> statefile.State:
        reads.append(path)
        return real_load_state(path, known)

    monkeypatch.setattr(cache_module, "read_checked", reading_entry)
    monkeypatch.setattr(statefile, "load_state", loading_state)
    _edit_one_answer(source)
    fixed_clock[0] += 100
    build_module.build(options, memo=memo)
    # Only the edited file's entry, where another build might have left its new cards.
    assert [p.parent.name for p in reads] == ["files"]

    watched = _notes(tmp_path / "watched" / "out.apkg", tmp_path / "anki-watched")
    assert watched == _clean_build_notes(source, tmp_path)


def test_watching_process_reads_a_state_changed_behind_its_back(tmp_path: Path) -> None:
    """If the state file changes between two builds of a watching process (forget-removed
    in another terminal, a git checkout), the next build reads it again."""
    source = tmp_path / "source"
    _write_corpus(source)
    package = tmp_path / "out.apkg"
    options = BuildOptions(sources=(source,), output=package)
    memo = BuildMemo()
    build_module.build(options, memo=memo)
    (source / "part04.md").unlink()
    removed = build_module.build(options, memo=memo)
    assert removed.counts[Status.REMOVED] == 8
    assert run_cli("forget-removed", source).exit_code == 0
    _edit_one_answer(source)
    build_module.build(options, memo=memo)
    with zipfile.ZipFile(package) as zf, tempfile.TemporaryDirectory() as unpacked:
        db = sqlite3.connect(zf.extract("collection.anki2", unpacked))
        (notes,) = db.execute("SELECT count(*) FROM notes").fetchone()
        db.close()
    assert notes == (FILES - 1) * 8  # the forgotten tombstones are no longer sent


def test_watching_process_notices_an_edited_image(tmp_path: Path) -> None:
    """An image saved between two builds of a watching process changes its note."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "a.png").write_bytes(b"\x89PNG\r\n\x1a\none")
    (source / "n.md").write_text("**题目：** 图？\n\n**答案：** ![图](a.png)\n", encoding="utf-8")
    options = BuildOptions(sources=(source,), output=tmp_path / "out.apkg")
    memo = BuildMemo()
    build_module.build(options, memo=memo)
    (source / "a.png").write_bytes(b"\x89PNG\r\n\x1a\ntwo")
    assert build_module.build(options, memo=memo).counts[Status.CHANGED] == 1


def test_unchanged_rebuild_leaves_the_package_alone(tmp_path: Path) -> None:
    """Rebuilding unchanged sources says so and does not rewrite the package or state."""
    source = tmp_path / "source"
    _write_corpus(source)
    package = tmp_path / "out" / "deck.apkg"
    _build(source, package)
    before = (package.stat().st_mtime_ns, (source / statefile.STATE_FILE_NAME).stat().st_mtime_ns)
    result = run_cli("build", source, "-o", package)
    assert result.stdout.startswith(f"Up to date: {package}: {FILES} files, {FILES * 8} notes")
    after = (package.stat().st_mtime_ns, (source / statefile.STATE_FILE_NAME).stat().st_mtime_ns)
    assert after == before


def test_patched_package_equals_clean_build(
    tmp_path: Path, fixed_clock: list[float], fresh_collections: list[int]
) -> None:
    """Rebuilds that patch the kept collection give the notes a build from scratch gives."""
    source = tmp_path / "patched" / "source"
    _write_corpus(source)
    _build(source, tmp_path / "patched" / "out.apkg")
    fresh_collections.clear()  # the first build has nothing to patch
    edits = [
        ("part01.md", "要点 1.2", "要点一点二"),  # an answer edited
        ("part02.md", "# 题库 2", "# 第二题库"),  # a file moved to another deck
        ("part03.md", "**题目：** 第3-4题", "**题目：** 第3-4题补充"),  # a question retitled
    ]
    for round_, (name, old, new) in enumerate(edits):
        path = source / name
        path.write_text(path.read_text(encoding="utf-8").replace(old, new), "utf-8")
        if round_ == 1:
            (source / "part04.md").unlink()  # eight notes removed
            (source / "part99.md").write_text("**题目：** 新题？\n\n**答案：** 新答。\n", "utf-8")
        fixed_clock[0] += 100
        _build(source, tmp_path / "patched" / "out.apkg")
    assert fresh_collections == [], "a rebuild wrote a new collection instead of patching"
    patched = _notes(tmp_path / "patched" / "out.apkg", tmp_path / "anki-patched")

    clean = _clean_build_notes(source, tmp_path)
    assert fresh_collections == [1]
    assert patched == clean
    assert len(clean) == FILES * 8 + 1  # the removed notes stay, tagged, until forgotten
    assert {deck for *_, deck in clean.values()} >= {"第二题库", "题库 1"}
    assert sum("anki-genai::removed" in tags for _, _, tags, _ in clean.values()) == 8

    # Forgotten tombstones leave the patched package too.
    assert run_cli("forget-removed", source).exit_code == 0
    fixed_clock[0] += 100
    _build(source, tmp_path / "patched" / "out.apkg")
    assert fresh_collections == [1]
    forgotten = _notes(tmp_path / "patched" / "out.apkg", tmp_path / "anki-forgotten")
    assert forgotten == {guid: note for guid, note in clean.items() if "removed" not in note[2]}


def test_rebuild_copies_the_unchanged_part_of_the_deflated_collection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixed_clock: list[float]
) -> None:
    """After a small edit, most of the collection's deflated bytes are copied from the last
    package rather than deflated again, and Anki still gets what a clean build gives it."""
    monkeypatch.setattr(deflate, "SEGMENT_SIZE", 4096)  # so that this small deck spans many
    source = tmp_path / "reused" / "source"
    _write_corpus(source)
    _build(source, tmp_path / "reused" / "out.apkg")
    deflated: list[bytes] = []
    real_deflate = deflate.deflate_segment

    def counting_deflate(data: bytes, key: bytes) -> tuple[bytes, bytes]:
        deflated.append(key)
        return real_deflate(data, key)

    monkeypatch.setattr(deflate, "deflate_segment", counting_deflate)
    _edit_one_answer(source)
    fixed_clock[0] += 100
    _build(source, tmp_path / "reused" / "out.apkg")
    kept = next((tmp_path / "reused" / CACHE_FILE_NAME).rglob("collection.anki2"))
    segments = -(-kept.stat().st_size // 4096)
    assert 0 < len(deflated) < segments / 2

    reused = _notes(tmp_path / "reused" / "out.apkg", tmp_path / "anki-reused")
    assert reused == _clean_build_notes(source, tmp_path)


def test_kept_segments_damaged_in_place_are_not_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kept deflated segments that rotted without their size or time changing are deflated
    again: the package never carries bytes that do not match its collection."""
    monkeypatch.setattr(deflate, "SEGMENT_SIZE", 4096)
    source = tmp_path / "source"
    _write_corpus(source)
    package = tmp_path / "out" / "deck.apkg"
    _build(source, package)
    kept = next((tmp_path / "out" / CACHE_FILE_NAME).rglob("collection.deflate"))
    times = kept.stat()
    data = bytearray(kept.read_bytes())
    for offset in range(0, len(data), 997):
        data[offset] ^= 0x55
    kept.write_bytes(bytes(data))
    os.utime(kept, ns=(times.st_atime_ns, times.st_mtime_ns))
    _edit_one_answer(source)
    _build(source, package)
    with zipfile.ZipFile(package) as zf:
        assert zf.testzip() is None
    _assert_anki_gets_the_edit(package, tmp_path / "anki")


def _flip_middle_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x55]) + data[middle + 1 :]


@pytest.mark.parametrize(
    "damage",
    [
        lambda _: b"garbage {",
        lambda _: b'{"environment": 1}',
        lambda _: b"",
        _flip_middle_byte,
        lambda data: data[: len(data) // 2],
    ],
    ids=["junk", "foreign", "empty", "bit-flip", "truncated"],
)
def test_damaged_cache_is_rebuilt_not_an_error(
    tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    """A damaged cache, kept collection included, only costs a full rebuild."""
    source = tmp_path / "source"
    _write_corpus(source)
    package = tmp_path / "out" / "deck.apkg"
    _build(source, package)
    parts = [p for p in (tmp_path / "out" / CACHE_FILE_NAME).rglob("*") if p.is_file()]
    # an entry per source file, the index, the build record, the kept collection, its index
    # and its segments
    assert len(parts) == FILES + 5
    for part in parts:
        part.write_bytes(damage(part.read_bytes()))
    package.unlink()
    _edit_one_answer(source)
    result = run_cli("build", source, "-o", package)
    assert result.exit_code == 0
    assert "0 new, 1 changed, 95 unchanged" in result.stdout
    _assert_anki_gets_the_edit(package, tmp_path / "anki")


def test_cache_index_with_an_impossible_number_is_rebuilt(tmp_path: Path) -> None:
    """The cache's index is plain JSON: a damaged digit that makes a number infinite (as a
    flipped byte can, "10" becoming "1e") is a damaged index, not a traceback."""
    source = tmp_path / "source"
    _write_corpus(source)
    package = tmp_path / "out" / "deck.apkg"
    _build(source, package)
    index = next((tmp_path / "out" / CACHE_FILE_NAME).rglob("index.json"))
    text = index.read_text(encoding="utf-8")
    damaged = re.sub(r"(\[\[\d+, )(\d+)", r"\g<1>1e999", text, count=1)
    assert damaged != text
    index.write_text(damaged, encoding="utf-8")
    _edit_one_answer(source)
    result = run_cli("build", source, "-o", package)
    assert result.exit_code == 0, result.output
    assert "0 new, 1 changed, 95 unchanged" in result.stdout
    _assert_anki_gets_the_edit(package, tmp_path / "anki")


def test_unchanged_rebuild_repeats_warnings_and_notices_image_edits(tmp_path: Path) -> None:
    """An up-to-date rebuild still shows the sources' warnings; an edited image is a change."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "a.png").write_bytes(b"\x89PNG\r\n\x1a\none")
    (source / "n.md").write_text(
        "**题目：** 图？\n\n**答案：** ![图](a.png) ![缺](missing.png)\n", encoding="utf-8"
    )
    package = tmp_path / "out.apkg"
    first = run_cli("build", source, "-o", package)
    second = run_cli("build", source, "-o", package)
    assert second.stdout.startswith("Up to date:")
    assert second.stderr == first.stderr != ""
    (source / "a.png").write_bytes(b"\x89PNG\r\n\x1a\ntwo")
    third = run_cli("build", source, "-o", package)
    assert third.stdout.startswith("Wrote") and "1 changed" in third.stdout


def test_cache_forgets_deleted_files(tmp_path: Path) -> None:
    """The cache keeps an entry per source file, and drops the entry of a deleted file."""
    source = tmp_path / "source"
    _write_corpus(source)
    _build(source, tmp_path / "out" / "deck.apkg")
    (source / "part03.md").unlink()
    _build(source, tmp_path / "out" / "deck.apkg")
    entries = list((tmp_path / "out" / CACHE_FILE_NAME / "files").iterdir())
    assert len(entries) == FILES - 1


def test_kept_collection_replaced_during_a_build_is_not_patched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_collections: list[int]
) -> None:
    """If another build into the same folder swaps the kept collection while this one copies
    it, this build writes a whole new collection rather than patch one it does not know."""
    source = tmp_path / "source"
    _write_corpus(source)
    package = tmp_path / "out" / "deck.apkg"
    _build(source, package)
    kept = next((tmp_path / "out" / CACHE_FILE_NAME).rglob("collection.anki2"))
    fresh_collections.clear()  # the first build has nothing to patch
    real_copyfile = shutil.copyfile

    def copy_then_swap(src: Path, dst: Path) -> object:
        copied = real_copyfile(src, dst)
        os.utime(kept, ns=(1, 1))  # another build's collection now sits there
        return copied

    monkeypatch.setattr(shutil, "copyfile", copy_then_swap)
    # A rebuild patches the kept collection where it lies when it can: here, the way that
    # copies it first.
    monkeypatch.setattr(inplace, "write_patched", lambda *args: False)
    _edit_one_answer(source)
    _build(source, package)
    assert fresh_collections == [1]
    _assert_anki_gets_the_edit(package, tmp_path / "anki")


def test_edited_away_text_leaves_the_patched_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_collections: list[int]
) -> None:
    """Text edited out of the sources is gone from the package file itself, not only from
    its notes: a patched collection must not keep it in its free space."""
    real_connect = sqlite3.connect

    def connect_like_most_platforms(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db = real_connect(*args, **kwargs)
        db.execute("PRAGMA secure_delete = OFF")  # SQLite's default; Debian builds turn it on
        return db

    monkeypatch.setattr(sqlite3, "connect", connect_like_most_platforms)
    source = tmp_path / "source"
    _write_corpus(source)
    edited = source / "part05.md"
    edited.write_text(
        edited.read_text(encoding="utf-8").replace("要点 5.3", "机密口令甲乙丙"), "utf-8"
    )
    package = tmp_path / "out" / "deck.apkg"
    _build(source, package)
    fresh_collections.clear()
    edited.write_text(edited.read_text(encoding="utf-8").replace("机密口令甲乙丙", "已删"), "utf-8")
    _build(source, package)
    assert fresh_collections == []  # patched, not rewritten
    with zipfile.ZipFile(package) as zf:
        collection = zf.read("collection.anki2")
    assert "已删".encode() in collection
    assert "机密口令甲乙丙".encode() not in collection


def test_sources_are_found_in_path_order_and_each_once(tmp_path: Path) -> None:
    """A folder's files come before a sibling file whose name extends the folder's (path
    order, part by part); a file reached through a link is read once; hidden and build
    folders are passed over."""
    from anki_genai.walk import find_sources

    for relative in ("a/b.md", "a-b.md", "a.md", "a/c/d.md", ".hidden/x.md", "build/y.md"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("**题目：** 问？\n\n**答案：** 答。\n", encoding="utf-8")
    (tmp_path / "z.md").symlink_to(tmp_path / "a.md")
    (tmp_path / "linked").symlink_to(tmp_path / "a", target_is_directory=True)

    found, skipped = find_sources([tmp_path])

    relatives = [path.relative_to(tmp_path).as_posix() for path in found]
    assert relatives == ["a/b.md", "a/c/d.md", "a-b.md", "a.md"]
    assert skipped == []


@pytest.mark.parametrize("seed", range(5))
def test_kept_note_index_changes_as_a_mapping_would(seed: int) -> None:
    """The kept collection's note index, changed a few notes at a time and written and read
    back, says for every GUID what a plain mapping changed the same way says."""
    import random

    from anki_genai.apkg.kept import NoteIndex

    rng = random.Random(seed)
    # GUIDs as the tool makes them, and odd ones an explicit id can give (the separator too).
    pool = [f"g{n:04d}" for n in range(300)] + ["a\x1fb", "甲", ""]
    lone = NoteIndex.of({"": b"x" * 12}, {"": 7})  # one note, its GUID empty
    lone_read = NoteIndex.from_data(lone.to_data())
    assert lone_read is not None and dict(lone_read.items()) == {"": b"x" * 12}
    held = {g: rng.randbytes(12) for g in rng.sample(pool, 150)}
    ids = {g: rng.randrange(1, 1 << 50) for g in held}
    index = NoteIndex.of(held, ids)
    for step in range(20):
        gone = set(rng.sample(sorted(held), min(5, len(held))))
        # A few notes at a time, as after an edit, and many, as a full build changes them.
        many = 280 if step % 5 == 4 else 5
        added = {g: (rng.randbytes(12), rng.randrange(1, 1 << 50)) for g in rng.sample(pool, many)}
        index = index.changed(gone, added)
        for guid in gone:
            held.pop(guid)
            ids.pop(guid)
        for guid, (holds, note_id) in added.items():
            held[guid], ids[guid] = holds, note_id
        read_back = NoteIndex.from_data(index.to_data())
        assert read_back is not None
        for current in (index, read_back):
            assert len(current) == len(held)
            assert dict(current.items()) == held
            for guid in pool:
                assert (guid in current) == (guid in held)
                assert current.held_of(guid) == held.get(guid)
                if guid in ids:
                    assert current.id_of(guid) == ids[guid]
