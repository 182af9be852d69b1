"""Parsed pairs -> cards: the HTML fields, deck and tags of each note."""

from __future__ import annotations

import hashlib
import html
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from anki_genai.apkg.notetype import NoteFields
from anki_genai.embeds import defuse_media_tags
from anki_genai.errors import CacheChangedError, Diagnostic, Severity, SourceLocation
from anki_genai.media import MediaFile, resolve_images
from anki_genai.parse import ParsedDocument, normalize_question
from anki_genai.store import StoredHtml, read_stored_html
from anki_genai.tex import defuse_field, tex_problems

if TYPE_CHECKING:
    from anki_genai.render import Renderer


FIELD_SIZE_WARNING = 128 * 1024  # bytes of HTML in one field


@dataclass(frozen=True, slots=True)
class Card:
    """One note's content, before it has an identity. Make one with `Card.create`."""

    deck: str
    # Question and answer HTML, compressed; or where the cache holds that.
    packed_html: bytes | StoredHtml = field(repr=False)
    context: str  # plain text
    source_file: str  # relative to the source root, '/'-separated
    location: SourceLocation
    question_text: str  # plain text, what identity matching compares
    tags: tuple[str, ...]
    explicit_id: str | None
    media: tuple[MediaFile, ...]
    # Derived once, when the card is made: identity matching and duplicate checks ask for
    # them many times.
    question_key: str = field(repr=False)
    answer_digest: str = field(repr=False)
    digest: str = field(repr=False)  # of the content: question, answer, the user's own tags
    shown_digest: str = field(repr=False)  # of all the note shows, where it comes from too

    @classmethod
    def create(
        cls,
        *,
        deck: str,
        question: str,
        answer: str,
        context: str,
        source_file: str,
        location: SourceLocation,
        question_text: str,
        tags: tuple[str, ...],
        own_tags: tuple[str, ...] = (),
        explicit_id: str | None = None,
        media: tuple[MediaFile, ...] = (),
    ) -> Card:
        # A note changes (gets a new mod, so Anki's import overwrites the user's own edits
        # in Anki) only when its content does: the question, the answer and the tags the
        # user gave. Where it comes from (file, heading, line: the Source and Context fields
        # and the file's tag) travels with its next real change, so renaming a file, moving
        # a pair or retitling a section overwrites nothing. `shown_digest` covers it all, for
        # the package, and is how a previous release's state files recorded a note.
        content = text_digest(question, answer, *own_tags)
        shown = text_digest(question, answer, context, source_file, *tags)
        # The HTML is held compressed: a build of 100,000 notes would otherwise keep a
        # quarter of a gigabyte of it in memory between rendering and packaging.
        packed = zlib.compress(f"{question}\x00{answer}".encode(), 1)
        return cls(
            deck, packed, context, source_file, location, question_text, tags, explicit_id,
            media, normalize_question(question_text), text_digest(answer), content, shown,
        )  # fmt: skip

    def stored_at(self, where: StoredHtml) -> Card:
        """This card, holding where its HTML was stored instead of the HTML."""
        # The constructor, not dataclasses.replace: three times faster, and a cold build
        # does this for every card.
        return Card(
            self.deck, where, self.context, self.source_file, self.location,
            self.question_text, self.tags, self.explicit_id, self.media, self.question_key,
            self.answer_digest, self.digest, self.shown_digest,
        )  # fmt: skip

    def packed(self) -> bytes:
        """The question and answer HTML, compressed; read from the cache if it lies there."""
        packed = self.packed_html
        if isinstance(packed, bytes):
            return packed
        stored = read_stored_html(packed)
        if stored is None:
            raise CacheChangedError(
                f"{packed.entry.parent.parent}: the cache changed while this build ran "
                "(another build into the same folder?); build again"
            )
        return stored

    def html(self) -> tuple[str, str]:
        """Return the question and answer HTML."""
        question, _, answer = zlib.decompress(self.packed()).decode().partition("\x00")
        return question, answer

    @property
    def question(self) -> str:
        return self.html()[0]

    @property
    def answer(self) -> str:
        return self.html()[1]

    @property
    def source(self) -> str:
        return f"{self.source_file}:{self.location.line}"

    def fields(self) -> NoteFields:
        """Return the note's fields."""
        question, answer = self.html()
        # Plain text, shown on the card too: Anki's MathJax and sound tags would read it.
        context, source = (
            defuse_media_tags(defuse_field(html.escape(text, quote=False)), {})
            for text in (self.context, self.source)
        )
        return NoteFields(question, answer, context, source)


def make_cards(
    document: ParsedDocument, deck: str, source_file: str, renderer: Renderer, root: Path
) -> tuple[list[Card], list[Diagnostic]]:
    """Render every pair of `document` into a card of `deck`; report media and math problems."""
    own_tags = tuple(dict.fromkeys(safe_tag(t) for t in document.tags))
    tags = tuple(dict.fromkeys((*own_tags, file_tag(source_file))))
    cards: list[Card] = []
    problems: list[Diagnostic] = []
    for pair in document.pairs:
        tokens = (*pair.question_tokens, *pair.answer_tokens)
        media, image_problems = resolve_images(tokens, document.path, root)
        problems.extend(image_problems)
        problems.extend(tex_problems(tokens, document.path))
        names = {src: file.name for src, file in media.items()}
        answer = renderer.render(pair.answer_tokens, document.env, names)
        if len(answer.encode()) > FIELD_SIZE_WARNING:
            problems.append(
                Diagnostic(
                    pair.location,
                    f"answer is {len(answer.encode()) // 1024} KiB of HTML; AnkiDroid becomes "
                    f"slow above {FIELD_SIZE_WARNING // 1024} KiB, consider splitting the question",
                    Severity.WARNING,
                )
            )
        cards.append(
            Card.create(
                deck=deck,
                question=renderer.render(pair.question_tokens, document.env, names),
                answer=answer,
                context=pair.context,
                source_file=source_file,
                location=pair.location,
                question_text=pair.question_text,
                tags=tags,
                own_tags=own_tags,
                explicit_id=pair.explicit_id,
                media=tuple(dict.fromkeys(media.values())),
            )
        )
    return cards, problems


def file_tag(source_file: str) -> str:
    """Return an Anki tag for a source file: its stem, made safe."""
    return safe_tag(source_file.rsplit("/", 1)[-1].removesuffix(".md")) or "untitled"


def safe_tag(tag: str) -> str:
    """Anki tags cannot hold spaces: join words with `_`; Chinese and `::` levels are kept."""
    return re.sub(r"\s+", "_", tag.strip())


def text_digest(*parts: str) -> str:
    """The digest a card keeps of its question and answer HTML (and tags): the state's too."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def merge_duplicates(cards: Sequence[Card]) -> tuple[list[Card], list[Diagnostic]]:
    """Keep one card per identical question and answer; warn about every repeated question.

    Two pairs with one explicit id would share a GUID, and Anki could then never update
    either: the second is an error and is left out.
    """
    first_seen: dict[tuple[str, str], Card] = {}
    first_question: dict[str, Card] = {}
    explicit_ids: dict[str, Card] = {}
    kept: list[Card] = []
    problems: list[Diagnostic] = []
    for card in cards:
        if card.explicit_id is not None:
            owner = explicit_ids.setdefault(card.explicit_id, card)
            if owner is not card:
                problems.append(
                    Diagnostic(
                        card.location,
                        f"anki-genai-id {card.explicit_id!r} is already used at {owner.location}; "
                        "give each pair its own id",
                    )
                )
                continue
        question = card.question_key
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
