"""The record a whole-project build leaves in the cache for the next rebuild (`incremental`):
what every file yielded (its key, deck, problems, images and its notes' GUIDs), and what the
build rested on (options, the state file it wrote, its package)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anki_genai import identity
from anki_genai.cache import Cache, FileResult
from anki_genai.cards import Card
from anki_genai.errors import Diagnostic
from anki_genai.parse import normalize_question
from anki_genai.sources import FileJob
from anki_genai.staterecords import NoteRecord
from anki_genai.statetext import plain_guid

RECORD_NAME = "build.record"  # in the cache folder
_FORMAT = 2  # 2: `claimed_keys` also holds the questions of notes settled by question


@dataclass(frozen=True, slots=True)
class FileRecord:
    """What one source file yielded at the last build."""

    key: str
    deck: str
    # The GUIDs of its notes, in order, duplicates merged away: as read, one string where
    # they can be, split only when asked for (a kept file's are not).
    notes: tuple[str, ...] | str
    settled: bool  # matching gives every note its GUID again at its first steps (`_settled`)
    # The questions (normalised) of its notes claimed by their id or question, not by the
    # GUID their question gives: a changed pair with one of them is matched with every file.
    claimed_keys: tuple[str, ...]
    entangled: bool  # shared a question or an id with another file's pair
    diagnostics: tuple[list[Any], ...]  # its own problems, then its duplicates'
    merged: tuple[list[Any], ...]
    media: tuple[tuple[str, str, int, int], ...]  # path, name, size, mtime

    @property
    def guids(self) -> tuple[str, ...]:
        if isinstance(self.notes, str):
            return tuple(self.notes.split("\x1f")) if self.notes else ()
        return self.notes

    @property
    def count(self) -> int:
        if isinstance(self.notes, str):
            return self.notes.count("\x1f") + 1 if self.notes else 0
        return len(self.notes)

    def to_list(self) -> list[object]:
        # The GUIDs as one string where they can be: a large deck's record then reads back
        # as a few thousand strings, not a hundred thousand.
        guids: object = self.notes
        if not isinstance(self.notes, str):
            joined = "\x1f".join(self.notes)
            fits = joined.count("\x1f") == max(len(self.notes) - 1, 0)
            guids = joined if fits else list(self.notes)
        return [self.key, self.deck, guids, self.settled, list(self.claimed_keys),
                self.entangled, list(self.diagnostics), list(self.merged),
                [list(m) for m in self.media]]  # fmt: skip

    @classmethod
    def from_list(cls, data: list[Any]) -> FileRecord:
        key, deck, guids, settled, claimed, entangled, diagnostics, merged, media = data
        notes = guids if isinstance(guids, str) else tuple(guids)
        return cls(
            str(key), str(deck), notes, bool(settled), tuple(claimed), bool(entangled),
            tuple(diagnostics), tuple(merged),
            tuple((str(p), str(n), int(s), int(m)) for p, n, s, m in media),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class BuildRecord:
    """What the last whole-project build left, for the next one to start from."""

    inputs: str  # options, tool versions and note type, as `inputs_key` says
    state_digest: str  # of the state file it wrote
    latest_mod: int  # the newest mod in that state
    package: str  # the package it wrote
    tombstones: tuple[str, ...]
    files: dict[str, FileRecord]  # by relative path, in the sources' order


def inputs_key(options: object, environment: str, note_type_digest: str) -> str:
    """What every file's notes depend on besides the file: a change means a full build."""
    return hashlib.sha256(
        f"{options!r}\x1e{environment}\x1e{note_type_digest}".encode()
    ).hexdigest()


def load_record(cache: Cache) -> BuildRecord | None:
    from anki_genai.store import read_checked

    if cache.folder is None:
        return None
    data = read_checked(cache.folder / RECORD_NAME)
    try:
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            return None
        files = {str(k): FileRecord.from_list(v) for k, v in data["files"]}
        return BuildRecord(
            str(data["inputs"]),
            str(data["state_digest"]),
            int(data["latest_mod"]),
            str(data["package"]),
            tuple(data["tombstones"]),
            files,
        )
    except (KeyError, TypeError, ValueError):
        return None


def save_record(cache: Cache, record: BuildRecord | None) -> None:
    """Write the record (None: remove it, so the next build is a full one); best effort."""
    import contextlib

    from anki_genai.store import write_checked

    if cache.folder is None:
        return
    path = cache.folder / RECORD_NAME
    with contextlib.suppress(OSError):
        if record is None:
            path.unlink(missing_ok=True)
            return
        cache.folder.mkdir(parents=True, exist_ok=True)
        write_checked(
            path,
            {
                "format": _FORMAT,
                "inputs": record.inputs,
                "state_digest": record.state_digest,
                "latest_mod": record.latest_mod,
                "package": record.package,
                "tombstones": list(record.tombstones),
                "files": [[k, v.to_list()] for k, v in record.files.items()],
            },
        )


def file_records(
    jobs: Sequence[FileJob],
    keys: Sequence[str],
    results: Sequence[FileResult],
    kept: Sequence[Card],
    guids: Sequence[str],
    merged: Sequence[Diagnostic],
    project: str,
    tombstones: Iterable[NoteRecord] = (),
) -> dict[str, FileRecord]:
    """Each file's record, from its result, its cards kept after merging duplicates (in
    order, with `guids`), and the problems merging found; `project` is the state's id and
    `tombstones` the state's other notes."""
    by_file: dict[str, list[tuple[Card, str]]] = {}
    for card, guid in zip(kept, guids, strict=True):
        by_file.setdefault(card.source_file, []).append((card, guid))
    relative_of = {job.path: job.relative for job in jobs}
    merged_by_file: dict[str, list[list[Any]]] = {}
    for problem in merged:
        relative = relative_of.get(problem.location.path, "")
        merged_by_file.setdefault(relative, []).append(problem.to_list())
    owners: dict[str, str] = {}
    entangled: set[str] = set()
    for job, result in zip(jobs, results, strict=True):
        for card in result.cards:
            marks = [f"q{card.question_key}"]
            if card.explicit_id is not None:
                marks.append(f"i{card.explicit_id}")
            for mark in marks:
                owner = owners.setdefault(mark, job.relative)
                if owner != job.relative:
                    entangled.update((owner, job.relative))
    sharing = Counter(card.question_key for card in kept)
    sharing.update(normalize_question(r.question) for r in tombstones)
    records = {}
    for job, key, result in zip(jobs, keys, results, strict=True):
        notes = by_file.get(job.relative, [])
        own = [_own(card, guid, project) for card, guid in notes]
        records[job.relative] = FileRecord(
            key=key,
            deck=notes[0][0].deck if notes else "",
            notes=tuple(guid for _, guid in notes),
            settled=all(
                _settled(card, guid, is_own, sharing)
                for (card, guid), is_own in zip(notes, own, strict=True)
            ),
            claimed_keys=tuple(
                card.question_key
                for (card, _), is_own in zip(notes, own, strict=True)
                if card.explicit_id is not None or not is_own
            ),
            entangled=job.relative in entangled,
            diagnostics=tuple(d.to_list() for d in result.diagnostics),
            merged=tuple(merged_by_file.get(job.relative, ())),
            media=_media(result),
        )
    return records


def _settled(card: Card, guid: str, own: bool, sharing: Counter[str]) -> bool:
    """Whether the first steps of matching give `card` its note `guid` again, whatever
    else changes: its `own` GUID (its id's or its question's, the project's or the legacy
    one); or, for a pair without an id whose note kept its GUID through an edited question,
    its question, when no other note (tombstones too) has it. A changed pair that gains
    that question is matched with every file (`claimed_keys`); one that gains the GUID's
    own question meets the GUID itself."""
    if not plain_guid(guid):
        return False
    return own or (card.explicit_id is None and sharing[card.question_key] == 1)


def _own(card: Card, guid: str, project: str) -> bool:
    """Whether `guid` is the one `card`'s id or question gives (`identity.own_guids`)."""
    return identity.is_own_guid(guid, project, card.question_key, card.explicit_id)


def _media(result: FileResult) -> tuple[tuple[str, str, int, int], ...]:
    from anki_genai.store import file_stat

    files = {(str(m.path), m.name) for card in result.cards for m in card.media}
    media = []
    for path, name in sorted(files):
        try:
            size, mtime = file_stat(Path(path))
        except OSError:
            size, mtime = -1, -1  # gone: the file is read again next time
        media.append((path, name, size, mtime))
    return tuple(media)


def _media_unchanged(media: Sequence[tuple[str, str, int, int]]) -> bool:
    from anki_genai.store import file_stat

    try:
        return all(file_stat(Path(p)) == [s, m] for p, _, s, m in media)
    except OSError:
        return False
