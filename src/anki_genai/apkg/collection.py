"""The collection inside a package, written row by row: the only module that imports genanki.

genanki decides what every row holds (so Anki reads the package as it reads genanki's own);
how the rows are batched, and which notes are written at all, is decided here and in `kept`.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from anki_genai.apkg.notetype import (
    BACK_TEMPLATE,
    FIELD_NAMES,
    FRONT_TEMPLATE,
    NOTE_TYPE_ID,
    NOTE_TYPE_NAME,
    TEMPLATE_NAME,
    NoteFields,
    note_type_css,
)
from anki_genai.media import MediaFile


@dataclass(frozen=True, slots=True)
class PackagedNote:
    """One note as it goes into the package."""

    guid: str
    deck: str
    # The fields in the note type's order (NoteFields), made only when the note is written:
    # holding every note's HTML at once would cost a large deck hundreds of megabytes.
    fields: Callable[[], NoteFields]
    fields_digest: str  # changes whenever the fields would
    tags: tuple[str, ...]
    mod: int  # seconds; Anki updates an existing note only if this is newer than its own
    media: tuple[MediaFile, ...] = ()


class CollectionWriter:
    """Writes the note type, decks, notes and cards of a collection, as genanki would."""

    def __init__(self) -> None:
        import genanki  # only needed when a package is written; it is slow to import

        self._model = genanki.Model(
            NOTE_TYPE_ID,
            NOTE_TYPE_NAME,
            fields=[{"name": name} for name in FIELD_NAMES],
            templates=[{"name": TEMPLATE_NAME, "qfmt": FRONT_TEMPLATE, "afmt": BACK_TEMPLATE}],
            css=note_type_css(),
        )
        # What the rows depend on besides the notes: a kept collection written by another
        # genanki, or for another note type, is not patched.
        self.rows_format = f"{genanki.__version__}/{self._model.model_id}"

    def new_collection(
        self,
        collection: Path,
        notes: Sequence[PackagedNote],
        decks: Mapping[str, int],
        note_type_mod: int,
    ) -> dict[str, int]:
        """Write a new collection holding `notes`; return each note's id by GUID."""
        collection.write_bytes(b"")  # empty, even after a patch that failed half way
        db = sqlite3.connect(collection)
        try:
            db.execute("PRAGMA journal_mode = OFF")  # a scratch file: nothing to roll back to
            db.execute("PRAGMA synchronous = OFF")
            cursor = db.cursor()
            _create_empty(cursor)
            self.write_decks_and_note_type(cursor, decks, note_type_mod)
            first_id = max((n.mod for n in notes), default=note_type_mod) * 1000
            note_ids = self.insert_notes(cursor, notes, decks, first_id)
            db.commit()
        finally:
            db.close()
        return note_ids

    def write_decks_and_note_type(
        self, cursor: sqlite3.Cursor, decks: Mapping[str, int], note_type_mod: int
    ) -> None:
        """Store the decks (ids by name) and the note type, once, and only if they changed.

        genanki's Package.write_to_db rewrites the decks and models JSON once per deck; a
        collection of many decks is written here once. A patched collection keeps them as
        they were when nothing changed: thousands of decks fill hundreds of pages, which a
        patch would otherwise write, and deflate, again.
        """
        named = tuple(sorted(decks.items()))
        default_deck = named[0][1] if named else 1
        models = {str(NOTE_TYPE_ID): self._model.to_json(note_type_mod, default_deck)}
        cursor.execute(
            "UPDATE col SET decks = ?1, models = ?2 WHERE decks IS NOT ?1 OR models IS NOT ?2",
            (_decks_json(named), json.dumps(models)),
        )

    def insert_notes(
        self,
        cursor: sqlite3.Cursor,
        notes: Sequence[PackagedNote],
        decks: Mapping[str, int],
        first_id: int,
    ) -> dict[str, int]:
        """Insert `notes` and their cards (genanki decides every row); return note ids by GUID.

        Ids count up from `first_id`.
        """
        import genanki

        # genanki stamps one timestamp on every note: writing note by note gives each its
        # own mod.
        ids = _Ids(first_id)
        note_ids = {}
        rows = _RowCollector()
        for index, note in enumerate(notes, 1):
            genanki_note = genanki.Note(
                self._model, list(note.fields()), guid=note.guid, tags=list(note.tags)
            )
            note_ids[note.guid] = ids.next  # genanki draws the note's id first, then its cards'
            genanki_note.write_to_db(rows, note.mod, decks[note.deck], ids)
            if index % 2000 == 0 or index == len(notes):
                rows.flush(cursor)
        return note_ids


@functools.lru_cache(maxsize=4)  # a watched project writes the same decks at every save
def _decks_json(named: tuple[tuple[str, int], ...]) -> str:
    """The collection's decks: genanki's Default deck, and `named` (name, id), as JSON.

    Every other deck goes, so a deck that has lost its last note goes with it.
    """
    import genanki

    kept = _default_deck()
    kept.update({str(deck_id): genanki.Deck(deck_id, name).to_json() for name, deck_id in named})
    return json.dumps(kept)


def _default_deck() -> dict[str, object]:
    """genanki's Default deck, by id, as its empty collection holds it."""
    empty = sqlite3.connect(":memory:")
    try:
        _create_empty(empty.cursor())
        (listed,) = empty.execute("SELECT decks FROM col").fetchone()
    finally:
        empty.close()
    return {k: v for k, v in json.loads(listed).items() if k == "1"}


def _create_empty(cursor: sqlite3.Cursor) -> None:
    """genanki's empty collection: its tables, and its one row of settings and decks."""
    from genanki.apkg_col import APKG_COL
    from genanki.apkg_schema import APKG_SCHEMA

    cursor.executescript(APKG_SCHEMA)
    cursor.executescript(APKG_COL)


class _Ids:
    """Note and card ids for genanki, counting up; `next` is the one it will draw next."""

    def __init__(self, first: int) -> None:
        self.next = first

    def __iter__(self) -> _Ids:
        return self

    def __next__(self) -> int:
        self.next += 1
        return self.next - 1


class _RowCollector:
    """Stands in for genanki's cursor: keeps the rows its notes and cards would insert.

    genanki inserts one row at a time; collecting them lets sqlite insert each table's rows
    in one executemany, while genanki still decides what every row holds.
    """

    def __init__(self) -> None:
        self.batches: dict[str, list[tuple[object, ...]]] = {}
        self.lastrowid: object = None

    def execute(self, statement: str, row: tuple[object, ...]) -> None:
        self.batches.setdefault(statement, []).append(row)
        self.lastrowid = row[0]  # the id genanki just drew for the row

    def flush(self, cursor: sqlite3.Cursor) -> None:
        """Insert the rows collected so far, a table at a time."""
        for statement, batch in self.batches.items():
            cursor.executemany(statement, batch)
        self.batches.clear()
