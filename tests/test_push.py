"""`push`: a build brought into a closed collection, deleting and moving what import cannot."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from tests.sync_profile import DECK, Holder, Profile, Review

OTHER = """\
# 其他

## 1. 概念

**题目：** 什么是扩散模型？

**答案：** 一种逐步去噪生成图像的模型。
"""
DELETED = "你认为生图AI在未来会有怎样的发展趋势？"
MOVED = "请描述Imagen生成图像的基本过程。"


def _cut_section(text: str, number: int) -> tuple[str, str]:
    """Remove section `### N.` (heading to the next `###`) from `text`; return both parts."""
    match = re.search(rf"^### {number}\..*?(?=^### )", text, re.MULTILINE | re.DOTALL)
    assert match is not None
    return text[: match.start()] + text[match.end() :], match.group(0)


@pytest.fixture
def profile(tmp_path: Path) -> Profile:
    """Two files in two decks, pushed into an empty profile, then studied."""
    profile = Profile(tmp_path)
    (profile.source / "other.md").write_text(OTHER, encoding="utf-8")
    profile.close()
    first = profile.cli("push", profile.collection_path)
    assert first.exit_code == 0, first.output
    profile.build_import_review()  # the import finds nothing new; cards are studied
    profile.close()
    return profile


def _delete_one_pair_and_move_another(profile: Profile) -> None:
    text = profile.reference.read_text(encoding="utf-8")
    text, _deleted = _cut_section(text, 6)
    text, moved = _cut_section(text, 3)
    profile.reference.write_text(text, encoding="utf-8")
    other = profile.source / "other.md"
    other.write_text(other.read_text(encoding="utf-8") + "\n" + moved, encoding="utf-8")


def test_push_deletes_a_removed_pair_and_moves_a_moved_one_keeping_everyones_history(
    profile: Profile,
) -> None:
    """The removed note is gone for real, the moved card is in its new deck with its new
    tag, a backup lies beside the collection, and no other card's history changes."""
    guids = {q: profile.guid_of(q) for q in (DELETED, MOVED)}
    reviews = profile.reviews()
    schema = profile.schema()
    profile.close()
    _delete_one_pair_and_move_another(profile)

    result = profile.cli("push", profile.collection_path)
    assert result.exit_code == 0, result.output
    named = re.search(
        rf"^Backed up {re.escape(str(profile.collection_path))} to (.*)$",
        result.stdout,
        re.MULTILINE,
    )
    assert named is not None
    backup = Path(named.group(1))
    assert backup.parent == profile.folder
    with sqlite3.connect(backup) as db:  # the collection as it was: the note still there
        assert db.execute(
            "select count() from notes where guid = ?", (guids[DELETED],)
        ).fetchone() == (1,)
    assert f"deleted      {DELETED}\n" in result.stdout
    assert f": {MOVED}: {DECK} -> 其他\n" in result.stdout
    assert "1 note deleted, 1 note moved" in result.stderr
    assert "Forgot 1 removed note in the state file" in result.stderr

    notes = profile.col.notes()
    assert guids[DELETED] not in notes
    assert guids[MOVED] in notes
    after = profile.reviews()
    assert after[guids[MOVED]].deck == "其他"
    assert profile.col.tags(guids[MOVED]) == ["other"]
    assert profile.field(guids[MOVED], "Source").startswith("other.md:")
    moved_before = reviews.pop(guids[MOVED])
    del reviews[guids[DELETED]]
    assert {g: r for g, r in after.items() if g != guids[MOVED]} == reviews
    moved_after = after[guids[MOVED]]
    assert (moved_after.reps, moved_after.revlog, moved_after.ivl, moved_after.due) == (
        moved_before.reps,
        moved_before.revlog,
        moved_before.ivl,
        moved_before.due,
    )
    assert guids[DELETED] not in profile.state_file.read_text(encoding="utf-8")
    profile.close()
    assert profile.schema() == schema  # same version, and no full sync needed


def test_push_moves_the_cards_of_a_renamed_deck_and_keeps_an_edit_made_in_anki(
    profile: Profile,
) -> None:
    """A file given another deck: its cards move there; its notes, edited in Anki or not,
    are not rewritten, so the edit stays and no review history changes."""
    guid = profile.guid_of(MOVED)
    profile.edit_in_anki(guid, "Answer", "文本编码", "文本的编码")
    edited = profile.field(guid, "Answer")
    mods = {g: profile.col.note_by_guid(g).mod for g in profile.col.notes()}
    reviews = profile.reviews()
    profile.close()
    text = profile.reference.read_text(encoding="utf-8")
    profile.reference.write_text("---\ndeck: 面试::生图\n---\n" + text, encoding="utf-8")

    result = profile.cli("push", profile.collection_path)
    assert result.exit_code == 0, result.output
    assert "0 notes deleted, 30 notes moved, 0 notes retagged" in result.stderr
    assert profile.field(guid, "Answer") == edited
    assert {g: profile.col.note_by_guid(g).mod for g in profile.col.notes()} == mods
    after = profile.reviews()
    for g, review in reviews.items():
        deck = "其他" if review.deck == "其他" else "面试::生图"
        assert after[g] == Review(review.reps, review.revlog, review.ivl, review.due, deck)


def test_push_retags_a_moved_pair_the_import_leaves_alone_and_keeps_its_edit_made_in_anki(
    profile: Profile,
) -> None:
    """A note moved to another file whose edit in Anki is newer than the build (so the
    import keeps it, as it will for every move once moves keep their mod) gets its new
    file's tag, Context and Source and its new deck; its edited answer stays."""
    guid = profile.guid_of(MOVED)
    profile.edit_in_anki(guid, "Answer", "文本编码", "文本的编码")
    # The phone's clock runs an hour ahead: its edit is newer than any build made now.
    profile.col.col.db.execute("update notes set mod = mod + 3600 where guid = ?", guid)
    edited = profile.field(guid, "Answer")
    reviews = profile.reviews()
    profile.close()
    text = profile.reference.read_text(encoding="utf-8")
    text, moved = _cut_section(text, 3)
    profile.reference.write_text(text, encoding="utf-8")
    other = profile.source / "other.md"
    other.write_text(
        other.read_text(encoding="utf-8") + "\n## 2. 模型\n\n" + moved.split("\n", 1)[1]
    )

    result = profile.cli("push", profile.collection_path)
    assert result.exit_code == 0, result.output
    assert f"retagged     {other}:" in result.stdout
    assert profile.field(guid, "Answer") == edited
    assert profile.col.tags(guid) == ["other"]
    assert profile.field(guid, "Context") == "模型"
    assert profile.field(guid, "Source").startswith("other.md:")
    assert profile.reviews()[guid] == replace(reviews[guid], deck="其他")


def test_push_dry_run_prints_the_plan_and_changes_nothing(profile: Profile) -> None:
    """--dry-run names what would be deleted and moved; collection, sources, state and
    package stay byte for byte as they were, and no backup is made."""
    _delete_one_pair_and_move_another(profile)
    collection, sources = profile.fingerprint(), profile.sources_bytes()
    packages = {p: p.read_bytes() for p in profile.build_folder.glob("*.apkg")}
    result = profile.cli("push", profile.collection_path, "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"would delete {DELETED}\n" in result.stdout
    assert f": {MOVED}: {DECK} -> 其他\n" in result.stdout
    assert "Dry run, nothing changed: 1 note deleted, 1 note moved" in result.stderr
    assert profile.fingerprint() == collection
    assert profile.sources_bytes() == sources
    assert {p: p.read_bytes() for p in profile.build_folder.glob("*.apkg")} == packages


def test_push_quiet_prints_nothing_and_verbose_adds_the_time(profile: Profile) -> None:
    """-q and -v work on push as on every command; both at once is a usage error."""
    _delete_one_pair_and_move_another(profile)
    quiet = profile.cli("push", profile.collection_path, "--dry-run", "-q")
    assert quiet.exit_code == 0, quiet.output
    assert (quiet.stdout, quiet.stderr) == ("", "")
    verbose = profile.cli("push", profile.collection_path, "--dry-run", "-v")
    assert verbose.exit_code == 0, verbose.output
    assert f"would delete {DELETED}\n" in verbose.stdout
    assert verbose.stderr.splitlines()[-1].startswith("Done in ")
    assert profile.cli("push", profile.collection_path, "-q", "-v").exit_code == 2


@pytest.mark.parametrize("how", ["anki", "sqlite"])
def test_push_to_a_collection_open_in_another_process_says_close_anki_first(
    profile: Profile, how: str
) -> None:
    """While the collection is open elsewhere, push builds nothing and changes nothing."""
    _delete_one_pair_and_move_another(profile)
    holder = Holder(profile.collection_path, how)
    try:
        collection, sources = profile.fingerprint(), profile.sources_bytes()
        result = profile.cli("push", profile.collection_path)
        assert result.exit_code == 1
        assert result.stderr == (
            f"Error: {profile.collection_path}: the collection is open in Anki (or another "
            "program); close Anki first, then run this again\n"
        )
        assert profile.fingerprint() == collection
        assert profile.sources_bytes() == sources
    finally:
        holder.stop()


def test_push_leaves_a_legacy_collection_at_its_schema(tmp_path: Path) -> None:
    """A collection at the old schema 11 is still at schema 11 after a push."""
    profile = Profile(tmp_path)
    profile.col.col.close(downgrade=True)
    profile.anki = None
    assert profile.schema()[0] == 11
    result = profile.cli("push", profile.collection_path)
    assert result.exit_code == 0, result.output
    assert profile.schema()[0] == 11
    assert len(profile.col.notes()) == 30


def test_push_refuses_a_collection_newer_than_the_installed_anki(tmp_path: Path) -> None:
    """A schema the installed anki package does not know is refused before it is opened."""
    profile = Profile(tmp_path)
    profile.close()
    db = sqlite3.connect(profile.collection_path)
    db.execute("update col set ver = 99")
    db.commit()
    db.close()
    before = profile.fingerprint()
    result = profile.cli("push", profile.collection_path)
    assert result.exit_code == 1
    assert "the collection has schema 99, newer than the installed anki package supports" in (
        result.stderr
    )
    assert profile.fingerprint() == before
    assert not profile.build_folder.exists()
