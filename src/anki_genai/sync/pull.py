"""`pull`: edits made in Anki come back to the Markdown.

A note of the project is found in the export by its GUID (the GUID the next build gives the
pair, from the state file, exactly as a build matches it). Three versions of its question
and answer are compared:
- what the last build sent: when the pair's digest is the one the state recorded, the pair
  as the Markdown renders it now (the digest is that of this HTML); when the Markdown has
  changed since, the note in the previous package in the output folder;
- what Anki has now (the export);
- what the Markdown gives now.
Anki differs from what was sent and the Markdown does not: an edit to bring back. Both
differ (and not into the same thing): a conflict. The edit is mapped as text (`htmlmap`),
and kept only if rendering the edited Markdown gives exactly Anki's field and leaves every
other pair of the file as it was.

Applied edits are recorded in the state with the note's mod in Anki: the next build then
sends the note with that mod, which Anki's "update if newer" leaves alone, so nothing is
overwritten and the note is not rewritten on the next sync.
"""

from __future__ import annotations

import codecs
import difflib
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from anki_genai.sync import adapter, collection, htmlmap
from anki_genai.sync.adapter import AnkiGenaiError, BuildOptions, Card, SourceLocation, Status

EDITABLE = ("Question", "Answer")


class Outcome(enum.Enum):
    EDIT = "edit"  # can be written into the Markdown exactly
    UNMAPPABLE = "unmappable"  # reported with a suggestion
    CONFLICT = "conflict"  # changed in Anki and in the Markdown


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of a note: as the last build sent it, as Anki has it, as the Markdown gives."""

    name: str
    sent: str | None  # None when the last package is gone and the sources have changed
    anki: str
    markdown: str


@dataclass(frozen=True, slots=True)
class PulledNote:
    """A note edited in Anki since the last build, and what pull makes of it."""

    location: SourceLocation
    guid: str
    question: str  # plain text, to name the note
    outcome: Outcome
    fields: tuple[FieldChange, ...]  # the fields edited in Anki
    reason: str = ""  # for UNMAPPABLE and CONFLICT
    diff: str = ""  # for EDIT: the Markdown before and after, as a unified diff
    suggestions: tuple[tuple[str, str], ...] = ()  # for UNMAPPABLE: (field, Markdown)


@dataclass(frozen=True, slots=True)
class PullResult:
    export: Path
    found: int  # notes of the project in the export
    notes: tuple[PulledNote, ...]
    applied: bool
    written: tuple[Path, ...] = ()
    state_path: Path | None = None

    @property
    def exit_code(self) -> int:
        """1 when something needs the user: a conflict or an edit not written back."""
        return int(any(n.outcome is not Outcome.EDIT for n in self.notes))


def pull(
    export: Path,
    options: BuildOptions,
    *,
    apply: bool = False,
    on_wait: Callable[[], None] = lambda: None,
) -> PullResult:
    """Find the project's notes edited in `export`; with `apply`, write the edits back."""
    collection.require_anki("pull")
    project = adapter.read_project(options)
    sent = adapter.last_sent(project)
    guids = {n.guid for n in project.notes}
    with collection.read_export(export) as col:
        in_anki = collection.project_notes(col, guids)
    candidates: list[_Candidate] = []
    pulled: list[PulledNote] = []
    for note in sorted(project.notes, key=lambda n: _place(n.card.location)):
        anki_note = in_anki.get(note.guid)
        if anki_note is None:
            continue
        changes, conflict = _compare(note, anki_note, sent.get(note.guid))
        if not changes:
            continue
        if conflict:
            reason = (
                "changed in Anki and in the Markdown since the last build"
                if all(c.sent is not None for c in changes)
                else "changed in Anki, and the Markdown changed since the last build, whose "
                "package is gone: which is newer cannot be told"
            )
            pulled.append(_note(note, Outcome.CONFLICT, changes, reason=reason))
        else:
            candidates.append((note, anki_note, changes))
    files = _FileEdits.by_file(candidates, project, options)
    for edits in files:
        pulled.extend(edits.map())
    pulled.sort(key=lambda n: _place(n.location))
    if not apply:
        return PullResult(export, len(in_anki), tuple(pulled), applied=False)
    written: list[Path] = []
    with adapter.project_lock(project, on_wait):
        for edits in files:
            if edits.write():
                written.append(edits.path)
        remembered = [
            (guid, card, mod)
            for edits in files
            for guid, card, mod in edits.accepted
            if edits.status[guid] is Status.UNCHANGED
        ]
        if remembered:
            adapter.remember_mods(project, remembered)
    return PullResult(export, len(in_anki), tuple(pulled), True, tuple(written), project.state_path)


def _place(location: SourceLocation) -> tuple[str, int]:
    return str(location.path), location.line


def _compare(
    note: adapter.ProjectNote, anki_note: collection.AnkiNote, sent: adapter.Sent | None
) -> tuple[list[FieldChange], bool]:
    """The fields edited in Anki (none if Anki shows what the Markdown gives), and whether
    the Markdown changed too."""
    markdown = dict(zip(EDITABLE, note.card.html(), strict=True))
    if note.status is Status.UNCHANGED:
        # The state's digest is that of this very HTML: what the last build sent, or what
        # the last pull wrote (and recorded) after it.
        last = dict(markdown)
    elif sent is not None:
        last = dict(zip(EDITABLE, sent.fields[:2], strict=True))
    else:
        last = {}
    anki = {name: anki_note.field(name) for name in EDITABLE}
    if all(htmlmap.same_html(anki[f], markdown[f]) for f in EDITABLE):
        return [], False  # nothing to bring back: the Markdown already says it
    edited = [f for f in EDITABLE if f not in last or not htmlmap.same_html(anki[f], last[f])]
    if not edited:
        return [], False  # edited only in the Markdown: the next build sends it
    changes = [FieldChange(f, last.get(f), anki[f], markdown[f]) for f in edited]
    markdown_changed = any(
        f not in last or not htmlmap.same_html(markdown[f], last[f]) for f in EDITABLE
    )
    return changes, markdown_changed


def _note(
    note: adapter.ProjectNote,
    outcome: Outcome,
    changes: list[FieldChange],
    **extra: object,
) -> PulledNote:
    return PulledNote(
        note.card.location,
        note.guid,
        note.card.question_text,
        outcome,
        tuple(changes),
        **extra,  # type: ignore[arg-type]
    )


# A note edited in Anki only: the pair, the note in Anki, the fields edited there.
_Candidate = tuple[adapter.ProjectNote, collection.AnkiNote, list[FieldChange]]


@dataclass
class _FileEdits:
    """The edits to one Markdown file, mapped and checked against a fresh rendering."""

    path: Path
    project: adapter.Project
    options: BuildOptions
    notes: list[_Candidate]
    data: bytes = b""
    bom: bytes = b""
    original: str = ""
    text: str = ""
    accepted: list[tuple[str, Card, int]] = field(default_factory=list)
    status: dict[str, Status] = field(default_factory=dict)

    @classmethod
    def by_file(
        cls,
        candidates: list[_Candidate],
        project: adapter.Project,
        options: BuildOptions,
    ) -> list[_FileEdits]:
        grouped: dict[Path, list[_Candidate]] = {}
        for item in candidates:
            grouped.setdefault(item[0].card.location.path, []).append(item)
        return [cls(path, project, options, notes) for path, notes in grouped.items()]

    def _read(self) -> None:
        self.data = self.path.read_bytes()
        utf8 = codecs.lookup(self.options.encoding).name == "utf-8"
        if utf8 and self.data.startswith(codecs.BOM_UTF8):
            self.bom = codecs.BOM_UTF8
        self.original = self.data[len(self.bom) :].decode(self.options.encoding)
        self.text = self.original

    def map(self) -> list[PulledNote]:
        """Map each note's edit onto the file's text; keep those that render exactly."""
        self._read()
        first = self.notes[0][0].card
        cards = adapter.file_cards(self.text, first, self.project.root, self.options)
        lines = [c.location.line for c in cards]
        results: list[PulledNote] = []
        for note, anki_note, changes in self.notes:
            self.status[note.guid] = note.status
            try:
                index = lines.index(note.card.location.line)
            except ValueError:
                results.append(self._unmappable(note, changes, "its pair was not found again"))
                continue
            outcome = self._try(note, anki_note, changes, cards, index)
            if isinstance(outcome, PulledNote):
                results.append(outcome)
                continue
            before, cards = outcome
            diff = _diff(self.path, before, self.text)
            results.append(_note(note, Outcome.EDIT, changes, diff=diff))
        return results

    def _try(
        self,
        note: adapter.ProjectNote,
        anki_note: collection.AnkiNote,
        changes: list[FieldChange],
        cards: list[Card],
        index: int,
    ) -> PulledNote | tuple[str, list[Card]]:
        """The note's edit applied to the text, and the file's cards then; or why not."""
        start = _offset(self.text, cards[index].location.line)
        end = (
            _offset(self.text, cards[index + 1].location.line)
            if index + 1 < len(cards)
            else len(self.text)
        )
        span = self.text[start:end]
        replacements: list[htmlmap.Replacement] = []
        for change in changes:
            assert change.sent is not None
            found = htmlmap.map_edit(span, change.sent, change.anki)
            if isinstance(found, htmlmap.Unmappable):
                return self._unmappable(note, changes, found.reason)
            replacements.extend(found)
        edited = span
        for r in sorted(replacements, key=lambda r: r.start, reverse=True):
            edited = edited[: r.start] + r.text + edited[r.end :]
        candidate = self.text[:start] + edited + self.text[end:]
        rendered = adapter.file_cards(candidate, note.card, self.project.root, self.options)
        wanted = {name: anki_note.field(name) for name in ("Question", "Answer")}
        if len(rendered) != len(cards) or not all(
            htmlmap.same_html(a, b)
            for i, (new, old) in enumerate(zip(rendered, cards, strict=True))
            for a, b in zip(
                new.html(),
                (wanted["Question"], wanted["Answer"]) if i == index else old.html(),
                strict=True,
            )
        ):
            return self._unmappable(
                note, changes, "the Markdown written back would not give exactly Anki's card"
            )
        before, self.text = self.text, candidate
        self.accepted.append((note.guid, rendered[index], anki_note.mod))
        return before, rendered

    def _unmappable(
        self, note: adapter.ProjectNote, changes: list[FieldChange], reason: str
    ) -> PulledNote:
        suggestions = tuple((c.name, htmlmap.suggestion(c.anki)) for c in changes)
        return _note(note, Outcome.UNMAPPABLE, changes, reason=reason, suggestions=suggestions)

    def write(self) -> bool:
        """Write the accepted edits; every byte outside them stays as it was."""
        if self.text == self.original:
            return False
        if self.path.read_bytes() != self.data:
            raise AnkiGenaiError(
                f"{self.path}: changed while pulling; nothing written to it, run pull again"
            )
        data = self.bom + self.text.encode(self.options.encoding)
        adapter.atomic_write(self.path, lambda handle: handle.write(data), binary=True)
        return True


def _diff(path: Path, before: str, after: str) -> str:
    """The change as a unified diff of the file's lines, one line of context."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), str(path), str(path), n=1
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _offset(text: str, line: int) -> int:
    """Where 1-based `line` starts in `text`."""
    offset = 0
    for _ in range(line - 1):
        found = text.find("\n", offset)
        if found < 0:
            return len(text)
        offset = found + 1
    return offset
