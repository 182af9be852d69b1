"""Markdown text -> question/answer pairs, found in markdown-it tokens (never in raw text)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.dollarmath import dollarmath_plugin

from anki_genai.errors import Diagnostic, Severity, SourceError, SourceLocation

QUESTION_WORDS = frozenset({"题目"})
ANSWER_WORDS = frozenset({"答案"})
_COLONS = ":："
# A heading's leading number ("1. ", "12、", "3) ") is numbering, not part of its name.
_HEADING_NUMBER = re.compile(r"^\s*\d+(?:\.\d+)*\s*[.、)）:：]?\s+|^\s*\d+[.、)）]\s*")
_EXPLICIT_ID = re.compile(r"^<!--\s*anki-genai-id\s*:\s*([^\s>]+)\s*-->$")


@dataclass(frozen=True, slots=True)
class QAPair:
    """One question and its answer, as token slices of the parsed document."""

    question_tokens: tuple[Token, ...]
    answer_tokens: tuple[Token, ...]
    question_text: str  # plain text, what identity matching compares
    context: str  # the section heading the pair sits in, without its number
    location: SourceLocation  # the question marker's line
    explicit_id: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """Everything one Markdown file yields: its title, pairs and problems."""

    path: Path
    title: str | None
    pairs: tuple[QAPair, ...]
    diagnostics: tuple[Diagnostic, ...]
    env: dict[str, object] = field(hash=False, compare=False)


def markdown_parser() -> MarkdownIt:
    """Return the parser every stage shares: CommonMark, GFM tables and strikethrough, math."""
    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    # No space inside the dollars and no digit right after the closing one, so that
    # "costs $5 and $10" stays text while $x_1$ is math.
    return md.use(dollarmath_plugin, allow_space=False, allow_digits=False, allow_labels=False)


def parse_markdown(text: str, path: Path, md: MarkdownIt | None = None) -> ParsedDocument:
    """Find every question/answer pair in `text`, the content of the file at `path`."""
    md = md or markdown_parser()
    env: dict[str, object] = {}
    try:
        tokens = md.parse(normalize_text(text), env)
    except RecursionError:
        # markdown-it caps nesting, but inline parsing of pathological input can still recurse.
        raise SourceError(
            "too deeply nested to parse; simplify it", SourceLocation(path, 1)
        ) from None
    builder = _PairBuilder(path)
    for block in _top_level_blocks(tokens):
        builder.feed(block)
    builder.finish()
    return ParsedDocument(
        path=path,
        title=builder.title,
        pairs=tuple(builder.pairs),
        diagnostics=tuple(builder.diagnostics),
        env=env,
    )


def normalize_text(text: str) -> str:
    """Drop a BOM and turn CRLF/CR line endings into LF, so line numbers match an editor's."""
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def normalize_question(text: str) -> str:
    """Fold width, case and spacing, so formatting-only edits leave the key unchanged."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(text.split())


def plain_text(tokens: Sequence[Token]) -> str:
    """Return the text a reader sees in `tokens`, without markup."""
    parts: list[str] = []
    for token in tokens:
        if token.type == "inline":
            parts.append(_inline_text(token.children or []))
        elif token.type in ("fence", "code_block"):
            parts.append(token.content)
    return " ".join(part for part in parts if part)


def _inline_text(children: Sequence[Token]) -> str:
    parts: list[str] = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(_inline_text(child.children or []))
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class _Block:
    """A top-level block: its tokens and its 1-based first line."""

    tokens: tuple[Token, ...]
    line: int

    @property
    def heading_level(self) -> int | None:
        first = self.tokens[0]
        return int(first.tag[1]) if first.type == "heading_open" else None


def _top_level_blocks(tokens: Sequence[Token]) -> Iterator[_Block]:
    start = 0
    depth = 0
    for index, token in enumerate(tokens):
        depth += token.nesting
        if depth == 0:
            block = tokens[start : index + 1]
            line = next((t.map[0] + 1 for t in block if t.map), 1)
            yield _Block(tuple(block), line)
            start = index + 1


def _split_marker(block: _Block, words: frozenset[str]) -> tuple[Token, ...] | None:
    """If `block` is a paragraph starting with a bold marker word, return it without the marker.

    The marker is `**题目：**`, `**题目**：` or `**题目**` (colon full- or half-width, inside or
    outside the bold). The returned paragraph holds the text after the marker; it is empty
    when the marker stands alone.
    """
    if len(block.tokens) != 3 or block.tokens[0].type != "paragraph_open":
        return None
    inline = block.tokens[1]
    children = [c for c in inline.children or [] if not (c.type == "text" and not c.content)]
    if len(children) < 3 or children[0].type != "strong_open" or children[2].type != "strong_close":
        return None
    label = children[1]
    if label.type != "text" or label.content.strip().rstrip(_COLONS).strip() not in words:
        return None
    rest = children[3:]
    if rest and rest[0].type == "text":
        stripped = rest[0].content.lstrip().removeprefix(":").removeprefix("：").lstrip()
        rest = ([_with_content(rest[0], stripped)] if stripped else []) + rest[1:]
    while rest and rest[0].type in ("softbreak", "hardbreak"):
        rest = rest[1:]
    if not rest:
        return ()
    new_inline = inline.copy(children=rest, content=_inline_text(rest))
    return (block.tokens[0], new_inline, block.tokens[2])


def _with_content(token: Token, content: str) -> Token:
    return token.copy(content=content)


def _heading_text(block: _Block) -> str:
    return _inline_text(block.tokens[1].children or []).strip()


def _explicit_id(block: _Block) -> str | None:
    if block.tokens[0].type != "html_block":
        return None
    match = _EXPLICIT_ID.match(block.tokens[0].content.strip())
    return match.group(1) if match else None


class _PairBuilder:
    """Walks top-level blocks once, opening and closing pairs as markers and headings pass."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.title: str | None = None
        self.pairs: list[QAPair] = []
        self.diagnostics: list[Diagnostic] = []
        self._first_heading: str | None = None
        self._headings_seen = 0
        self._first_heading_has_pair = False
        self._context = ""
        self._section_level = 7  # any heading ends a pair that sits under no heading
        self._question: list[Token] | None = None
        self._answer: list[Token] | None = None
        self._location: SourceLocation | None = None
        self._pending_id: str | None = None
        self._pair_id: str | None = None

    def feed(self, block: _Block) -> None:
        level = block.heading_level
        if level is not None:
            self._heading(block, level)
            return
        explicit = _explicit_id(block)
        if explicit is not None:
            self._pending_id = explicit
            return
        question = _split_marker(block, QUESTION_WORDS)
        if question is not None:
            self._close()
            self._question = list(question)
            self._answer = None
            self._location = SourceLocation(self.path, block.line)
            self._pair_id, self._pending_id = self._pending_id, None
            if self._headings_seen == 1:
                self._first_heading_has_pair = True
            return
        answer = _split_marker(block, ANSWER_WORDS) if self._question is not None else None
        if answer is not None and self._answer is None:
            self._answer = list(answer)
            return
        if self._answer is not None:
            self._answer.extend(block.tokens)
        elif self._question is not None:
            self._question.extend(block.tokens)

    def _heading(self, block: _Block, level: int) -> None:
        inside_answer = self._answer is not None and level > self._section_level
        if inside_answer:
            assert self._answer is not None
            self._answer.extend(block.tokens)
            return
        self._close()
        text = _heading_text(block)
        if self._first_heading is None:
            self._first_heading = text
        self._headings_seen += 1
        self._context = _HEADING_NUMBER.sub("", text, count=1).strip() or text
        self._section_level = level

    def _close(self) -> None:
        if self._question is None:
            return
        assert self._location is not None
        has_answer_marker = self._answer is not None
        question, answer = tuple(self._question), tuple(self._answer or ())
        self._question = self._answer = None
        question_text = plain_text(question).strip()
        if not question_text:
            self._report("question is empty; write the question after the marker")
        elif not has_answer_marker:
            self._report("question has no answer; add an answer marker (**答案：**) below it")
        elif not plain_text(answer).strip() and not _has_media(answer):
            self._report("answer is empty; write the answer after the answer marker")
        else:
            self.pairs.append(
                QAPair(
                    question_tokens=question,
                    answer_tokens=answer,
                    question_text=question_text,
                    context=self._context,
                    location=self._location,
                    explicit_id=self._pair_id,
                )
            )

    def _report(self, message: str) -> None:
        assert self._location is not None
        self.diagnostics.append(Diagnostic(self._location, message, Severity.ERROR))

    def finish(self) -> None:
        self._close()
        if self._first_heading is not None and not self._first_heading_has_pair:
            self.title = self._first_heading


def _has_media(tokens: Sequence[Token]) -> bool:
    for token in tokens:
        if token.type == "inline" and any(c.type == "image" for c in token.children or []):
            return True
    return False
