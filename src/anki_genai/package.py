"""Cards -> an `.apkg` file. The only module that imports genanki; the note type lives here."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import sqlite3
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from anki_genai import deflate
from anki_genai.atomic import atomic_write
from anki_genai.cache import read_checked, write_checked
from anki_genai.media import MediaFile

if TYPE_CHECKING:
    from concurrent.futures import Executor

    import genanki

# ---------------------------------------------------------------------------------------------
# The note type. Anki matches note types by id and compares their schema (field names and
# order, template names and count). If any of these change after release, Anki keeps the old
# note type, adds a copy named "anki-genai Q&A+", and reports every existing note as
# "conflicting" on every later import: no edit would ever reach users' collections again.
# So NOTE_TYPE_ID, FIELD_NAMES and TEMPLATE_NAME are frozen forever. "Extra" is the spare
# field, empty today, for whatever a later version needs. The CSS and the template *text*
# may change freely: a change bumps the note type's mod and Anki then replaces them.
# ---------------------------------------------------------------------------------------------
NOTE_TYPE_ID = 1876203471
NOTE_TYPE_NAME = "anki-genai Q&A"
FIELD_NAMES = ("Question", "Answer", "Context", "Source", "Extra")
TEMPLATE_NAME = "Card 1"
HIGHLIGHT_CLASS = "highlight"  # the class of highlighted code blocks, styled in the CSS

FRONT_TEMPLATE = """\
{{#Context}}<div class="context">{{Context}}</div>{{/Context}}
<div class="question">{{Question}}</div>
"""

BACK_TEMPLATE = """\
{{FrontSide}}
<hr id="answer">
<div class="answer">{{Answer}}</div>
{{#Extra}}<div class="extra">{{Extra}}</div>{{/Extra}}
{{#Source}}<div class="source">{{Source}}</div>{{/Source}}
"""

CSS = """\
.card {
  font-family: -apple-system, BlinkMacSystemFont, "Segoe UI", "PingFang SC", "Hiragino Sans GB",
    "Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei",
    Roboto, "Helvetica Neue", Arial, sans-serif;
  font-size: 18px;
  line-height: 1.7;
  text-align: left;
  color: #1f2328;
  background-color: #ffffff;
  max-width: 46em;
  margin: 0 auto;
  padding: 12px;
  overflow-wrap: anywhere;
}
.context { font-size: 0.8em; color: #6e7781; margin-bottom: 0.4em; }
.question { font-weight: 600; }
.answer ul, .answer ol, .question ul, .question ol { padding-left: 1.4em; }
.source { font-size: 0.7em; color: #8c959f; margin-top: 1.5em; }
hr#answer { border: none; border-top: 1px solid #d0d7de; margin: 1em 0; }
code { font-family: "SFMono-Regular", Menlo, Consolas, "Liberation Mono", monospace;
  font-size: 0.88em; background: #f6f8fa; padding: 0.1em 0.3em; border-radius: 4px; }
pre { background: #f6f8fa; padding: 0.8em; border-radius: 6px; overflow-x: auto;
  line-height: 1.45; max-width: 100%; }
pre code { background: none; padding: 0; font-size: 0.85em; }
table { border-collapse: collapse; display: block; overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #d0d7de; padding: 0.3em 0.6em; }
blockquote { margin: 0.5em 0; padding-left: 0.8em; border-left: 3px solid #d0d7de;
  color: #57606a; }
img { max-width: 100%; height: auto; }
a { color: #0969da; }
.nightMode .card, .night_mode .card, .card.nightMode, .card.night_mode {
  color: #e6edf3; background-color: #1e1e1e; }
.nightMode .context, .night_mode .context { color: #9198a1; }
.nightMode .source, .night_mode .source { color: #7d8590; }
.nightMode a, .night_mode a { color: #58a6ff; }
.nightMode code, .night_mode code, .nightMode pre, .night_mode pre { background: #2d333b; }
.nightMode th, .nightMode td, .night_mode th, .night_mode td { border-color: #444c56; }
.nightMode blockquote, .night_mode blockquote { color: #9198a1; border-left-color: #444c56; }
"""


@functools.cache  # Pygments builds the rules anew on every call, and a build asks often
def highlight_css() -> str:
    """Return the Pygments colours for code: a light palette and a night-mode one."""
    from pygments.formatters import HtmlFormatter

    light = HtmlFormatter(style="default").get_style_defs(f".{HIGHLIGHT_CLASS}")
    night_selectors = [
        f".nightMode .{HIGHLIGHT_CLASS}",
        f".night_mode .{HIGHLIGHT_CLASS}",
    ]
    night = HtmlFormatter(style="monokai").get_style_defs(night_selectors)
    # The code block's own background comes from the note type's CSS, in both modes.
    return _drop_backgrounds(light) + "\n" + _drop_backgrounds(night)


def _drop_backgrounds(css: str) -> str:
    lines = [line for line in css.splitlines() if not re.match(r"^\S+ \{ background", line)]
    lines = [line for line in lines if not line.startswith(("pre {", "td.linenos", "span.linenos"))]
    return "\n".join(lines)


def note_type_css() -> str:
    """Return the note type's CSS: the card's own, then the code colours."""
    return CSS + "\n" + highlight_css() + "\n"


def note_type_digest() -> str:
    """Return a digest of everything in the note type that may change between versions."""
    text = "\x00".join((NOTE_TYPE_NAME, FRONT_TEMPLATE, BACK_TEMPLATE, note_type_css()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _note_type() -> genanki.Model:
    import genanki  # only needed when a package is written; it is slow to import

    return genanki.Model(
        NOTE_TYPE_ID,
        NOTE_TYPE_NAME,
        fields=[{"name": name} for name in FIELD_NAMES],
        templates=[{"name": TEMPLATE_NAME, "qfmt": FRONT_TEMPLATE, "afmt": BACK_TEMPLATE}],
        css=note_type_css(),
    )


@dataclass(frozen=True, slots=True)
class PackagedNote:
    """One note as it goes into the package."""

    guid: str
    deck: str
    # The fields in FIELD_NAMES order, made only when the note is written: holding every
    # note's HTML at once would cost a large deck hundreds of megabytes.
    fields: Callable[[], tuple[str, str, str, str, str]]
    fields_digest: str  # changes whenever the fields would
    tags: tuple[str, ...]
    mod: int  # seconds; Anki updates an existing note only if this is newer than its own
    media: tuple[MediaFile, ...] = ()


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


def write_package(
    notes: Sequence[PackagedNote], note_type_mod: int, path: Path, keep: Path | None = None
) -> None:
    """Write `notes` to an `.apkg` at `path`; the old file stays until the new one is whole.

    With `keep`, a folder, the package's collection is also kept there, and the next package
    starts from it: only the notes that changed are written again.
    """
    model = _note_type()
    path.parent.mkdir(parents=True, exist_ok=True)
    # The collection is built in a temporary file beside the package, not in memory: a
    # large deck would otherwise be held three times (database, its copy, the zip buffer).
    collection = _temporary_file(path.parent, f".{path.name}.")
    segments: Path | None = None  # where this package's deflated segments are recorded
    record: IO[bytes] | None = None
    try:
        held = {note.guid: _what_note_holds(note) for note in notes}
        kept = _KeptCollection.load(keep, model) if keep is not None else None
        note_ids = kept.patch(collection, notes, held, note_type_mod) if kept else None
        if note_ids is None:
            note_ids = _build_collection(collection, model, notes, note_type_mod)
        media = {file.name: file for note in notes for file in note.media}
        shipped = sorted(media.values(), key=lambda f: f.name)
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
            atomic_write(path, write, binary=True)
        if keep is not None:
            recorded = (segments, deflater.segments) if segments and deflater.recorded else None
            _KeptCollection.keep(keep, model, collection, held, note_ids, recorded)
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


def _build_collection(
    collection: Path, model: genanki.Model, notes: Sequence[PackagedNote], note_type_mod: int
) -> dict[str, int]:
    """Write a new collection holding `notes`; return each note's id by GUID."""
    collection.write_bytes(b"")  # empty, even after a patch that failed half way
    db = sqlite3.connect(collection)
    try:
        db.execute("PRAGMA journal_mode = OFF")  # a scratch file: nothing to roll back to
        db.execute("PRAGMA synchronous = OFF")
        cursor = db.cursor()
        from genanki.apkg_col import APKG_COL
        from genanki.apkg_schema import APKG_SCHEMA

        cursor.executescript(APKG_SCHEMA)
        cursor.executescript(APKG_COL)
        decks = _write_decks_and_note_type(cursor, model, notes, note_type_mod)
        first_id = max((n.mod for n in notes), default=note_type_mod) * 1000
        note_ids = _insert_notes(cursor, model, notes, decks, _Ids(first_id))
        db.commit()
    finally:
        db.close()
    return note_ids


def _write_decks_and_note_type(
    cursor: sqlite3.Cursor,
    model: genanki.Model,
    notes: Sequence[PackagedNote],
    note_type_mod: int,
) -> dict[str, int]:
    """Store the decks `notes` use and the note type once; return deck ids by name.

    genanki's Package.write_to_db rewrites the decks and models JSON once per deck; a
    collection of many decks is written here once.
    """
    import genanki

    decks = {name: genanki.Deck(deck_id(name), name) for name in sorted({n.deck for n in notes})}
    (decks_json,) = cursor.execute("SELECT decks FROM col").fetchone()
    # Only genanki's Default deck stays: a deck that has lost its last note goes.
    all_decks = {k: v for k, v in json.loads(decks_json).items() if k == "1"}
    all_decks.update({str(deck.deck_id): deck.to_json() for deck in decks.values()})
    default_deck = next(iter(decks.values())).deck_id if decks else 1
    models = {str(NOTE_TYPE_ID): model.to_json(note_type_mod, default_deck)}
    cursor.execute(
        "UPDATE col SET decks = ?, models = ?", (json.dumps(all_decks), json.dumps(models))
    )
    return {name: deck.deck_id for name, deck in decks.items()}


def _insert_notes(
    cursor: sqlite3.Cursor,
    model: genanki.Model,
    notes: Sequence[PackagedNote],
    decks: dict[str, int],
    ids: _Ids,
) -> dict[str, int]:
    """Insert `notes` and their cards (genanki decides every row); return note ids by GUID."""
    import genanki

    # genanki stamps one timestamp on every note: writing note by note gives each its own mod.
    note_ids = {}
    rows = _RowCollector()
    for index, note in enumerate(notes, 1):
        genanki_note = genanki.Note(
            model, list(note.fields()), guid=note.guid, tags=list(note.tags)
        )
        note_ids[note.guid] = ids.next  # genanki draws the note's id first, then its cards'
        genanki_note.write_to_db(rows, note.mod, decks[note.deck], ids)
        if index % 2000 == 0 or index == len(notes):
            rows.flush(cursor)
    return note_ids


class _Ids:
    """Note and card ids for genanki, counting up; `next` is the one it will draw next."""

    def __init__(self, first: int) -> None:
        self.next = first

    def __iter__(self) -> _Ids:
        return self

    def __next__(self) -> int:
        self.next += 1
        return self.next - 1


class _KeptCollection:
    """The last package's collection, kept in the cache with what each of its notes holds.

    Rewriting a large collection costs most of a rebuild; patching the kept one costs only
    what changed. It is never trusted blindly: it is used only when its index, its size and
    its modification time are exactly as last written, and a patch that fails or ends with
    the wrong notes falls back to writing a new collection.
    """

    def __init__(
        self,
        folder: Path,
        model: genanki.Model,
        stat: list[int],
        held: dict[str, bytes],
        ids: dict[str, int],
        segments: dict[bytes, deflate.Segment],
    ) -> None:
        self.folder = folder
        self.model = model
        self.stat = stat  # size and mtime of the collection the index describes
        self.held = held  # GUID -> what the note holds (`_what_note_holds`)
        self.ids = ids  # GUID -> note id
        self.segments = segments  # the collection's deflated segments, by content

    @classmethod
    def load(cls, folder: Path, model: genanki.Model) -> _KeptCollection | None:
        index = read_checked(folder / _KEPT_INDEX)
        try:
            if not isinstance(index, dict) or index.get("format") != _kept_format(model):
                return None
            if _stat(folder / _KEPT_COLLECTION) != index["stat"]:
                return None
            held, ids = index["held"], index["ids"]
            if not isinstance(held, dict) or not isinstance(ids, dict) or held.keys() != ids.keys():
                return None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or damaged: write a new collection
        return cls(folder, model, index["stat"], held, ids, _kept_segments(folder, index))

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
        note_type_mod: int,
    ) -> dict[str, int] | None:
        """Copy the kept collection to `collection` and bring it to `notes`; None on failure."""
        try:
            shutil.copyfile(self.folder / _KEPT_COLLECTION, collection)
            if _stat(self.folder / _KEPT_COLLECTION) != self.stat:
                return None  # replaced meanwhile, by a build into the same folder
            db = sqlite3.connect(collection)
            try:
                note_ids = self._patch(db, notes, held, note_type_mod)
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
        decks = _write_decks_and_note_type(cursor, self.model, notes, note_type_mod)
        (top,) = cursor.execute(
            "SELECT max(coalesce((SELECT max(id) FROM notes), 0),"
            " coalesce((SELECT max(id) FROM cards), 0))"
        ).fetchone()
        first_id = max(top + 1, max((n.mod for n in notes), default=note_type_mod) * 1000)
        changed = [n for n in notes if n.guid not in kept]
        note_ids = {guid: self.ids[guid] for guid in kept}
        note_ids.update(_insert_notes(cursor, self.model, changed, decks, _Ids(first_id)))
        # One card per note, no more, no fewer: otherwise the kept collection was not what
        # its index said.
        counts = cursor.execute(
            "SELECT (SELECT count(*) FROM notes), (SELECT count(*) FROM cards)"
        ).fetchone()
        if counts != (len(notes), len(notes)) or len(note_ids) != len(notes):
            return None
        return note_ids

    @staticmethod
    def keep(
        folder: Path,
        model: genanki.Model,
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
            stat = _stat(collection)
            os.replace(collection, folder / _KEPT_COLLECTION)
            index: dict[str, object] = {
                "format": _kept_format(model),
                "stat": stat,
                "held": held,
                "ids": note_ids,  # the same GUIDs: every note written was given an id
            }
            if recorded is not None:
                segments_file, segments = recorded
                index["segments_stat"] = _stat(segments_file)
                os.replace(segments_file, folder / _KEPT_SEGMENTS)
                index["segments"] = {k: [s.offset, s.length, s.digest] for k, s in segments.items()}
            write_checked(folder / _KEPT_INDEX, index)


def _kept_segments(folder: Path, index: dict[str, object]) -> dict[bytes, deflate.Segment]:
    """The kept segments the index describes, if the file is as it was written."""
    try:
        if _stat(folder / _KEPT_SEGMENTS) != index.get("segments_stat"):
            return {}
        entries = index["segments"]
        if not isinstance(entries, dict):
            return {}
        return {
            bytes(k): deflate.Segment(int(o), int(n), bytes(d)) for k, (o, n, d) in entries.items()
        }
    except (OSError, KeyError, TypeError, ValueError):
        return {}


_KEPT_COLLECTION = "collection.anki2"
_KEPT_INDEX = "collection.index"
_KEPT_SEGMENTS = "collection.deflate"


def _kept_format(model: genanki.Model) -> str:
    """What the rows of a kept collection depend on besides its notes."""
    import genanki

    return f"3/{genanki.__version__}/{model.model_id}"


def _stat(path: Path) -> list[int]:
    info = os.stat(path)
    return [info.st_size, info.st_mtime_ns]


def _what_note_holds(note: PackagedNote) -> bytes:
    """A digest of everything one note's rows hold: its fields, tags, deck and mod."""
    parts = (note.deck, str(note.mod), note.fields_digest, *note.tags)
    return hashlib.sha256("\x1f".join(parts).encode()).digest()[:12]


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


@dataclass(frozen=True, slots=True)
class PackagedContent:
    """What a package holds for one note."""

    deck: str
    fields: tuple[str, ...]
    tags: tuple[str, ...]


def read_notes(path: Path, guids: set[str]) -> dict[str, PackagedContent]:
    """Return deck, fields and tags of the notes `guids` in the package at `path`, if readable.

    The collection is unpacked to a temporary file beside the package, and only the notes
    asked for are read: loading a 100,000-note collection whole took 850 MB.
    """
    if not path.is_file():
        return {}
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError:
        return {}
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
        return {}
    finally:
        with contextlib.suppress(FileNotFoundError):
            unpacked.unlink()


def _read_notes(collection: Path, guids: set[str]) -> dict[str, PackagedContent]:
    db = sqlite3.connect(collection)
    try:
        (decks_json,) = db.execute("SELECT decks FROM col").fetchone()
        deck_names = {int(k): v["name"] for k, v in json.loads(decks_json).items()}
        db.execute("CREATE TEMP TABLE wanted (guid TEXT PRIMARY KEY)")
        db.executemany("INSERT INTO wanted VALUES (?)", ((guid,) for guid in guids))
        rows = db.execute(
            "SELECT n.guid, n.flds, n.tags, MIN(c.did) FROM notes n"
            " JOIN wanted w ON w.guid = n.guid JOIN cards c ON c.nid = n.id GROUP BY n.id"
        ).fetchall()
    finally:
        db.close()
    return {
        guid: PackagedContent(
            deck_names.get(did, ""), tuple(flds.split("\x1f")), tuple(tags.split())
        )
        for guid, flds, tags, did in rows
    }


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
