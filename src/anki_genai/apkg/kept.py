"""The last package's collection, kept in the cache, and the deflated segments of its zip."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
from collections.abc import Collection, Iterator, Mapping, Sequence
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
        order: list[bytes] | None = None,
    ) -> None:
        self.folder = folder
        self.writer = writer
        self.stat = stat  # size and mtime of the collection the index describes
        self.held = held  # GUID -> what the note holds (`what_note_holds`)
        self.ids = ids  # GUID -> note id
        self.segments = segments  # the collection's deflated segments, by content
        self.order = order or []  # the key of each of its segments, in order (if known)

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
        segments = _kept_segments(folder, index)
        order = index.get("order")
        if not isinstance(order, list) or not all(key in segments for key in order):
            order = None
        return cls(folder, writer, index["stat"], held, ids, segments, order)

    @contextlib.contextmanager
    def open_segments(self) -> Iterator[IO[bytes] | None]:
        """The kept segments file, open for reading; None if it is gone."""
        try:
            handle = (self.segments_path).open("rb")
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
            shutil.copyfile(self.collection_path, collection)
            if file_stat(self.collection_path) != self.stat:
                return None  # replaced meanwhile, by a build into the same folder
            db = sqlite3.connect(collection)
            try:
                db.execute("PRAGMA journal_mode = OFF")
                db.execute("PRAGMA synchronous = OFF")
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
        suspects: Collection[str] | None = None,
    ) -> dict[str, int] | None:
        """Delete the notes that differ from `wanted` and write `notes` in their place
        (among them all that are new); only `suspects` can differ (None: any note)."""
        # Zero what is deleted: an edited-away answer must not linger in free pages of a
        # package its author may share.
        db.execute("PRAGMA secure_delete = ON")
        cursor = db.cursor()
        if suspects is None:
            suspects = self.held.keys()
        gone = {
            guid for guid in suspects if guid in self.held and wanted.get(guid) != self.held[guid]
        }
        stale = [(self.ids[guid],) for guid in gone]
        deleted = []
        for statement in ("DELETE FROM cards WHERE nid = ?", "DELETE FROM notes WHERE id = ?"):
            cursor.executemany(statement, stale)
            deleted.append(cursor.rowcount if stale else 0)
        self.writer.write_decks_and_note_type(cursor, decks, note_type_mod)
        (top,) = cursor.execute(
            "SELECT max(coalesce((SELECT max(id) FROM notes), 0),"
            " coalesce((SELECT max(id) FROM cards), 0))"
        ).fetchone()
        first_id = max(top + 1, max((n.mod for n in notes), default=note_type_mod) * 1000)
        changed = [n for n in notes if n.guid not in self.held or n.guid in gone]
        note_ids = dict(self.ids)
        for guid in gone:
            del note_ids[guid]
        note_ids.update(self.writer.insert_notes(cursor, changed, decks, first_id))
        # One card per note, no more, no fewer: otherwise the kept collection was not what
        # its index said. Counted in what changed, not in the whole collection (a count of
        # 100,000 rows cost a tenth of a second): it held one card per note when written.
        added = cursor.execute(
            "SELECT (SELECT count(*) FROM notes WHERE id >= ?),"
            " (SELECT count(*) FROM cards WHERE id >= ?)",
            (first_id, first_id),
        ).fetchone()
        if deleted != [len(stale)] * 2 or tuple(added) != (len(changed),) * 2:
            return None
        if len(note_ids) != len(wanted):
            return None
        return note_ids

    def patch_in_place(
        self,
        notes: Sequence[PackagedNote],
        replaced: Collection[str],
        held: dict[str, bytes],
        decks: Mapping[str, int],
        note_type_mod: int,
    ) -> tuple[dict[str, int], set[int], int] | None:
        """Bring the kept collection itself to `held`, writing `notes` where it differs
        (only they and the notes `replaced` can);
        return the note ids, the pages written and the page size; None on failure.

        The pages go through a write-ahead log, read before it is checkpointed: the only
        record of which parts of a large collection changed, short of comparing them all.
        Until `keep_in_place` writes its index again the collection is not trusted.
        """
        path = self.collection_path
        log = path.with_name(path.name + "-wal")
        try:
            (self.folder / _KEPT_INDEX).unlink()
            # A log left by a build that died would be replayed into this collection.
            for leftover in (log, path.with_name(path.name + "-shm")):
                leftover.unlink(missing_ok=True)
            db = sqlite3.connect(path, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = OFF")
                db.execute("PRAGMA wal_autocheckpoint = 0")  # every page stays in the log
                (page_size,) = db.execute("PRAGMA page_size").fetchone()
                db.execute("BEGIN")
                suspects = {*replaced, *(note.guid for note in notes)}
                note_ids = self._patch(db, notes, held, decks, note_type_mod, suspects)
                if note_ids is None:
                    db.execute("ROLLBACK")
                    return None
                db.execute("COMMIT")
                pages = _logged_pages(log)
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                db.execute("PRAGMA journal_mode = DELETE")  # rewrites the header: page 1
            finally:
                db.close()
        except (OSError, sqlite3.Error):
            return None
        return note_ids, pages | {1}, int(page_size)

    def keep_in_place(
        self,
        held: dict[str, bytes],
        note_ids: dict[str, int],
        segments: dict[bytes, deflate.Segment],
        order: list[bytes],
    ) -> None:
        """Trust the collection patched in place again, with its segments; best effort."""
        with contextlib.suppress(OSError):
            index: dict[str, object] = {
                "format": _kept_format(self.writer),
                "stat": file_stat(self.collection_path),
                "held": held,
                "ids": note_ids,
                "segments_stat": file_stat(self.segments_path),
                "segments": _segment_lists(segments),
                "order": order,
            }
            write_checked(self.folder / _KEPT_INDEX, index)

    @property
    def segments_path(self) -> Path:
        return self.folder / _KEPT_SEGMENTS

    @property
    def collection_path(self) -> Path:
        return self.folder / _KEPT_COLLECTION

    @staticmethod
    def keep(
        folder: Path,
        writer: CollectionWriter,
        collection: Path,
        held: dict[str, bytes],
        note_ids: dict[str, int],
        recorded: tuple[Path, dict[bytes, deflate.Segment]] | None,
        order: list[bytes] | None = None,
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
                index["segments"] = _segment_lists(segments)
                index["order"] = order
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
            bytes(k): deflate.Segment(int(o), int(n), bytes(d), int(c), int(s), int(a))
            for k, (o, n, d, c, s, a) in entries.items()
        }
    except (OSError, KeyError, TypeError, ValueError):
        return {}


def _segment_lists(segments: Mapping[bytes, deflate.Segment]) -> dict[bytes, list[object]]:
    return {k: [s.offset, s.length, s.digest, s.crc, s.size, s.check] for k, s in segments.items()}


def _logged_pages(log: Path) -> set[int]:
    """The numbers of the pages a write-ahead log holds, stale frames included."""
    pages = set()
    with log.open("rb") as handle:
        header = handle.read(32)
        page_size = int.from_bytes(header[8:12], "big")
        size = log.stat().st_size
        for offset in range(32, size - 24 - page_size + 1, 24 + page_size):
            handle.seek(offset)
            pages.add(int.from_bytes(handle.read(4), "big"))
    return pages


def _kept_format(writer: CollectionWriter) -> str:
    """What the rows of a kept collection depend on besides its notes."""
    return f"4/{writer.rows_format}"
