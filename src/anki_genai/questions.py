"""What a question looks like when no marker says so.

Heading text that reads as a question, numbered bold question paragraphs (`**1. What is
SaaS?**`, `**1)** text`), `Q:`/`A:` lines in one paragraph, and `Question 3.` labels that only
number a question.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

from anki_genai.markers import inline_text, paragraph

if TYPE_CHECKING:
    from markdown_it.token import Token

    from anki_genai.blocks import Block

_LEADING_SYMBOLS = re.compile(r"^[^\w`\[(]+")
_QUESTION_START = re.compile(
    r"^(?:(?:Q|Question|问|问题|题目|题)\s*\d*\s*[.:：)、）]"
    r"|\d+(?:\.\d+)*\s*[.)、:：）]\s*\S|第\s*\d+\s*题)",
    re.IGNORECASE,
)
_INTERROGATIVE = re.compile(
    r"^(?:what|why|how|when|where|which|who|whom|whose|is|are|can|could|do|does|did|should"
    r"|would|will|explain|describe|define|compare|name)\b"
    r"|什么|如何|为什么|为何|怎么|怎样|哪些|哪个|是否|吗$|呢$|区别",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"^\s*\d+\s*[.)、:：）]\s*")
_Q_LABEL = re.compile(r"^\s*(?:Q|Question|问|问题)\s*\d*\s*[:：]\s*", re.IGNORECASE)
_A_LABEL = re.compile(r"^\s*(?:A|Answer|答|答案)\s*[:：]\s*", re.IGNORECASE)
_LABEL_LINE = re.compile(
    r"^\s*(?:Question|Q|问题|题目|题)\s*\d+\s*[.:：)）]?\s*$|^\s*第\s*\d+\s*题\s*[.:：]?\s*$",
    re.IGNORECASE,
)


def looks_like_question(text: str) -> bool:
    """Heading or summary text that reads as a question: `?`, `Q1.`, `3)`, `What …`, `…吗`."""
    text = unicodedata.normalize("NFKC", text).strip()
    if "?" in text:
        return True
    text = _LEADING_SYMBOLS.sub("", text)
    return bool(_QUESTION_START.match(text) or _INTERROGATIVE.search(text))


def asks(text: str) -> bool:
    """Text that asks something outright: it has a question mark."""
    return "?" in unicodedata.normalize("NFKC", text)


def numbered_bold_question(block: Block) -> tuple[tuple[Token, ...], bool] | None:
    """`**1. What is SaaS?**` or `**1)** The task.`: the question without its number.

    Also says whether text follows the bold part: then the paragraph states a task, whose
    examples may follow it before the answer (which starts at its first code block).
    """
    if not block.is_paragraph:
        return None
    children = [c for c in block.tokens[1].children or [] if not _empty(c)]
    if len(children) < 3 or children[0].type != "strong_open" or children[1].type != "text":
        return None
    close = next((i for i, c in enumerate(children) if c.type == "strong_close"), None)
    if close is None:
        return None
    number = _NUMBER.match(children[1].content)
    if number is None:
        return None
    first = children[1].copy(content=children[1].content[number.end() :])
    bold = [first, *children[2:close]] if first.content else children[2:close]
    rest = children[close + 1 :]
    if rest and rest[0].type == "text":
        rest = [rest[0].copy(content=rest[0].content.lstrip()), *rest[1:]]
        rest = rest if rest[0].content else rest[1:]
    statement = bool(inline_text(rest).strip(" .:："))
    if not statement:
        kept = bold
    elif not bold:
        kept = rest
    else:
        glued = rest[0].type == "text" and rest[0].content[:1] in ".,:;：。，"
        kept = [children[0], *bold, children[close], *([] if glued else [_space()]), *rest]
    if not inline_text(kept).strip():
        return None
    return _as_paragraph(block, kept), statement


def qa_lines(block: Block) -> tuple[tuple[Token, ...], tuple[Token, ...] | None] | None:
    """A paragraph opening with `Q:`: its question and, from an `A:` line, its answer."""
    if not block.is_paragraph:
        return None
    lines = _lines(block.tokens[1].children or [])
    question = _without_label(lines[0], _Q_LABEL)
    if question is None:
        return None
    for index in range(1, len(lines)):
        answer = _without_label(lines[index], _A_LABEL)
        if answer is not None:
            asked = _join([question, *lines[1:index]])
            told = _join([answer, *lines[index + 1 :]])
            return _as_paragraph(block, asked), (_answer_part(block, told, index) if told else ())
    return _as_paragraph(block, _join([question, *lines[1:]])), None


def answer_line(block: Block) -> tuple[Token, ...] | None:
    """A paragraph opening with `A:`: the answer after the label (maybe nothing)."""
    if not block.is_paragraph:
        return None
    lines = _lines(block.tokens[1].children or [])
    answer = _without_label(lines[0], _A_LABEL)
    if answer is None:
        return None
    told = _join([answer, *lines[1:]])
    return _as_paragraph(block, told) if told else ()


def without_question_label(tokens: Sequence[Token]) -> tuple[Token, ...]:
    """Drop a leading `Question 3.` line and a `Question:` prefix from a question's text."""
    if len(tokens) < 3 or tokens[0].type != "paragraph_open":
        return tuple(tokens)
    lines = _lines(tokens[1].children or [])
    while lines and _LABEL_LINE.match(inline_text(lines[0])):
        lines = lines[1:]
    if lines:
        lines[0] = _without_label(lines[0], _Q_LABEL) or lines[0]
    kept = _join(lines)
    if not inline_text(kept).strip():
        return tuple(tokens[3:])
    inline = tokens[1].copy(children=kept, content=inline_text(kept))
    return (tokens[0], inline, tokens[2], *tokens[3:])


def _lines(children: Sequence[Token]) -> list[list[Token]]:
    lines: list[list[Token]] = [[]]
    for child in children:
        if child.type in ("softbreak", "hardbreak"):
            lines.append([])
        elif not _empty(child):
            lines[-1].append(child)
    return lines


def _join(lines: Sequence[list[Token]]) -> list[Token]:
    from markdown_it.token import Token

    joined: list[Token] = []
    for line in lines:
        if not line:
            continue
        if joined:
            joined.append(Token("softbreak", "br", 0))
        joined.extend(line)
    return joined


def _without_label(line: list[Token], label: re.Pattern[str]) -> list[Token] | None:
    """`line` without its leading label (`Q:`, `**A:**`), or None if it has none."""
    bold = bool(line) and line[0].type == "strong_open"
    start = 1 if bold else 0
    if len(line) <= start or line[start].type != "text":
        return None
    match = label.match(line[start].content)
    if match is None:
        return None
    text = line[start].copy(content=line[start].content[match.end() :])
    rest = ([text] if text.content else []) + line[start + 1 :]
    if bold:
        if rest and rest[0].type == "strong_close":
            rest = rest[1:]  # `**Q:** question`: the bold was only the label
        elif rest and rest[-1].type == "strong_close":
            rest = rest[:-1]  # `**Q: question**`: the whole line was bold
        else:
            rest = [line[0], *rest]
    if rest and rest[0].type == "text":
        rest[0] = rest[0].copy(content=rest[0].content.lstrip())
    return [t for t in rest if not _empty(t)]


def _answer_part(block: Block, children: list[Token], index: int) -> tuple[Token, ...]:
    """The answer from line `index` of a paragraph on, with its own line and source text."""
    start, end = block.tokens[0].map or (block.line - 1, block.line)
    source = block.tokens[1].content.split("\n")[index:]
    source[0] = _A_LABEL.sub("", source[0].lstrip(" *_"), count=1).lstrip(" *_")
    inline = block.tokens[1].copy(children=children, content="\n".join(source))
    return paragraph(inline, [start + index, end])


def _as_paragraph(block: Block, children: list[Token]) -> tuple[Token, ...]:
    inline = block.tokens[1].copy(children=children, content=inline_text(children))
    return paragraph(inline, block.tokens[0].map)


def _space() -> Token:
    from markdown_it.token import Token

    return Token("text", "", 0, content=" ")


def _empty(token: Token) -> bool:
    return token.type == "text" and not token.content
