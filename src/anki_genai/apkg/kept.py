"""The last package's collection, kept in the cache, and the deflated segments of its zip."""

from __future__ import annotations

import array
import bisect
import contextlib
import hashlib
import os
import shutil
import sqlite3
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

from anki_genai.apkg import deflate
from anki_genai.apkg.collection import CollectionWriter, PackagedNote
from anki_genai.store import file_stat, read_checked, write_checked

_KEPT_COLLECTION = "collection.anki2"
_KEPT_INDEX = "collection.index"
_KEPT_SEGMENTS = "collection.deflate"
_HELD_SIZE = 12  # bytes of `what_note_holds`
_SPLICED_AT_MOST = 256  # notes added one by one to an index; more, and it is sorted anew


class NoteIndex:
    """What each note of the kept collection holds, and its id, by GUID: sorted GUIDs and
    two packed arrays, not dicts. Reading and writing dicts of 100,000 notes cost a
    one-note rebuild a fifth of a second; these are looked up by bisection, and changed by
    splicing."""

    def __init__(self, guids: list[str], held: bytes, ids: array.array[int]) -> None:
        self._guids = guids  # sorted
        self._held = held  # `_HELD_SIZE` bytes per note, in the GUIDs' order
        self._ids = ids

    @classmethod
    def of(cls, held: Mapping[str, bytes], ids: Mapping[str, int]) -> NoteIndex:
        guids = sorted(held)
        return cls(
            guids, b"".join(held[g] for g in guids), array.array("q", (ids[g] for g in guids))
        )

    def _at(self, guid: str) -> int | None:
        at = bisect.bisect_left(self._guids, guid)
        return at if at < len(self._guids) and self._guids[at] == guid else None

    def __contains__(self, guid: object) -> bool:
        return isinstance(guid, str) and self._at(guid) is not None

    def __len__(self) -> int:
        return len(self._guids)

    def items(self) -> Iterator[tuple[str, bytes]]:
        """Every note's GUID and what it holds."""
        for at, guid in enumerate(self._guids):
            yield guid, self._held[at * _HELD_SIZE : (at + 1) * _HELD_SIZE]

    def held_of(self, guid: str) -> bytes | None:
        at = self._at(guid)
        return None if at is None else self._held[at * _HELD_SIZE : (at + 1) * _HELD_SIZE]

    def id_of(self, guid: str) -> int:
        at = self._at(guid)
        if at is None:
            raise KeyError(guid)
        return self._ids[at]

    def changed(self, gone: Iterable[str], added: Mapping[str, tuple[bytes, int]]) -> NoteIndex:
        """This index without the notes `gone`, and with `added` (held, id) by GUID."""
        if len(added) > _SPLICED_AT_MOST:  # each insertion shifts what follows: sort anew
            gone = set(gone)
            holds = {g: h for g, h in self.items() if g not in gone}
            note_ids = {g: self._ids[at] for at, g in enumerate(self._guids)}
            for guid, (note_holds, note_id) in added.items():
                holds[guid], note_ids[guid] = note_holds, note_id
            return NoteIndex.of(holds, note_ids)
        dropped = sorted({at for g in {*gone, *added} if (at := self._at(g)) is not None})
        guids: list[str] = []
        pieces: list[bytes] = []
        ids = array.array("q")
        done = 0  # the notes before `done` are copied or dropped
        for at in [*dropped, len(self._guids)]:  # copied a stretch at a time, not note by note
            guids += self._guids[done:at]
            pieces.append(self._held[done * _HELD_SIZE : at * _HELD_SIZE])
            ids += self._ids[done:at]
            done = at + 1
        held = bytearray().join(pieces)
        for guid in sorted(added):
            at = bisect.bisect_left(guids, guid)
            guids.insert(at, guid)
            held[at * _HELD_SIZE : at * _HELD_SIZE] = added[guid][0]
            ids.insert(at, added[guid][1])
        return NoteIndex(guids, bytes(held), ids)

    def to_data(self) -> dict[str, object]:
        joined = "\x1f".join(self._guids)
        # One string where no GUID holds the separator: read back as one, split at once.
        fits = bool(joined) and joined.count("\x1f") == len(self._guids) - 1
        guids: object = joined if fits else self._guids
        return {"guids": guids, "held": self._held, "ids": self._ids.tobytes()}

    @classmethod
    def from_data(cls, data: object) -> NoteIndex | None:
        """The index `to_data` gave; None if `data` is not one."""
        if not isinstance(data, dict):
            return None
        guids, held, packed = data.get("guids"), data.get("held"), data.get("ids")
        if isinstance(guids, str):
            listed = guids.split("\x1f") if guids else []
        elif isinstance(guids, list) and all(isinstance(g, str) for g in guids):
            listed = guids
        else:
            return None
        if not isinstance(held, bytes) or not isinstance(packed, bytes) or len(packed) % 8:
            return None
        ids = array.array("q")
        ids.frombytes(packed)
        if len(held) != _HELD_SIZE * len(listed) or len(ids) != len(listed):
            return None
        return cls(listed, held, ids)


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
        notes: NoteIndex,
        segments: dict[bytes, deflate.Segment],
        order: list[bytes] | None = None,
    ) -> None:
        self.folder = folder
        self.writer = writer
        self.stat = stat  # size and mtime of the collection the index describes
        self.notes = notes
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
            notes = NoteIndex.from_data(index["notes"])
            if notes is None:
                return None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or damaged: write a new collection
        segments = _kept_segments(folder, index)
        order = index.get("order")
        if not isinstance(order, list) or not all(key in segments for key in order):
            order = None
        return cls(folder, writer, index["stat"], notes, segments, order)

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
    ) -> NoteIndex | None:
        """Copy the kept collection to `collection` and bring it to `held` (every note's
        content by GUID), writing `notes` where the kept one differs; return its notes'
        index, None on failure."""
        try:
            shutil.copyfile(self.collection_path, collection)
            if file_stat(self.collection_path) != self.stat:
                return None  # replaced meanwhile, by a build into the same folder
            db = sqlite3.connect(collection)
            try:
                db.execute("PRAGMA journal_mode = OFF")
                db.execute("PRAGMA synchronous = OFF")
                gone = {g for g, holds in self.notes.items() if held.get(g) != holds}
                index = self._patch(db, notes, held, gone, len(held), decks, note_type_mod)
                if index is not None:
                    db.commit()
            finally:
                db.close()
        except (OSError, sqlite3.Error):
            index = None
        return index

    def _patch(
        self,
        db: sqlite3.Connection,
        notes: Sequence[PackagedNote],
        held: Mapping[str, bytes],
        gone: set[str],
        expected: int,
        decks: Mapping[str, int],
        note_type_mod: int,
    ) -> NoteIndex | None:
        """Delete the notes `gone` and write `notes` in their place (among them all that are
        new, with what they hold in `held`); return the index of the `expected` notes the
        collection then holds, None if it does not hold them."""
        # Zero what is deleted: an edited-away answer must not linger in free pages of a
        # package its author may share.
        db.execute("PRAGMA secure_delete = ON")
        cursor = db.cursor()
        stale = [(self.notes.id_of(guid),) for guid in gone]
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
        changed = [n for n in notes if n.guid not in self.notes or n.guid in gone]
        new_ids = self.writer.insert_notes(cursor, changed, decks, first_id)
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
        index = self.notes.changed(gone, {g: (held[g], i) for g, i in new_ids.items()})
        return index if len(index) == expected else None

    def patch_in_place(
        self,
        notes: Sequence[PackagedNote],
        replaced: Collection[str],
        held: dict[str, bytes],
        decks: Mapping[str, int],
        note_type_mod: int,
    ) -> tuple[NoteIndex, set[int], int] | None:
        """Bring the kept collection itself to hold the notes it holds but `replaced`, and
        `notes` (what they hold in `held`), writing `notes` where it differs; return the
        notes' index, the pages written and the page size; None on failure.

        The pages go through a write-ahead log, read before it is checkpointed: the only
        record of which parts of a large collection changed, short of comparing them all.
        Until `keep_in_place` writes its index again the collection is not trusted.
        """
        path = self.collection_path
        log = path.with_name(path.name + "-wal")
        present = {guid for guid in {*replaced, *held} if guid in self.notes}
        gone = {guid for guid in present if held.get(guid) != self.notes.held_of(guid)}
        expected = len(self.notes) - len(present - held.keys()) + len(held.keys() - present)
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
                index = self._patch(db, notes, held, gone, expected, decks, note_type_mod)
                if index is None:
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
        return index, pages | {1}, int(page_size)

    def keep_in_place(
        self,
        notes: NoteIndex,
        segments: dict[bytes, deflate.Segment],
        order: list[bytes],
    ) -> None:
        """Trust the collection patched in place again, with its segments; best effort."""
        with contextlib.suppress(OSError):
            index: dict[str, object] = {
                "format": _kept_format(self.writer),
                "stat": file_stat(self.collection_path),
                "notes": notes.to_data(),
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
        notes: NoteIndex,
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
                "notes": notes.to_data(),
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
    return f"5/{writer.rows_format}"
