"""The last package's collection, kept in the cache, and the deflated segments of its zip."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

from anki_genai.apkg import deflate
from anki_genai.apkg.collection import CollectionWriter, PackagedNote
from anki_genai.store import file_stat, read_checked, write_checked

_KEPT_COLLECTION = "collection.anki2"
_KEPT_INDEX = "collection.index"
_KEPT_SEGMENTS = "collection.deflate"


class KeptCollection:
    """The last package's collection, kept in the cache with what each of its notes holds.

    Rewriting a large collection costs most of a rebuild; patching the kept one costs only
    what changed. It is never trusted blindly: it is used only when its index, its size and
    its modification time are exactly as last written, and a patch that fails or ends with
    the wrong notes falls back to writing a new collection.
    """

    def __init__(
        self,
        folder: Path,
        writer: CollectionWriter,
        stat: list[int],
        held: dict[str, bytes],
        ids: dict[str, int],
        segments: dict[bytes, deflate.Segment],
    ) -> None:
        self.folder = folder
        self.writer = writer
        self.stat = stat  # size and mtime of the collection the index describes
        self.held = held  # GUID -> what the note holds (`what_note_holds`)
        self.ids = ids  # GUID -> note id
        self.segments = segments  # the collection's deflated segments, by content

    @classmethod
    def load(cls, folder: Path, writer: CollectionWriter) -> KeptCollection | None:
        index = read_checked(folder / _KEPT_INDEX)
        try:
            if not isinstance(index, dict) or index.get("format") != _kept_format(writer):
                return None
            if file_stat(folder / _KEPT_COLLECTION) != index["stat"]:
                return None
            held, ids = index["held"], index["ids"]
            if not isinstance(held, dict) or not isinstance(ids, dict) or held.keys() != ids.keys():
                return None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or damaged: write a new collection
        return cls(folder, writer, index["stat"], held, ids, _kept_segments(folder, index))

    @contextlib.contextmanager
    def open_segments(self) -> Iterator[IO[bytes] | None]:
        """The kept segments file, open for reading; None if it is gone."""
        try:
            handle = (self.folder / _KEPT_SEGMENTS).open("rb")
        except OSError:
            yield None
            return
        with handle:
            yield handle

    def patch(
        self,
        collection: Path,
        notes: Sequence[PackagedNote],
        held: dict[str, bytes],
        decks: Mapping[str, int],
        note_type_mod: int,
    ) -> dict[str, int] | None:
        """Copy the kept collection to `collection` and bring it to `held` (every note's
        content by GUID), writing `notes` where the kept one differs; None on failure."""
        try:
            shutil.copyfile(self.folder / _KEPT_COLLECTION, collection)
            if file_stat(self.folder / _KEPT_COLLECTION) != self.stat:
                return None  # replaced meanwhile, by a build into the same folder
            db = sqlite3.connect(collection)
            try:
                note_ids = self._patch(db, notes, held, decks, note_type_mod)
                if note_ids is not None:
                    db.commit()
            finally:
                db.close()
        except (OSError, sqlite3.Error):
            note_ids = None
        return note_ids

    def _patch(
        self,
        db: sqlite3.Connection,
        notes: Sequence[PackagedNote],
        wanted: dict[str, bytes],
        decks: Mapping[str, int],
        note_type_mod: int,
    ) -> dict[str, int] | None:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        # Zero what is deleted: an edited-away answer must not linger in free pages of a
        # package its author may share.
        db.execute("PRAGMA secure_delete = ON")
        cursor = db.cursor()
        kept = {guid for guid, held in self.held.items() if wanted.get(guid) == held}
        stale = [(note_id,) for guid, note_id in self.ids.items() if guid not in kept]
        cursor.executemany("DELETE FROM cards WHERE nid = ?", stale)
        cursor.executemany("DELETE FROM notes WHERE id = ?", stale)
        self.writer.write_decks_and_note_type(cursor, decks, note_type_mod)
        (top,) = cursor.execute(
            "SELECT max(coalesce((SELECT max(id) FROM notes), 0),"
            " coalesce((SELECT max(id) FROM cards), 0))"
        ).fetchone()
        first_id = max(top + 1, max((n.mod for n in notes), default=note_type_mod) * 1000)
        changed = [n for n in notes if n.guid not in kept]
        note_ids = {guid: self.ids[guid] for guid in kept}
        note_ids.update(self.writer.insert_notes(cursor, changed, decks, first_id))
        # One card per note, no more, no fewer: otherwise the kept collection was not what
        # its index said.
        counts = cursor.execute(
            "SELECT (SELECT count(*) FROM notes), (SELECT count(*) FROM cards)"
        ).fetchone()
        if counts != (len(wanted), len(wanted)) or len(note_ids) != len(wanted):
            return None
        return note_ids

    @staticmethod
    def keep(
        folder: Path,
        writer: CollectionWriter,
        collection: Path,
        held: dict[str, bytes],
        note_ids: dict[str, int],
        recorded: tuple[Path, dict[bytes, deflate.Segment]] | None,
    ) -> None:
        """Keep `collection` (moved, not copied) for the next package, and the segments
        `recorded` as its package deflated them; best effort."""
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                (folder / _KEPT_INDEX).unlink()  # no index: the collection is not trusted
            # Read before the move, which keeps size and mtime: should another build
            # into this folder move its own collection in meanwhile, this index won't fit it.
            stat = file_stat(collection)
            os.replace(collection, folder / _KEPT_COLLECTION)
            index: dict[str, object] = {
                "format": _kept_format(writer),
                "stat": stat,
                "held": held,
                "ids": note_ids,  # the same GUIDs: every note written was given an id
            }
            if recorded is not None:
                segments_file, segments = recorded
                index["segments_stat"] = file_stat(segments_file)
                os.replace(segments_file, folder / _KEPT_SEGMENTS)
                index["segments"] = {k: [s.offset, s.length, s.digest] for k, s in segments.items()}
            write_checked(folder / _KEPT_INDEX, index)


def what_note_holds(note: PackagedNote) -> bytes:
    """A digest of everything one note's rows hold: its fields, tags, deck and mod."""
    parts = (note.deck, str(note.mod), note.fields_digest, *note.tags)
    return hashlib.sha256("\x1f".join(parts).encode()).digest()[:12]


def _kept_segments(folder: Path, index: dict[str, object]) -> dict[bytes, deflate.Segment]:
    """The kept segments the index describes, if the file is as it was written."""
    try:
        if file_stat(folder / _KEPT_SEGMENTS) != index.get("segments_stat"):
            return {}
        entries = index["segments"]
        if not isinstance(entries, dict):
            return {}
        return {
            bytes(k): deflate.Segment(int(o), int(n), bytes(d)) for k, (o, n, d) in entries.items()
        }
    except (OSError, KeyError, TypeError, ValueError):
        return {}


def _kept_format(writer: CollectionWriter) -> str:
    """What the rows of a kept collection depend on besides its notes."""
    return f"3/{writer.rows_format}"
