"""The pipeline: Markdown files -> pairs -> cards -> identities -> `.apkg` and state file."""

from __future__ import annotations

import html
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from anki_genai import identity, package
from anki_genai.cards import Card, make_cards
from anki_genai.errors import Diagnostic, Severity, SourceError, StrictModeError
from anki_genai.identity import Candidate, State, Status
from anki_genai.parse import ParsedDocument, markdown_parser, normalize_question, parse_markdown
from anki_genai.render import Renderer

REMOVED_ANSWER = "(removed from the Markdown sources)"
REMOVED_DECK = "anki-genai removed"


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """What the user asked for."""

    sources: tuple[Path, ...] = (Path("source"),)
    output: Path = Path("build")  # a folder, or a file ending in .apkg
    deck: str | None = None  # put every note into this deck
    strict: bool = False  # any problem fails the build and nothing is written
    dry_run: bool = False  # plan only; write nothing


@dataclass(frozen=True, slots=True)
class PlannedNote:
    """A note of the package with its identity and what the build does to it."""

    card: Card | None  # None for notes removed from the sources
    guid: str
    mod: int
    status: Status
    previous_question: str | None = None  # for reworded and removed notes


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What a build did (or, in a dry run, would do)."""

    package_path: Path
    state_path: Path
    files: int
    notes: tuple[PlannedNote, ...]
    diagnostics: tuple[Diagnostic, ...]
    written: bool
    counts: Counter[Status] = field(default_factory=Counter)

    @property
    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self.diagnostics)


def build(options: BuildOptions) -> BuildResult:
    """Build the package for `options.sources`, updating the state file beside them."""
    root = source_root(options.sources)
    files = find_sources(options.sources)
    md = markdown_parser()
    renderer = Renderer(md)
    diagnostics: list[Diagnostic] = []
    cards: list[Card] = []
    for path in files:
        document = parse_markdown(read_source(path), path, md)
        diagnostics.extend(document.diagnostics)
        resolved = path.resolve()
        relative = (
            resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else path.name
        )
        deck = options.deck or deck_name(document)
        cards.extend(make_cards(document, deck, relative, renderer))
    cards, duplicate_problems = _merge_duplicates(cards)
    diagnostics.extend(duplicate_problems)

    state_path = root / identity.STATE_FILE_NAME
    state = identity.load_state(state_path)
    now = identity.build_timestamp(state)
    candidates = [
        Candidate(c.question_text, c.answer_digest, c.digest, c.source_file, c.explicit_id)
        for c in cards
    ]
    plan = identity.assign_identities(candidates, state, now)
    note_type_digest = package.note_type_digest()
    note_type_mod = state.note_type_mod if state.note_type_digest == note_type_digest else now

    package_path = output_path(options, root, {c.deck for c in cards})
    tombstones = _tombstones(plan, state, package_path)
    newly_removed = set(plan.newly_removed)
    notes = tuple(
        PlannedNote(card, a.guid, a.mod, a.status, a.previous_question)
        for card, a in zip(cards, plan.assignments, strict=True)
    ) + tuple(
        PlannedNote(
            None,
            r.guid,
            r.mod,
            Status.REMOVED if r.guid in newly_removed else Status.UNCHANGED,
            previous_question=r.question,
        )
        for r in tombstones
    )
    counts = Counter(n.status for n in notes if n.card is not None)
    counts[Status.REMOVED] = len(newly_removed)

    result = BuildResult(
        package_path, state_path, len(files), notes, tuple(diagnostics), False, counts
    )
    if options.strict and diagnostics:
        raise StrictModeError(tuple(diagnostics))
    if options.dry_run:
        return result

    packaged = [
        package.PackagedNote(n.guid, n.card.deck, n.card.fields(), n.card.tags, n.mod)
        for n in notes
        if n.card is not None
    ] + [
        package.PackagedNote(
            r.guid, r.deck, _five(r.fields), (*r.tags, identity.REMOVED_TAG), r.mod
        )
        for r in tombstones
    ]
    # The package goes first: a state saved without its package would claim that Anki has
    # content it never received. A crash between the two only makes the next build resend.
    package.write_package(packaged, note_type_mod, package_path)
    new_state = identity.updated_state(
        candidates, plan, tombstones, note_type_digest, note_type_mod
    )
    identity.save_state(new_state, state_path)
    return BuildResult(
        package_path, state_path, len(files), notes, tuple(diagnostics), True, counts
    )


def _five(fields: Sequence[str]) -> tuple[str, str, str, str, str]:
    padded = (*fields, "", "", "", "", "")[:5]
    return (padded[0], padded[1], padded[2], padded[3], padded[4])


def _tombstones(
    plan: identity.IdentityPlan, state: State, previous_package: Path
) -> list[identity.NoteRecord]:
    """Give every removed note the content and deck it last had in Anki."""
    fresh = set(plan.newly_removed)
    previous = package.read_notes(previous_package, fresh) if fresh else {}
    tombstones = []
    for record in plan.removed:
        if record.guid in fresh:
            known = previous.get(record.guid)
            if known is not None:
                record = replace(
                    record, deck=known.deck or REMOVED_DECK, fields=known.fields, tags=known.tags
                )
            else:
                # The previous package is gone, so its exact content is unknown: say so on the card.
                fields = (
                    html.escape(record.question),
                    REMOVED_ANSWER,
                    "",
                    html.escape(record.file),
                    "",
                )
                record = replace(record, deck=REMOVED_DECK, fields=fields, tags=())
        tombstones.append(record)
    return tombstones


def _merge_duplicates(cards: Sequence[Card]) -> tuple[list[Card], list[Diagnostic]]:
    """Keep one card per identical question and answer; warn about every repeated question."""
    first_seen: dict[tuple[str, str], Card] = {}
    first_question: dict[str, Card] = {}
    kept: list[Card] = []
    problems: list[Diagnostic] = []
    for card in cards:
        question = normalize_question(card.question_text)
        key = (question, card.answer_digest)
        if key in first_seen:
            problems.append(
                Diagnostic(
                    card.location,
                    f"same question and answer as {first_seen[key].location}; built once",
                    Severity.WARNING,
                )
            )
            continue
        if question in first_question:
            problems.append(
                Diagnostic(
                    card.location,
                    f"same question as {first_question[question].location} with another answer; "
                    "built as two notes (reword one question to tell them apart)",
                    Severity.WARNING,
                )
            )
        first_seen[key] = card
        first_question.setdefault(question, card)
        kept.append(card)
    return kept, problems


# --- sources ----------------------------------------------------------------------------------


def source_root(sources: Sequence[Path]) -> Path:
    """Return the folder the state file lives in: the common folder of all sources."""
    folders = [p if p.is_dir() else p.parent for p in sources]
    return Path(os.path.commonpath([f.resolve() for f in folders])) if folders else Path.cwd()


def find_sources(sources: Sequence[Path]) -> list[Path]:
    """Return every Markdown file in `sources`, as the user named them; folders are searched."""
    found: dict[Path, Path] = {}  # resolved -> as named, so a file given twice is read once
    for source in sources:
        if not source.exists():
            raise SourceError(f"{source}: no such file or folder")
        paths = sorted(_walk_markdown(source)) if source.is_dir() else [source]
        for path in paths:
            found.setdefault(path.resolve(), path)
    return list(found.values())


def _walk_markdown(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        # Hidden folders and build outputs are never sources.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "build")
        for name in filenames:
            if name.endswith(".md") and not name.startswith("."):
                yield Path(dirpath) / name


def read_source(path: Path) -> str:
    """Read a Markdown file as UTF-8 (with or without BOM)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SourceError(
            f"{path}:{line}: not valid UTF-8; convert it, e.g. "
            f"`iconv -f gbk -t utf-8 '{path}' > converted.md`"
        ) from None


def deck_name(document: ParsedDocument) -> str:
    """Name a file's deck after its title heading, or else its file name."""
    return document.title or document.path.stem


def output_path(options: BuildOptions, root: Path, decks: set[str]) -> Path:
    """Return where the package goes: `-o FILE.apkg`, or the output folder and a derived name."""
    if options.output.suffix == ".apkg":
        return options.output
    name = next(iter(decks)) if len(decks) == 1 else root.name
    return options.output / (_safe_file_name(name) + ".apkg")


def _safe_file_name(name: str) -> str:
    return re.sub(r'[\\/:*?"<>|\s]+', "-", name).strip("-.") or "deck"
