"""Test helpers: build decks with the real CLI, import them into a real Anki collection."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from anki_genai import identity
from anki_genai.cli import main

# A valid one-pair note, for tests that need sources which build.
GOOD = "# 网络\n\n## TCP\n\n**题目：** TCP 是什么？\n\n**答案：** 传输控制协议。\n"

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "source" / "生图AI-DALL·E2与Imagen.md"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Builds read the time from here, so two builds can be compared note for note."""
    now = [1_800_000_000.0]
    monkeypatch.setattr(identity.time, "time", lambda: now[0])
    return now


def run_cli(*args: str | Path) -> Result:
    """Run the anki-genai command line in-process, as a user would from a shell."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@dataclass(frozen=True)
class ImportLog:
    """How many notes one import added, updated, skipped as duplicates or left conflicting."""

    new: int
    updated: int
    duplicate: int
    conflicting: int


@dataclass(frozen=True)
class CardHistory:
    """The review state of a card, as Anki's scheduler sees it."""

    deck: str
    type: int
    queue: int
    due: int
    ivl: int
    reps: int
    revlog: int


class AnkiCollection:
    """A throwaway Anki collection, driven through the official `anki` package."""

    def __init__(self, path: Path) -> None:
        from anki.collection import Collection

        self.col = Collection(str(path))

    def import_package(self, package: Path) -> ImportLog:
        """Import with the options Anki's import dialog proposes on a fresh collection."""
        from anki.collection import ImportAnkiPackageOptions, ImportAnkiPackageRequest

        request = ImportAnkiPackageRequest(
            package_path=str(package), options=ImportAnkiPackageOptions()
        )
        log = self.col.import_anki_package(request).log
        return ImportLog(len(log.new), len(log.updated), len(log.duplicate), len(log.conflicting))

    def notes(self) -> dict[str, dict[str, str]]:
        """Return every note's fields by GUID."""
        result = {}
        for note_id in self.col.find_notes(""):
            note = self.col.get_note(note_id)
            result[note.guid] = dict(note.items())
        return result

    def note_by_guid(self, guid: str):  # type: ignore[no-untyped-def]
        (note_id,) = self.col.db.list("select id from notes where guid = ?", guid)
        return self.col.get_note(note_id)

    def tags(self, guid: str) -> list[str]:
        return list(self.note_by_guid(guid).tags)

    def card_count(self) -> int:
        return len(self.col.find_cards(""))

    def deck_names(self) -> set[str]:
        return {d.name for d in self.col.decks.all_names_and_ids()}

    def review_all(self) -> None:
        """Answer every card once with Good, as a user studying the deck would."""
        for card_id in self.col.find_cards(""):
            card = self.col.get_card(card_id)
            card.start_timer()
            self.col.sched.answerCard(card, 3)

    def history(self) -> dict[str, CardHistory]:
        """Return each note's card review state by GUID."""
        rows = self.col.db.all(
            "select n.guid, c.did, c.type, c.queue, c.due, c.ivl, c.reps,"
            " (select count() from revlog r where r.cid = c.id)"
            " from cards c join notes n on n.id = c.nid"
        )
        return {guid: CardHistory(self.col.decks.name(did), *rest) for guid, did, *rest in rows}

    def note_type(self) -> dict:  # type: ignore[type-arg]
        (model,) = [m for m in self.col.models.all() if m["name"].startswith("anki-genai")]
        return model

    def note_type_names(self) -> list[str]:
        return [m["name"] for m in self.col.models.all()]

    def close(self) -> None:
        self.col.close()


@pytest.fixture
def anki(tmp_path: Path) -> Iterator[AnkiCollection]:
    """A fresh, empty Anki collection. The `anki` package is in the test extra and
    required: a test that imports into Anki is never silently skipped."""
    (tmp_path / "anki").mkdir()
    collection = AnkiCollection(tmp_path / "anki" / "collection.anki2")
    yield collection
    collection.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's project folder whose source/ holds a copy of the reference document."""
    root = tmp_path / "project"
    (root / "source").mkdir(parents=True)
    shutil.copy(REFERENCE, root / "source" / REFERENCE.name)
    return root


def build_project(root: Path, *extra: str) -> Result:
    """Run `anki-genai build` on a project's source/ into its build/."""
    return run_cli("build", root / "source", "-o", root / "build", *extra)


def state_notes(path: Path) -> dict[str, dict[str, object]]:
    """The notes a state file records, by GUID, read as plain JSON: a header line and a
    line per note, or (version 1) one JSON document."""
    text = path.read_text(encoding="utf-8")
    first, _, rest = text.partition("\n")
    if first.rstrip().endswith('"notes": ['):
        entries = json.loads(text)["notes"]
    else:
        entries = [json.loads(line) for line in rest.split("\n") if line.strip()]
    return {str(entry["guid"]): entry for entry in entries}


def only_package(root: Path) -> Path:
    (package,) = (root / "build").glob("*.apkg")
    return package


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    folder = tmp_path / "source"
    folder.mkdir()
    (folder / "good.md").write_text(GOOD, encoding="utf-8")
    return folder
