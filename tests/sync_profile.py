"""A user's project and Anki profile for the pull and push tests: the real anki package, a
temporary profile folder, no GUI."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REFERENCE, AnkiCollection, CardHistory, run_cli

DECK = "生图AI：DALL·E 2与Imagen"


@dataclass(frozen=True)
class Review:
    """What Anki's scheduler remembers of one card."""

    reps: int
    revlog: int
    ivl: int
    due: int
    deck: str

    @classmethod
    def of(cls, history: CardHistory) -> Review:
        return cls(history.reps, history.revlog, history.ivl, history.due, history.deck)


class Profile:
    """A project (source/, build/) and an Anki profile folder holding collection.anki2."""

    def __init__(self, root: Path, files: dict[str, str] | None = None) -> None:
        pytest.importorskip("anki", reason="the official anki package is a test extra")
        self.root = root
        self.source = root / "project" / "source"
        self.build_folder = root / "project" / "build"
        self.source.mkdir(parents=True)
        if files is None:
            shutil.copy(REFERENCE, self.source / REFERENCE.name)
        else:
            for name, text in files.items():
                (self.source / name).write_text(text, encoding="utf-8")
        self.folder = root / "profile"
        self.folder.mkdir()
        self.collection_path = self.folder / "collection.anki2"
        self.anki: AnkiCollection | None = AnkiCollection(self.collection_path)

    # --- the project ---

    @property
    def reference(self) -> Path:
        return self.source / REFERENCE.name

    @property
    def state_file(self) -> Path:
        return self.source / "anki-genai-state.json"

    def build(self) -> Path:
        result = run_cli("build", self.source, "-o", self.build_folder)
        assert result.exit_code == 0, result.output
        (package,) = self.build_folder.glob("*.apkg")
        return package

    def cli(self, command: str, target: Path, *extra: str):  # type: ignore[no-untyped-def]
        return run_cli(command, target, self.source, "-o", self.build_folder, *extra)

    def sources_bytes(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.source.iterdir()) if p.is_file()}

    # --- the collection ---

    @property
    def col(self) -> AnkiCollection:
        if self.anki is None:
            self.anki = AnkiCollection(self.collection_path)
        return self.anki

    def close(self) -> None:
        """Quit Anki: the collection is closed, as it is for push and for a profile's pull."""
        if self.anki is not None:
            self.anki.close()
            self.anki = None

    def build_import_review(self) -> None:
        """Build, import, then study: answer every other card, as a user does."""
        self.col.import_package(self.build())
        for number, card_id in enumerate(self.col.col.find_cards("")):
            if number % 2 == 0:
                card = self.col.col.get_card(card_id)
                card.start_timer()
                self.col.col.sched.answerCard(card, 3)

    def guid_of(self, question_part: str) -> str:
        (guid,) = [g for g, f in self.col.notes().items() if question_part in f["Question"]]
        return guid

    def edit_in_anki(self, guid: str, field: str, old: str, new: str) -> None:
        """Change a field as the phone's editor saves it: the field's HTML, a new mod."""
        note = self.col.note_by_guid(guid)
        assert note[field].count(old) == 1, note[field]
        note[field] = note[field].replace(old, new)
        self.col.col.update_note(note)

    def field(self, guid: str, name: str) -> str:
        return str(self.col.note_by_guid(guid)[name])

    def reviews(self) -> dict[str, Review]:
        return {guid: Review.of(h) for guid, h in self.col.history().items()}

    def export_apkg(self, path: Path) -> Path:
        """Export the whole collection as Anki's File > Export does (.apkg, with scheduling)."""
        from anki.collection import ExportAnkiPackageOptions

        options = ExportAnkiPackageOptions(
            with_scheduling=True, with_deck_configs=True, with_media=True, legacy=False
        )
        self.col.col.export_anki_package(out_path=str(path), options=options, limit=None)
        return path

    def export_colpkg(self, path: Path) -> Path:
        """Export as a collection package (.colpkg), as AnkiDroid's full backup does."""
        self.col.col.export_collection_package(str(path), include_media=True, legacy=False)
        self.anki = None  # exporting a whole collection closes it
        return path

    def export(self, kind: str) -> Path:
        path = self.root / f"export.{kind}"
        return self.export_apkg(path) if kind == "apkg" else self.export_colpkg(path)

    def fingerprint(self) -> dict[str, str]:
        """The collection's files, byte for byte (plus whatever lies beside them)."""
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(self.folder.iterdir())
            if p.is_file()
        }

    def schema(self) -> tuple[int, int]:
        import sqlite3

        db = sqlite3.connect(self.collection_path)
        try:
            ver, scm = db.execute("select ver, scm from col").fetchone()
        finally:
            db.close()
        return int(ver), int(scm)


HOLDERS = {
    # Anki itself, or anything else that opens the collection with the anki package
    "anki": "from anki.collection import Collection; c = Collection(sys.argv[1])",
    # any program in the middle of a write
    "sqlite": "import sqlite3; db = sqlite3.connect(sys.argv[1]); db.execute('BEGIN EXCLUSIVE')",
}


class Holder:
    """Another process that has the collection open until stopped."""

    def __init__(self, path: Path, how: str) -> None:
        code = f"import sys, time\n{HOLDERS[how]}\nprint('open', flush=True)\ntime.sleep(120)"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline() == "open\n"

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()
