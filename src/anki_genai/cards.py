"""Parsed pairs -> cards: the HTML fields, deck and tags of each note."""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass

from anki_genai.errors import SourceLocation
from anki_genai.parse import ParsedDocument
from anki_genai.render import Renderer


@dataclass(frozen=True, slots=True)
class Card:
    """One note's content, before it has an identity."""

    deck: str
    question: str  # HTML
    answer: str  # HTML
    context: str  # plain text
    source_file: str  # relative to the source root, '/'-separated
    location: SourceLocation
    question_text: str  # plain text, what identity matching compares
    tags: tuple[str, ...]
    explicit_id: str | None = None

    @property
    def source(self) -> str:
        return f"{self.source_file}:{self.location.line}"

    def fields(self) -> tuple[str, str, str, str, str]:
        """Return the note's fields in the note type's order."""
        return (
            self.question,
            self.answer,
            html.escape(self.context, quote=False),
            html.escape(self.source, quote=False),
            "",
        )

    @property
    def answer_digest(self) -> str:
        return _digest(self.answer)

    @property
    def digest(self) -> str:
        """Digest of what the note shows; the line number is left out on purpose.

        An edit higher up in a file shifts the lines of every pair below it; counting that as
        a change would restamp those notes and overwrite their users' own edits in Anki. The
        Source field is refreshed whenever the note changes for a real reason.
        """
        return _digest(self.question, self.answer, self.context, self.source_file, *self.tags)


def make_cards(
    document: ParsedDocument, deck: str, source_file: str, renderer: Renderer
) -> list[Card]:
    """Render every pair of `document` into a card of `deck`."""
    tags = (file_tag(source_file),)
    return [
        Card(
            deck=deck,
            question=renderer.render(pair.question_tokens, document.env),
            answer=renderer.render(pair.answer_tokens, document.env),
            context=pair.context,
            source_file=source_file,
            location=pair.location,
            question_text=pair.question_text,
            tags=tags,
            explicit_id=pair.explicit_id,
        )
        for pair in document.pairs
    ]


def file_tag(source_file: str) -> str:
    """Return an Anki tag for a source file: its stem, with spaces (not allowed in tags) as `_`."""
    stem = source_file.rsplit("/", 1)[-1].removesuffix(".md")
    return re.sub(r"\s+", "_", stem.strip()) or "untitled"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]
