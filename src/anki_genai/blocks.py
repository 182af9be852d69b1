"""A token stream -> its top-level blocks, with `<details>` tags as blocks of their own.

markdown-it reads an HTML block up to the next blank line, so `<details><summary>Answer
</summary>` followed by the answer on the next line, or `</details>` followed by the next
question, arrive as one raw HTML token holding Markdown. Such a token is cut at its details
tags: each tag becomes a block of its own and the Markdown between them is parsed again, with
its line numbers kept. A `</details>` at the end of a paragraph is cut off the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from anki_genai.markers import ANSWER_WORDS, QUESTION_WORDS, inline_text, marker, paragraph

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

# How deep quotes and lists may nest (markdown-it's maxNesting, as CommonMark's preset sets
# it): deeper, markdown-it skips the rest of the range it is reading, to keep its recursion
# bounded; inside a list item that range runs to the end of the file.
MAX_NESTING = 20
TOO_DEEP = (
    f"nested more than {MAX_NESTING} levels deep (quotes or lists): nothing is read from "
    "here to the end of the enclosing quote, or of the file; flatten it"
)
ANSWER_TOO_DEEP = (
    "answer is nested more than {levels} levels deep at line {line} (quotes or lists), too "
    "deep to read; flatten it"
)
_CONTAINERS = ("blockquote_open", "list_item_open")  # the blocks markdown-it parses inside

_DETAILS_TAG = re.compile(r"</?details\b|<summary\b", re.IGNORECASE)
# Tags that only wrap or space out the text of a details block: dropped when it is cut.
_WRAPPER = re.compile(
    r"\s*</?(?:br|p|b|strong|i|em|code|span|div)\b[^>]*>|\s*<hr\b[^>]*>", re.IGNORECASE
)
_OPEN = re.compile(r"\s*<details\b[^>]*>", re.IGNORECASE)
_CLOSE = re.compile(r"\s*</details\s*>", re.IGNORECASE)
_SUMMARY = re.compile(r"\s*<summary\b[^>]*>(.*?)(?:</summary\s*>|$)", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True, slots=True)
class Block:
    """A top-level block: its tokens and its 1-based first line.

    A `<details>` tag is a block of its own: `details` is "open" (with its summary, if any,
    as a paragraph) or "close"; its tokens are the tag as raw HTML, for answers that hold it.
    """

    tokens: tuple[Token, ...]
    line: int
    details: str | None = None
    summary: tuple[Token, ...] = ()

    @property
    def heading_level(self) -> int | None:
        first = self.tokens[0]
        return int(first.tag[1]) if first.type == "heading_open" else None

    @property
    def is_paragraph(self) -> bool:
        return len(self.tokens) == 3 and self.tokens[0].type == "paragraph_open"

    @property
    def summary_text(self) -> str:
        return " ".join(inline_text(self.summary[1].children or []).split()) if self.summary else ""


def split_blocks(
    tokens: Sequence[Token], md: MarkdownIt | None = None, env: dict[str, object] | None = None
) -> Iterator[Block]:
    """Yield the top-level blocks of `tokens`; with `md`, cut HTML blocks at details tags."""
    start = 0
    depth = 0
    for index, token in enumerate(tokens):
        depth += token.nesting
        if depth != 0:
            continue
        block = tuple(tokens[start : index + 1])
        start = index + 1
        if block[0].type == "front_matter":
            continue
        line = next((t.map[0] + 1 for t in block if t.map), 1)
        if block[0].type == "blockquote_open":
            inner = list(split_blocks(block[1:-1]))
            marker_words = QUESTION_WORDS + ANSWER_WORDS
            if inner and marker(inner[0], marker_words, heading_words=()) is not None:
                # `> **题目**: …` — the quote only decorates a marker: read inside it.
                yield from inner
                continue
        first = block[0]
        if md is not None and first.type == "html_block" and _DETAILS_TAG.search(first.content):
            yield from _cut_html(first, md, env if env is not None else {})
            continue
        block, closed = _without_trailing_close(block)
        if block:
            yield Block(block, line)
        if closed:
            yield _tag_block("close", "</details>", closed)


def _cut_html(token: Token, md: MarkdownIt, env: dict[str, object]) -> Iterator[Block]:
    """Cut one raw HTML token at its details tags; parse the Markdown between them again."""
    first = token.map[0] if token.map else 0
    pending: list[str] = []  # Markdown lines since the last tag, blank where a tag was
    pending_start = first
    opening: tuple[int, str] | None = None  # a `<details>` waiting for its summary

    def flush() -> Iterator[Block]:
        nonlocal opening
        if opening is not None:
            yield _tag_block("open", "<details>", opening[0])
            opening = None
        if any(line.strip() for line in pending):
            parsed = md.parse("\n".join(pending) + "\n", env)
            for parsed_token in parsed:
                if parsed_token.map:
                    parsed_token.map = [m + pending_start for m in parsed_token.map]
            yield from split_blocks(parsed)
        pending.clear()

    for offset, raw in enumerate(token.content.rstrip("\n").split("\n")):
        line_index = first + offset
        rest = raw
        while rest.strip():
            if match := _OPEN.match(rest):
                yield from flush()
                opening = (line_index, match.group(0).strip())
            elif match := _SUMMARY.match(rest):
                yield from flush() if opening is None else ()
                tag = (opening[1] if opening else "<details>") + match.group(0).strip()
                summary = _summary(match.group(1), md, env, line_index)
                yield _tag_block("open", tag, line_index, summary)
                opening = None
            elif match := _CLOSE.match(rest):
                yield from flush()
                yield _tag_block("close", "</details>", line_index)
            elif not (match := _WRAPPER.match(rest)):
                break
            rest = rest[match.end() :]
        text = _trailing_close(rest)
        closes = text is not None
        text = rest if text is None else text
        if text.strip() or pending:
            if not pending:
                pending_start = line_index
            pending.append(text)
        if closes:
            yield from flush()
            yield _tag_block("close", "</details>", line_index)
    yield from flush()


def _trailing_close(text: str) -> str | None:
    """`text` without a trailing `</details>` (and wrapper tags around it), or None."""
    stripped = text.rstrip()
    found = False
    while True:
        for pattern in (_CLOSE, _WRAPPER):
            tail = _last_match(pattern, stripped)
            if tail is not None:
                found = found or pattern is _CLOSE
                stripped = stripped[:tail].rstrip()
                break
        else:
            return stripped if found else None


def _last_match(pattern: re.Pattern[str], text: str) -> int | None:
    """Where a match of `pattern` that ends `text` starts, if one does."""
    for match in pattern.finditer(text):
        if match.end() == len(text):
            return match.start()
    return None


def _summary(inner: str, md: MarkdownIt, env: dict[str, object], line: int) -> tuple[Token, ...]:
    text = " ".join(_TAG.sub(" ", inner).split())
    if not text:
        return ()
    from markdown_it.token import Token

    children = md.parseInline(text, env)[0].children or []
    inline = Token("inline", "", 0, content=text, children=children, map=[line, line + 1])
    return paragraph(inline, [line, line + 1])


def _tag_block(kind: str, tag: str, line_index: int, summary: tuple[Token, ...] = ()) -> Block:
    from markdown_it.token import Token

    raw = Token("html_block", "", 0, content=tag + "\n", map=[line_index, line_index + 1])
    return Block((raw,), line_index + 1, kind, summary)


def _without_trailing_close(block: tuple[Token, ...]) -> tuple[tuple[Token, ...], int | None]:
    """Cut a `</details>` off the end of a block's last inline text; say on which line."""
    last = next((i for i in range(len(block) - 1, -1, -1) if block[i].type == "inline"), None)
    if last is None:
        return block, None
    children = list(block[last].children or [])
    end = len(children)
    closed = False
    while end and (
        children[end - 1].type in ("softbreak", "hardbreak")
        or (children[end - 1].type == "text" and not children[end - 1].content.strip())
        or (
            children[end - 1].type == "html_inline"
            and (
                _CLOSE.fullmatch(children[end - 1].content)
                or _WRAPPER.fullmatch(children[end - 1].content)
            )
        )
    ):
        closed = closed or bool(_CLOSE.fullmatch(children[end - 1].content))
        end -= 1
    if not closed:
        return block, None
    token_map = block[last].map or block[0].map or [0, 1]
    line_index = token_map[1] - 1
    kept = children[:end]
    if not kept and len(block) == 3 and block[0].type == "paragraph_open":
        return (), line_index
    content = _trailing_close(block[last].content) or inline_text(kept)
    inline = block[last].copy(children=kept, content=content)
    return (*block[:last], inline, *block[last + 1 :]), line_index


def nesting_cuts(tokens: Sequence[Token]) -> Iterator[int]:
    """The 1-based lines where markdown-it stopped reading a block that nests too deep,
    the first of each top-level block."""
    depth = 0
    cut_in_block = False
    for token in tokens:
        if depth == 0:
            cut_in_block = False
        depth += token.nesting
        if (
            not cut_in_block
            and token.type in _CONTAINERS
            and token.level >= MAX_NESTING - 1
            and token.map
        ):
            cut_in_block = True
            yield token.map[0] + 1


def marker_lines(block: Block, words: Sequence[str]) -> list[Block]:
    """Cut a paragraph at every line that starts with a marker, as if a blank line were
    there: `**答案：** …` on the line after a question is that question's answer, not part
    of its text. Line breaks inside links or emphasis are left alone."""
    if not block.is_paragraph:
        return [block]
    opening, inline, _ = block.tokens
    children = list(inline.children or [])
    lines = inline.content.split("\n")
    breaks = [i for i, c in enumerate(children) if c.type in ("softbreak", "hardbreak")]
    if not breaks or not opening.map or len(breaks) != len(lines) - 1:
        return [block]  # a line break hidden in a code span: its lines cannot be told apart
    depth = 0
    at_top = set()
    for index, child in enumerate(children):
        depth += child.nesting
        if depth == 0 and child.type == "softbreak":
            at_top.add(index)
    first = opening.map[0]
    starts = [(0, 0)]  # (child index, line offset) where each new paragraph starts
    for line_offset, index in enumerate(breaks, start=1):
        if index not in at_top:
            continue
        candidate = _part(block, children[index + 1 :], lines[line_offset:], first + line_offset)
        if marker(candidate, words, heading_words=()) is not None:
            starts.append((index, line_offset))
    if len(starts) == 1:
        return [block]
    parts = []
    ends = [*starts[1:], (len(children), len(lines))]
    for (begin, line_begin), (end, line_end) in zip(starts, ends, strict=True):
        skip = begin + 1 if begin else 0  # the softbreak itself belongs to neither
        parts.append(
            _part(block, children[skip:end], lines[line_begin:line_end], first + line_begin)
        )
    return parts


def _part(block: Block, children: list[Token], lines: list[str], line_index: int) -> Block:
    """A paragraph of `block` holding `children`, the inline content of `lines`."""
    opening, inline, closing = block.tokens
    line_map = [line_index, line_index + len(lines)]
    return Block(
        (
            opening.copy(map=line_map),
            inline.copy(children=children, content="\n".join(lines), map=line_map),
            closing.copy(),
        ),
        line_index + 1,
    )
