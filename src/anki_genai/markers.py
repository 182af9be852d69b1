"""The layout heuristics: which top-level block of a token stream is a question, an answer.

The layouts found in the wild, all read from the top-level blocks of the token stream:

* markers (the default): a question marker (`**题目：**`, `**问题**：`, `**Q：**`, `### 题目`,
  `#### **题目**：…`, `> **题目**: …`) or a section heading, then an answer marker
  (`**答案：**`, `参考答案：`, `#### Answer：`, `#### 输出`, `<details><summary>答案</summary>`).
* headings: every heading at the question level is a question, its section body the answer.
* bold: every whole-bold paragraph `**Q1：…**` is a question, the text after it the answer.

This module recognises blocks; `pairs` walks them into question/answer pairs.
"""

from __future__ import annotations

import enum
import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from anki_genai.embeds import TOKEN_TYPES

if TYPE_CHECKING:
    from markdown_it.token import Token

    from anki_genai.blocks import Block


class Layout(enum.Enum):
    """How a file writes its questions; AUTO finds it from the file itself."""

    AUTO = "auto"
    MARKERS = "markers"  # question and answer markers: `**题目：**`, `**答案：**`
    HEADINGS = "headings"  # question headings, their sections the answers
    BOLD = "bold"  # bold question paragraphs: `**Q1：…**`, `**1. …**`
    SUMMARY = "summary"  # `<details><summary>question</summary>answer</details>`
    LINES = "lines"  # `Q: …` and `A: …` lines


QUESTION_WORDS = ("题目", "问题", "Q", "Question")
# Question words that mark a question only with a number and a colon: `题 3：`, `题目001:`.
_NUMBERED_QUESTION_WORDS = ("题目", "问题", "题", "Q", "Question")
ANSWER_WORDS = ("答案", "参考答案", "答案解析", "解答", "解析", "A", "Answer")
# "输出" (output) answers a question only as a heading (`#### 输出`); as a bold paragraph
# between a question and its answer it is part of the question (`**输出：** 3`).
HEADING_ONLY_ANSWER_WORDS = ("输出",)
_COLONS = ":："
# A heading's leading number ("1. ", "12、", "3) ", "1.") is numbering, not part of its name.
HEADING_NUMBER = re.compile(r"^\s*\d+(?:\.\d+)*\s*[.、)）:：]?\s*(?=\S)|^\s*\d+\s*$")
_LABEL_ONLY_HEADING = re.compile(
    r"^\s*(?:第\s*\d+\s*题|\d+|(?:Question|Q|问题)\s*\d+)\s*\W*$", re.IGNORECASE
)
_EXPLICIT_ID = re.compile(r"^<!--\s*anki-genai-id\s*:\s*([^\s>]+)\s*-->$")
_SUMMARY = re.compile(r"<summary[^>]*>(.*?)</summary>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
# A plain label: a word, maybe numbered (`题目001`, `Question 3`), maybe a colon, then text.
_PLAIN_LABEL = re.compile(r"^\s*([^\s:：]+(?:\s+\d+)?)\s*([:：]?)\s*(.*)$")


@dataclass(frozen=True, slots=True)
class ParseOptions:
    """How to read a file: its layout and any extra marker words the user configured."""

    layout: Layout = Layout.AUTO
    question_words: tuple[str, ...] = ()
    answer_words: tuple[str, ...] = ()


def plain_text(tokens: Sequence[Token]) -> str:
    """Return the text a reader sees in `tokens`, without markup."""
    parts: list[str] = []
    for token in tokens:
        if token.type == "inline":
            parts.append(inline_text(token.children or []))
        elif token.type in ("fence", "code_block", "math_block"):
            parts.append(token.content)
    return " ".join(part for part in parts if part.strip())


# Embeds and wiki links count as the text they were written as: questions kept that text
# before those tokens existed.
_TEXT_TYPES = frozenset({"text", "code_inline", "math_inline", "math_inline_double", *TOKEN_TYPES})


def inline_text(children: Sequence[Token]) -> str:
    parts: list[str] = []
    for child in children:
        if child.type in _TEXT_TYPES:
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(inline_text(child.children or []))
    return "".join(parts)


def has_content(tokens: Sequence[Token]) -> bool:
    """True when `tokens` show something: text, code, math or an image."""
    if plain_text(tokens).strip():
        return True
    for token in tokens:
        if token.type == "html_block" and "<img" in token.content.lower():
            return True
        for child in token.children or ():
            if child.type == "image" or (
                child.type == "html_inline" and child.content.lower().startswith("<img")
            ):
                return True
    return False


def _label_and_rest(children: list[Token]) -> tuple[str, list[Token], bool] | None:
    """Split inline children into a leading label and the rest; say whether it was bold."""
    children = [c for c in children if not (c.type == "text" and not c.content)]
    if len(children) >= 3 and children[0].type == "strong_open":
        close = next((i for i, c in enumerate(children) if c.type == "strong_close"), None)
        if close is None or close < 2 or any(c.type != "text" for c in children[1:close]):
            return None
        label = "".join(c.content for c in children[1:close])
        return label, children[close + 1 :], True
    if children and children[0].type == "text":
        return children[0].content, children[1:], False
    return None


def marker(
    block: Block,
    words: Sequence[str],
    heading_words: Sequence[str] = HEADING_ONLY_ANSWER_WORDS,
) -> tuple[Token, ...] | None:
    """If `block` opens with a marker word, return what follows the marker (maybe nothing).

    Accepted: `**题目：** …`, `**题目**：…`, `**题目**` alone, a plain `答案` or `参考答案：` alone
    on its first line, and headings whose text is a marker, e.g. `### 题目`, `#### Answer：`,
    `#### **参考答案**：…`. A label with a number and no colon (`### 题目1`) is a group
    heading, not a marker.
    """
    level = block.heading_level
    if level is None and not block.is_paragraph:
        return None
    allowed = tuple(words) + (tuple(heading_words) if level is not None else ())
    if not _could_start_with(allowed).match(block.tokens[1].content):
        return None  # the common case, decided without looking at the inline tokens
    split = _label_and_rest(list(block.tokens[1].children or []))
    if split is None:
        return None
    label, rest, bold = split
    if bold:
        word = label.strip().rstrip(_COLONS).strip()
        colon = label.strip()[-1:] in _COLONS
        if rest and rest[0].type == "text":
            after = rest[0].content.lstrip()
            if after[:1] in _COLONS:
                colon = True
                after = after[1:].lstrip()
            rest = ([rest[0].copy(content=after)] if after else []) + rest[1:]
    else:
        first_line = label.split("\n", 1)[0]
        match = _PLAIN_LABEL.match(first_line)
        if match is None:
            return None
        word, colon = match.group(1), bool(match.group(2))
        after = match.group(3)
        if after and level is None:
            return None  # a plain marker in running text must stand alone on its line
        if after and not colon:
            return None
        remainder = after + label[len(first_line) :]
        rest = ([_text_token(remainder.lstrip())] if remainder.strip() else []) + rest
    if not _is_marker_word(word, allowed, colon):
        return None
    while rest and rest[0].type in ("softbreak", "hardbreak"):
        rest = rest[1:]
    if not rest:
        return ()
    inline = block.tokens[1].copy(children=rest, content=inline_text(rest))
    return paragraph(inline, block.tokens[0].map)


@functools.lru_cache(maxsize=64)
def _could_start_with(words: tuple[str, ...]) -> re.Pattern[str]:
    """A quick test on a block's source text: might it begin with one of `words`?"""
    alternatives = sorted({re.escape(w) for w in (*words, *_NUMBERED_QUESTION_WORDS)}, key=len)
    return re.compile(r"^[\s*_]*(?:" + "|".join(reversed(alternatives)) + ")", re.IGNORECASE)


def _is_marker_word(word: str, words: Sequence[str], colon: bool) -> bool:
    word = unicodedata.normalize("NFKC", word).strip()
    if len(word) == 1 and word.isascii() and not colon:
        return False  # a lone "A" or "Q" is a marker only as `A:`; "## A" is a heading
    if any(word.casefold() == candidate.casefold() for candidate in words):
        return True
    if not colon or not any(w in words for w in QUESTION_WORDS):
        return False
    # `题目001:` and `Q3：` are numbered question markers; `题目1` without a colon is a group.
    return any(
        re.fullmatch(re.escape(candidate) + r"\s*\d+", word, re.IGNORECASE)
        for candidate in _NUMBERED_QUESTION_WORDS
    )


def is_answer_summary(text: str, answer_words: Sequence[str]) -> bool:
    """A `<summary>` that labels the answer (`答案`, `查看答案`, `Answer`), not a question."""
    lowered = text.casefold()
    return any(w in text for w in answer_words if len(w) > 1) or any(
        word in lowered for word in ("answer", "solution")
    )


def answer_label(tokens: Sequence[Token]) -> str | None:
    """The last bold label with a colon in `tokens` (`**解题思路**：`), which may be the
    answer marker of an author's own words."""
    found = None
    for index, token in enumerate(tokens):
        if token.type != "inline" or index == 0 or tokens[index - 1].type != "paragraph_open":
            continue
        split = _label_and_rest(list(token.children or []))
        if split is None or not split[2]:
            continue
        label, rest, _ = split
        after = rest[0].content.lstrip() if rest and rest[0].type == "text" else ""
        word = label.strip().rstrip(_COLONS).strip()
        if word and (label.strip()[-1:] in _COLONS or after[:1] in _COLONS):
            found = word
    return found


def whole_bold_question(block: Block) -> tuple[Token, ...] | None:
    """`**Q1：question**` as a whole paragraph: return the question without its `Q1：`."""
    if not block.is_paragraph:
        return None
    children = [
        c for c in block.tokens[1].children or [] if not (c.type == "text" and not c.content)
    ]
    if (
        len(children) < 3
        or children[0].type != "strong_open"
        or children[-1].type != "strong_close"
    ):
        return None
    if any(c.type == "strong_open" for c in children[1:-1]) or children[1].type != "text":
        return None
    match = re.match(
        r"^\s*(?:Q|Question|问题|题)\s*\d*\s*[:：.、]\s*", children[1].content, re.IGNORECASE
    )
    if match is None:
        return None
    first = children[1].copy(content=children[1].content[match.end() :])
    rest = [first, *children[2:-1]] if first.content else children[2:-1]
    if not rest:
        return None
    inline = block.tokens[1].copy(children=rest, content=inline_text(rest))
    return (block.tokens[0], inline, block.tokens[2])


def heading_as_paragraph(block: Block) -> tuple[Token, ...]:
    """A question heading's text as a paragraph, without its numbering or marker label."""
    inline = block.tokens[1]
    children = list(inline.children or [])
    split = marker(block, QUESTION_WORDS)
    if split is not None:
        return split
    while children and children[0].type == "html_inline":
        children = children[1:]  # an anchor such as <a name=55></a> before the number
    if children and children[0].type == "text":
        stripped = HEADING_NUMBER.sub("", children[0].content, count=1)
        children = ([children[0].copy(content=stripped)] if stripped else []) + children[1:]
    if _LABEL_ONLY_HEADING.match(inline_text(children)) or not inline_text(children).strip():
        return ()
    new_inline = inline.copy(children=children, content=inline_text(children))
    return paragraph(new_inline, block.tokens[0].map)


def _text_token(content: str) -> Token:
    from markdown_it.token import Token

    return Token("text", "", 0, content=content)


def paragraph(inline: Token, line_map: list[int] | None) -> tuple[Token, ...]:
    """Wrap inline content (from a marker line or a heading) in a paragraph of its own."""
    from markdown_it.token import Token

    opening = Token("paragraph_open", "p", 1, map=line_map, block=True)
    return (opening, inline, Token("paragraph_close", "p", -1, block=True))


def heading_text(block: Block) -> str:
    return inline_text(block.tokens[1].children or []).strip()


def explicit_id(block: Block) -> str | None:
    if block.tokens[0].type != "html_block":
        return None
    match = _EXPLICIT_ID.match(block.tokens[0].content.strip())
    return match.group(1) if match else None


def trim(tokens: list[Token]) -> tuple[Token, ...]:
    """Drop thematic breaks and tag-only HTML at the edges: separators, not content."""

    def edge(token: Token) -> bool:
        return token.type == "hr" or (
            token.type == "html_block"
            and not _TAG.sub("", token.content).strip()
            and "<img" not in token.content.lower()
        )

    while tokens and edge(tokens[-1]):
        tokens = tokens[:-1]
    while tokens and edge(tokens[0]):
        tokens = tokens[1:]
    return tuple(tokens)


class FirstHeading:
    """Whether a file's first heading is its title (which names its deck)."""

    def __init__(self) -> None:
        self.text: str | None = None
        self.level = 0
        self.seen = 0
        self.has_pair = False  # a pair opened before the second heading
        self.asks = False  # the first heading is itself a question
        self.has_peer = False  # a later heading as high as the first

    def heading(self, text: str, level: int) -> None:
        if self.text is None:
            self.text, self.level = text, level
        elif level <= self.level:
            self.has_peer = True
        self.seen += 1

    def pair_opened(self, asked_by_heading: bool) -> None:
        if self.seen == 1:
            self.has_pair = True
            self.asks = self.asks or asked_by_heading

    def title(self, layout: Layout | None) -> str | None:
        """The first heading names the file unless it asks a question itself, or it is one
        of several sections as high as it that hold questions directly (`# TCP`, `# UDP`).
        Only marker files read a lone heading over their questions as the title: files of
        other layouts already built kept their file name as deck, and keep it."""
        alone = layout is Layout.MARKERS and not self.has_peer
        sections = self.has_pair and not alone
        return self.text if not self.asks and not sections else None
