"""Real Anki collections, through the official `anki` package: the only module that imports it.

The rules a user's collection is held to:
- never opened while Anki (or anything else) has it open: SQLite then reports it locked;
- left at the schema version it had (the backend upgrades what it opens; its close can
  downgrade to the legacy schema 11, and nothing else); one newer than the installed `anki`
  writes is refused before it is opened;
- never marked as needing a full sync: `scm` is compared before and after, and a change puts
  the backup back.
Exports and a collection that is only read are opened as copies in a scratch folder.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anki_genai.sync.adapter import FIELD_NAMES, AnkiGenaiError

if TYPE_CHECKING:
    from anki.collection import Collection
    from anki.dbproxy import DBProxy

INSTALL_HINT = "pip install 'anki-genai[anki]'"
LEGACY_SCHEMA = 11


class AnkiMissingError(AnkiGenaiError):
    """The optional `anki` package (or markdownify) is not installed."""


class CollectionBusyError(AnkiGenaiError):
    """Another process has the collection open."""


class CollectionError(AnkiGenaiError):
    """The collection cannot be used safely."""


def require_anki(command: str) -> None:
    """Fail with how to install the extra when `anki` or markdownify is missing."""
    try:
        import anki.collection  # noqa: F401
        import markdownify  # noqa: F401
    except ImportError as exc:
        raise AnkiMissingError(
            f"`anki-genai {command}` needs the official anki package ({exc.name} is not "
            f"installed); install it with: {INSTALL_HINT}"
        ) from None


@dataclass(frozen=True, slots=True)
class AnkiNote:
    """One note of this project's note type, as the collection holds it."""

    note_id: int
    guid: str
    mod: int
    fields: tuple[str, ...]  # in FIELD_NAMES order
    tags: tuple[str, ...]
    decks: tuple[str, ...]  # of its cards
    card_ids: tuple[int, ...]

    def field(self, name: str) -> str:
        return self.fields[FIELD_NAMES.index(name)]


@dataclass(frozen=True, slots=True)
class SchemaInfo:
    version: int
    scm: int  # the schema's modification time; a change forces a full sync


def read_schema(path: Path) -> SchemaInfo:
    """Read the schema of a closed collection; fail if another process has it open.

    Anki holds its collection with SQLite's exclusive locking, and any other program that
    is writing holds the write lock: either way taking the write lock fails at once. It is
    taken only to see that it can be, and given back without writing anything.
    """
    if not path.is_file():
        raise CollectionError(f"{path}: no such collection file")
    try:
        db = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            version, scm = db.execute("SELECT ver, scm FROM col").fetchone()
            db.execute("ROLLBACK")
        finally:
            db.close()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise CollectionBusyError(
                f"{path}: the collection is open in Anki (or another program); "
                "close Anki first, then run this again"
            ) from None
        raise CollectionError(f"{path}: not an Anki collection ({exc})") from None
    except sqlite3.DatabaseError as exc:
        raise CollectionError(f"{path}: not an Anki collection ({exc})") from None
    return SchemaInfo(int(version), int(scm))


@functools.cache
def supported_schema() -> int:
    """The schema version the installed `anki` writes (the newest it reads)."""
    from anki.collection import Collection

    with tempfile.TemporaryDirectory(prefix="anki-genai-") as folder:
        col = Collection(str(Path(folder) / "collection.anki2"))
        try:
            return int(_db(col).scalar("select ver from col"))
        finally:
            col.close()


def check_schema(path: Path, schema: SchemaInfo, *, writing: bool) -> None:
    """Refuse a collection the installed `anki` could not leave as it found it."""
    newest = supported_schema()
    if schema.version > newest:
        raise CollectionError(
            f"{path}: the collection has schema {schema.version}, newer than the installed "
            f"anki package supports ({newest}); upgrade it: pip install -U anki"
        )
    if writing and schema.version not in (newest, LEGACY_SCHEMA):
        raise CollectionError(
            f"{path}: the collection has schema {schema.version}; the installed anki package "
            f"could only leave it at {newest} or {LEGACY_SCHEMA}. Upgrade Anki and open the "
            "collection in it once, or install the anki package of your Anki's version"
        )


def _open(path: Path) -> Collection:
    from anki.collection import Collection
    from anki.errors import DBError

    try:
        return Collection(str(path))
    except DBError as exc:
        raise CollectionBusyError(
            f"{path}: the collection is open in Anki (or another program); close Anki first ({exc})"
        ) from None


@contextlib.contextmanager
def read_export(path: Path) -> Iterator[Collection]:
    """Open what the user exported, read-only: an `.apkg`, a `.colpkg` or a `collection.anki2`.

    Each is brought into a scratch collection in a temporary folder (today's exports are
    zstd-compressed, so only the backend reads them), which is deleted afterwards; the
    user's file is never opened for writing.
    """
    suffix = path.suffix.lower()
    with tempfile.TemporaryDirectory(prefix="anki-genai-") as folder:
        scratch = Path(folder) / "collection.anki2"
        if suffix == ".apkg":
            col = _open(scratch)
            try:
                _import_package(col, path)
            except BaseException:
                col.close()
                raise
        elif suffix == ".colpkg":
            col = _import_collection_package(path, scratch)
        else:
            schema = read_schema(path)
            check_schema(path, schema, writing=False)
            shutil.copyfile(path, scratch)
            col = _open(scratch)
        try:
            yield col
        finally:
            col.close()


def _import_collection_package(package: Path, scratch: Path) -> Collection:
    from anki._backend import RustBackend  # a whole-collection import has no public wrapper
    from anki.collection import Collection
    from anki.errors import AnkiException

    backend = RustBackend()
    try:
        backend.import_collection_package(
            col_path=str(scratch),
            backup_path=str(package),
            media_folder=str(scratch.parent / "collection.media"),
            media_db=str(scratch.parent / "collection.media.db"),
        )
    except AnkiException as exc:
        raise CollectionError(f"{package}: cannot read this collection package ({exc})") from None
    return Collection(str(scratch), backend=backend)


@dataclass(frozen=True, slots=True)
class ImportCounts:
    new: int
    updated: int
    unchanged: int  # notes the package did not change ("duplicate" in Anki's log)
    conflicting: int


def _import_package(col: Collection, package: Path) -> ImportCounts:
    """Import as Anki's import dialog does by default: update notes and note types if newer,
    never merge note types (that could change the schema), no scheduling from the package."""
    from anki.collection import ImportAnkiPackageOptions, ImportAnkiPackageRequest
    from anki.errors import AnkiException

    options = ImportAnkiPackageOptions(merge_notetypes=False, with_scheduling=False)
    request = ImportAnkiPackageRequest(package_path=str(package), options=options)
    try:
        log = col.import_anki_package(request).log
    except AnkiException as exc:
        raise CollectionError(f"{package}: cannot import this package ({exc})") from None
    return ImportCounts(len(log.new), len(log.updated), len(log.duplicate), len(log.conflicting))


def project_notes(col: Collection, guids: set[str]) -> dict[str, AnkiNote]:
    """The notes of this project's note type among `guids`, by GUID."""
    wanted = {int(nt["id"]) for nt in col.models.all() if _is_ours(nt)}
    notes: dict[str, AnkiNote] = {}
    if not wanted:
        return notes
    cards: dict[int, list[tuple[int, int]]] = {}
    db = _db(col)
    for cid, nid, did in db.all("select id, nid, did from cards order by ord"):
        cards.setdefault(nid, []).append((cid, did))
    deck_names: dict[int, str] = {}
    for nid, guid, mid, mod, flds, tags in db.all(
        "select id, guid, mid, mod, flds, tags from notes"
    ):
        if guid not in guids or mid not in wanted:
            continue
        own = cards.get(nid, [])
        notes[guid] = AnkiNote(
            nid,
            guid,
            mod,
            tuple(flds.split("\x1f")),
            tuple(tags.split()),
            tuple(_deck_name(col, did, deck_names) for _cid, did in own),
            tuple(cid for cid, _did in own),
        )
    return notes


def _deck_name(col: Collection, deck_id: int, known: dict[int, str]) -> str:
    from anki.decks import DeckId

    if deck_id not in known:
        known[deck_id] = col.decks.name(DeckId(deck_id))
    return known[deck_id]


def _db(col: Collection) -> DBProxy:
    assert col.db is not None, "the collection is open"
    return col.db


def _is_ours(notetype: dict[str, Any]) -> bool:
    return bool(tuple(f["name"] for f in notetype["flds"]) == FIELD_NAMES)


@dataclass(frozen=True, slots=True)
class NoteUpdate:
    """New tags and fields for a note whose other fields are left exactly as they are."""

    note_id: int
    tags: tuple[str, ...]
    fields: dict[str, str]


class WritableCollection:
    """A user's collection opened for a push: backed up first, schema kept, Anki closed."""

    def __init__(self, path: Path, col: Collection, schema: SchemaInfo, backup: Path) -> None:
        self.path = path
        self.col = col
        self.schema = schema
        self.backup = backup

    def import_package(self, package: Path) -> ImportCounts:
        return _import_package(self.col, package)

    def notes(self, guids: set[str]) -> dict[str, AnkiNote]:
        return project_notes(self.col, guids)

    def delete(self, note_ids: Sequence[int]) -> int:
        from anki.notes import NoteId

        if not note_ids:
            return 0
        return int(self.col.remove_notes([NoteId(n) for n in note_ids]).count)

    def move(self, card_ids: Sequence[int], deck: str) -> None:
        from anki.cards import CardId

        deck_id = self.col.decks.id(deck)
        assert deck_id is not None  # id() creates a missing deck
        self.col.set_deck([CardId(c) for c in card_ids], deck_id)

    def update(self, change: NoteUpdate) -> None:
        from anki.notes import NoteId

        note = self.col.get_note(NoteId(change.note_id))
        for name, value in change.fields.items():
            note[name] = value
        note.tags = list(change.tags)
        self.col.update_note(note)


@contextlib.contextmanager
def open_for_push(path: Path) -> Iterator[WritableCollection]:
    """Back the closed collection at `path` up beside it, open it, and on leaving close it at
    the schema it had; if it was left changed in schema, put the backup back.

    An error inside the block also puts the backup back: a push is all or nothing.
    """
    schema = read_schema(path)
    check_schema(path, schema, writing=True)
    backup = _backup(path)
    col = _open(path)
    closed = False
    try:
        writable = WritableCollection(path, col, schema, backup)
        yield writable
        scm = int(_db(col).scalar("select scm from col"))
        col.close(downgrade=schema.version == LEGACY_SCHEMA)
        closed = True
        after = read_schema(path)
        if after.version != schema.version or scm != schema.scm:
            _restore(backup, path)
            raise CollectionError(
                f"{path}: the push would have changed the collection's schema (version "
                f"{schema.version} -> {after.version}, or a full sync); the backup was put "
                "back and nothing changed"
            )
    except BaseException:
        if not closed:
            with contextlib.suppress(Exception):
                col.close(downgrade=schema.version == LEGACY_SCHEMA)
            _restore(backup, path)
        raise


def _backup(path: Path) -> Path:
    """Copy the closed collection beside itself, under a name that says when."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"{path.name}.anki-genai-backup-{stamp}")
    number = 2
    while backup.exists():
        backup = path.with_name(f"{path.name}.anki-genai-backup-{stamp}-{number}")
        number += 1
    shutil.copy2(path, backup)
    return backup


def _restore(backup: Path, path: Path) -> None:
    for leftover in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    shutil.copy2(backup, path)
