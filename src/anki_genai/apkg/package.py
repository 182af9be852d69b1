"""Cards -> an `.apkg` file: the notes as they go in, the zip around the collection.

The collection itself is written by `collection` (patched by `kept` where a kept one
fits); what a package held is read back here, for the notes a build removes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from anki_genai.apkg import deflate, inplace
from anki_genai.apkg.collection import CollectionWriter, PackagedNote
from anki_genai.apkg.kept import KeptCollection, NoteIndex, what_note_holds
from anki_genai.apkg.notetype import NOTE_TYPE_ID, note_type_digest
from anki_genai.atomic import staged_write
from anki_genai.media import MediaFile

if TYPE_CHECKING:
    from concurrent.futures import Executor


def deck_id(name: str) -> int:
    """Return a stable id for a deck name (Anki matches decks by name; ids need only be stable)."""
    digest = hashlib.sha256(name.encode()).digest()
    return (1 << 30) + int.from_bytes(digest[:4], "big") % (1 << 30)


def content_digest(notes: Sequence[PackagedNote], note_type_mod: int) -> str:
    """Digest of everything a package built from `notes` would hold."""
    digest = hashlib.sha256(f"{note_type_digest()}\x1e{note_type_mod}".encode())
    for note in notes:
        media = "\x1f".join(f"{m.name}" for m in note.media)
        parts = (note.guid, note.deck, str(note.mod), note.fields_digest, *note.tags, media)
        digest.update(("\x1e" + "\x1f".join(parts)).encode())
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Unchanged:
    """The notes of the last package that a package keeps as they are, unnamed: all but
    `replaced`. A rebuild after a small edit names only the notes it changed."""

    replaced: frozenset[str]  # GUIDs of the last package's notes that go or are replaced
    decks: frozenset[str]  # the decks of the notes kept
    media: tuple[MediaFile, ...]  # the files the notes kept show


def write_package(
    notes: Sequence[PackagedNote],
    note_type_mod: int,
    path: Path,
    keep: Path | None = None,
    before_replacing: Callable[[], None] = lambda: None,
    unchanged: Unchanged | None = None,
) -> bool | None:
    """Write `notes` to an `.apkg` at `path`; the old file stays until the new one is whole,
    and until `before_replacing` has returned (it may stage files to be replaced with it).

    With `keep`, a folder, the package's collection is also kept there, and the next package
    starts from it: only the notes that changed are written again. With `unchanged`, the
    package also holds the kept collection's other notes; then it returns False when
    nothing changed (and writes nothing), None when the kept collection cannot be used (and
    writes nothing); otherwise True.
    """
    writer = CollectionWriter()
    names = {n.deck for n in notes} | (unchanged.decks if unchanged else set())
    decks = {name: deck_id(name) for name in sorted(names)}
    path.parent.mkdir(parents=True, exist_ok=True)
    # The collection is built in a temporary file beside the package, not in memory: a
    # large deck would otherwise be held three times (database, its copy, the zip buffer).
    collection = _temporary_file(path.parent, f".{path.name}.")
    segments: Path | None = None  # where this package's deflated segments are recorded
    record: IO[bytes] | None = None
    media = {file.name: file for note in notes for file in note.media}
    if unchanged is not None:
        media.update((file.name, file) for file in unchanged.media)
    shipped = sorted(media.values(), key=lambda f: f.name)
    try:
        held = {note.guid: what_note_holds(note) for note in notes}
        kept = KeptCollection.load(keep, writer) if keep is not None else None
        if unchanged is not None:
            if kept is None:
                return None
            if any(guid not in kept.notes for guid in unchanged.replaced):
                return None  # the kept collection is not the last package
            # Only the notes replaced or written can differ from the kept collection's.
            touched = unchanged.replaced | held.keys()
            if all(held.get(guid) == kept.notes.held_of(guid) for guid in touched):
                return False
            done = inplace.write_patched(
                kept, notes, unchanged.replaced, held, decks, note_type_mod, path, shipped,
                before_replacing,
            )  # fmt: skip
            if done is not False:
                return done
            held = {g: h for g, h in kept.notes.items() if g not in touched} | held
        index = kept.patch(collection, notes, held, decks, note_type_mod) if kept else None
        if index is None:
            if unchanged is not None:
                return None
            note_ids = writer.new_collection(collection, notes, decks, note_type_mod)
            index = NoteIndex.of(held, note_ids)
        with contextlib.ExitStack() as open_files:
            if keep is not None:
                with contextlib.suppress(OSError):  # without it, the next package deflates all
                    keep.mkdir(parents=True, exist_ok=True)
                    segments = _temporary_file(keep, ".collection.deflate.")
                    record = open_files.enter_context(segments.open("wb"))
            deflater = deflate.SegmentedDeflater(
                record,
                open_files.enter_context(kept.open_segments()) if kept else None,
                kept.segments if kept else None,
                _deflate_pool(open_files, collection.stat().st_size),
            )
            write = functools.partial(
                _write_zip, collection=collection, media=shipped, deflater=deflater
            )
            with staged_write(path, write, binary=True) as replace_old:
                before_replacing()
                replace_old()
        if keep is not None:
            recorded = (segments, deflater.segments) if segments and deflater.recorded else None
            order = deflater.order if recorded else None
            KeptCollection.keep(keep, writer, collection, index, recorded, order)
        return True
    finally:
        for leftover in (collection, segments):
            if leftover is not None:
                leftover.unlink(missing_ok=True)


def _deflate_pool(open_files: contextlib.ExitStack, size: int) -> Executor | None:
    """Threads to deflate a collection of `size` bytes on every core, if it is worth it."""
    if (os.cpu_count() or 1) < 2 or size < 4 * deflate.SEGMENT_SIZE:
        return None
    from concurrent.futures import ThreadPoolExecutor  # only for a large enough package

    threads = min(os.cpu_count() or 1, deflate.THREADS)
    return open_files.enter_context(ThreadPoolExecutor(threads))


def _temporary_file(folder: Path, prefix: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
    os.close(fd)
    return Path(name)


@dataclass(frozen=True, slots=True)
class PackagedContent:
    """What a package holds for one note."""

    deck: str
    fields: tuple[str, ...]
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PackageContents:
    """Every note a package holds, with its mod, and whether its note type is this version's."""

    notes: dict[str, tuple[PackagedContent, int]]  # by GUID: content, mod
    note_type_mod: int | None  # None: the package's note type is not this version's


def read_notes(path: Path, guids: set[str]) -> dict[str, PackagedContent]:
    """Return deck, fields and tags of the notes `guids` in the package at `path`, if readable.

    The collection is unpacked to a temporary file beside the package, and only the notes
    asked for are read: loading a 100,000-note collection whole took 850 MB.
    """
    contents = _read_package(path, guids)
    return {guid: content for guid, (content, _) in contents.notes.items()} if contents else {}


def read_package(path: Path) -> PackageContents | None:
    """Every note of the package at `path`, or None when there is none or it is unreadable."""
    return _read_package(path, None)


def _read_package(path: Path, guids: set[str] | None) -> PackageContents | None:
    if not path.is_file():
        return None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError:
        return None
    os.close(fd)
    unpacked = Path(name)
    try:
        with (
            zipfile.ZipFile(path) as zf,
            zf.open("collection.anki2") as packed,
            unpacked.open("wb") as handle,
        ):
            shutil.copyfileobj(packed, handle, 1 << 20)
        return _read_notes(unpacked, guids)
    except (OSError, KeyError, zipfile.BadZipFile, sqlite3.Error, ValueError, TypeError):
        return None
    finally:
        with contextlib.suppress(FileNotFoundError):
            unpacked.unlink()


def _read_notes(collection: Path, guids: set[str] | None) -> PackageContents:
    """The notes `guids` (None: all) of an unpacked collection."""
    db = sqlite3.connect(collection)
    try:
        decks_json, models_json = db.execute("SELECT decks, models FROM col").fetchone()
        deck_names = {int(k): v["name"] for k, v in json.loads(decks_json).items()}
        model = json.loads(models_json).get(str(NOTE_TYPE_ID), {})
        join = ""
        if guids is not None:
            db.execute("CREATE TEMP TABLE wanted (guid TEXT PRIMARY KEY)")
            db.executemany("INSERT INTO wanted VALUES (?)", ((guid,) for guid in guids))
            join = " JOIN wanted w ON w.guid = n.guid"
        rows = db.execute(
            f"SELECT n.guid, n.flds, n.tags, n.mod, MIN(c.did) FROM notes n{join}"
            " JOIN cards c ON c.nid = n.id GROUP BY n.id"
        ).fetchall()
    finally:
        db.close()
    notes = {
        guid: (
            PackagedContent(
                deck_names.get(did, ""), tuple(flds.split("\x1f")), tuple(tags.split())
            ),
            int(mod),
        )
        for guid, flds, tags, mod, did in rows
    }
    templates = model.get("tmpls") or [{}]
    shape = (model.get("name"), templates[0].get("qfmt"), templates[0].get("afmt"))
    same_type = shape[0] is not None and note_type_digest(*shape, model.get("css")) == (
        note_type_digest()
    )
    return PackageContents(notes, int(model.get("mod", 0)) if same_type else None)


def _write_zip(
    handle: IO[bytes],
    collection: Path,
    media: Sequence[MediaFile],
    deflater: deflate.SegmentedDeflater,
) -> None:
    # Level 1: nearly the size of the default level, in a third of the time.
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        info = zipfile.ZipInfo.from_file(collection, "collection.anki2")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w") as member:
            # zipfile has no public way to take deflated data, but its member writer calls
            # nothing of its compressor but compress() and flush(). Should that writer
            # change, the member is simply deflated whole, as zipfile would.
            if hasattr(member, "_compressor"):
                member._compressor = deflater
            for segment in deflate.read_segments(collection):
                member.write(segment)
        zf.writestr("media", json.dumps({str(i): f.name for i, f in enumerate(media)}))
        for index, file in enumerate(media):
            zf.write(file.path, str(index))
