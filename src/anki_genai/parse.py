"""Markdown text -> question/answer pairs, found in markdown-it tokens (never in raw text).

The layouts found in the wild, all read from the top-level blocks of the token stream:

* markers (the default): a question marker (`**题目：**`, `**问题**：`, `**Q：**`, `### 题目`,
  `#### **题目**：…`, `> **题目**: …`) or a section heading, then an answer marker
  (`**答案：**`, `参考答案：`, `#### Answer：`, `#### 输出`, `<details><summary>答案</summary>`).
* headings: every heading at the question level is a question, its section body the answer.
* bold: every whole-bold paragraph `**Q1：…**` is a question, the text after it the answer.

An answer runs to the next question, the next heading as high as the question's section, the
end of a `<details>` block it opened, or the end of the file.
"""

from __future__ import annotations

import enum
import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from anki_genai.errors import Diagnostic, Severity, SourceError, SourceLocation

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token


class Layout(enum.Enum):
    MARKERS = "markers"
    HEADINGS = "headings"
    BOLD = "bold"


QUESTION_WORDS = ("题目", "问题", "Q", "Question")
# Question words that mark a question only with a number and a colon: `题 3：`, `题目001:`.
_NUMBERED_QUESTION_WORDS = ("题目", "问题", "题", "Q", "Question")
ANSWER_WORDS = ("答案", "参考答案", "答案解析", "解答", "解析", "A", "Answer")
# "输出" (output) answers a question only as a heading (`#### 输出`); as a bold paragraph
# between a question and its answer it is part of the question (`**输出：** 3`).
HEADING_ONLY_ANSWER_WORDS = ("输出",)
_COLONS = ":："
# A heading's leading number ("1. ", "12、", "3) ", "1.") is numbering, not part of its name.
_HEADING_NUMBER = re.compile(r"^\s*\d+(?:\.\d+)*\s*[.、)）:：]?\s*(?=\S)|^\s*\d+\s*$")
_LABEL_ONLY_HEADING = re.compile(r"^\s*(?:第\s*\d+\s*题|\d+)\s*\W*$")
_EXPLICIT_ID = re.compile(r"^<!--\s*anki-genai-id\s*:\s*([^\s>]+)\s*-->$")
_SUMMARY = re.compile(r"<summary[^>]*>(.*?)</summary>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
# A plain label: a word, maybe numbered (`题目001`, `Question 3`), maybe a colon, then text.
_PLAIN_LABEL = re.compile(r"^\s*([^\s:：]+(?:\s+\d+)?)\s*([:：]?)\s*(.*)$")


@dataclass(frozen=True, slots=True)
class ParseOptions:
    """How to read a file: its layout and any extra marker words the user configured."""

    layout: Layout = Layout.MARKERS
    question_words: tuple[str, ...] = ()
    answer_words: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class QAPair:
    """One question and its answer, as token slices of the parsed document."""

    question_tokens: tuple[Token, ...]
    answer_tokens: tuple[Token, ...]
    question_text: str  # plain text, what identity matching compares
    context: str  # the section heading the pair sits in, without its number
    location: SourceLocation  # where the question starts
    explicit_id: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """Everything one Markdown file yields: its title, settings, pairs and problems."""

    path: Path
    title: str | None
    pairs: tuple[QAPair, ...]
    diagnostics: tuple[Diagnostic, ...]
    env: dict[str, object] = field(hash=False, compare=False)
    deck: str | None = None  # from front matter
    tags: tuple[str, ...] = ()  # from front matter


def markdown_parser() -> MarkdownIt:
    """Return the parser every stage shares: CommonMark, GFM tables and strikethrough, math."""
    # Imported here: a rebuild that finds every file in the cache never parses Markdown.
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin
    from mdit_py_plugins.front_matter import front_matter_plugin

    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    md.use(front_matter_plugin)
    # No space inside the dollars and no digit right after the closing one, so that
    # "costs $5 and $10" stays text while $x_1$ is math.
    return md.use(dollarmath_plugin, allow_space=False, allow_digits=False, allow_labels=False)


def parse_markdown(
    text: str,
    path: Path,
    md: MarkdownIt | None = None,
    options: ParseOptions | None = None,
) -> ParsedDocument:
    """Find every question/answer pair in `text`, the content of the file at `path`."""
    md = md or markdown_parser()
    options = options or ParseOptions()
    env: dict[str, object] = {}
    try:
        tokens = md.parse(normalize_text(text), env)
    except RecursionError:
        # markdown-it caps nesting, but inline parsing of pathological input can still recurse.
        raise SourceError(
            "too deeply nested to parse; simplify it", SourceLocation(path, 1)
        ) from None
    settings, problems = _front_matter(tokens, path)
    layout_name = settings.get("layout")
    if layout_name is not None:
        try:
            options = ParseOptions(
                Layout(str(layout_name)), options.question_words, options.answer_words
            )
        except ValueError:
            problems.append(
                Diagnostic(
                    SourceLocation(path, 1),
                    f"unknown layout {layout_name!r} in front matter; "
                    f"use one of {', '.join(m.value for m in Layout)}",
                )
            )
    options = ParseOptions(
        options.layout,
        options.question_words + _words(settings.get("question_words")),
        options.answer_words + _words(settings.get("answer_words")),
    )
    blocks = list(_blocks(tokens))
    builder = _PairBuilder(path, options, _question_level(blocks, options.layout))
    for block in blocks:
        builder.feed(block)
    builder.finish()
    diagnostics = problems + builder.diagnostics
    if not builder.pairs:
        hint = _layout_hint(blocks, options.layout)
        if hint:
            diagnostics.append(Diagnostic(SourceLocation(path, 1), hint, Severity.WARNING))
    deck = settings.get("deck") or (settings.get("title") if builder.title is None else None)
    return ParsedDocument(
        path=path,
        title=builder.title,
        pairs=tuple(builder.pairs),
        diagnostics=tuple(diagnostics),
        env=env,
        deck=str(deck) if deck else None,
        tags=_words(settings.get("tags")),
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
        elif token.type in ("fence", "code_block", "math_block"):
            parts.append(token.content)
    return " ".join(part for part in parts if part.strip())


def _inline_text(children: Sequence[Token]) -> str:
    parts: list[str] = []
    for child in children:
        if child.type in ("text", "code_inline", "math_inline", "math_inline_double"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(_inline_text(child.children or []))
    return "".join(parts)


def _has_content(tokens: Sequence[Token]) -> bool:
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


def _words(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(w for w in re.split(r"[,\s]+", value) if w)
    if isinstance(value, list):
        return tuple(str(w) for w in value if str(w).strip())
    return (str(value),)


def _front_matter(
    tokens: Sequence[Token], path: Path
) -> tuple[dict[str, object], list[Diagnostic]]:
    if not tokens or tokens[0].type != "front_matter":
        return {}, []
    import yaml

    try:
        data = yaml.safe_load(tokens[0].content)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", 0) + 2
        message = "front matter is not valid YAML; fix it or remove it"
        return {}, [Diagnostic(SourceLocation(path, line), message, Severity.WARNING)]
    return (data if isinstance(data, dict) else {}), []


# --- blocks ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Block:
    """A top-level block: its tokens and its 1-based first line."""

    tokens: tuple[Token, ...]
    line: int

    @property
    def heading_level(self) -> int | None:
        first = self.tokens[0]
        return int(first.tag[1]) if first.type == "heading_open" else None

    @property
    def is_paragraph(self) -> bool:
        return len(self.tokens) == 3 and self.tokens[0].type == "paragraph_open"


def _blocks(tokens: Sequence[Token]) -> Iterator[_Block]:
    start = 0
    depth = 0
    for index, token in enumerate(tokens):
        depth += token.nesting
        if depth != 0:
            continue
        block = tokens[start : index + 1]
        start = index + 1
        if block[0].type == "front_matter":
            continue
        line = next((t.map[0] + 1 for t in block if t.map), 1)
        if block[0].type == "blockquote_open":
            inner = list(_blocks(block[1:-1]))
            marker_words = QUESTION_WORDS + ANSWER_WORDS
            if inner and _marker(inner[0], marker_words, heading_words=()) is not None:
                # `> **题目**: …` — the quote only decorates a marker: read inside it.
                yield from inner
                continue
        yield _Block(tuple(block), line)


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


def _marker(
    block: _Block,
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
    inline = block.tokens[1].copy(children=rest, content=_inline_text(rest))
    return _paragraph(inline, block.tokens[0].map)


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


def _details_answer(block: _Block, answer_words: Sequence[str]) -> bool:
    if block.tokens[0].type != "html_block":
        return False
    content = block.tokens[0].content
    summary = _SUMMARY.search(content)
    if "<details" not in content.lower() or summary is None:
        return False
    text = _TAG.sub("", summary.group(1))
    return any(word in text for word in answer_words if len(word) > 1) or "answer" in text.lower()


def _question_level(blocks: Sequence[_Block], layout: Layout) -> int | None:
    """For the headings layout: the heading level that holds the questions."""
    if layout is not Layout.HEADINGS:
        return None
    levels = [b.heading_level for b in blocks if b.heading_level is not None]
    counts = Counter(levels[1:] or levels)
    if not counts:
        return None
    return max(counts, key=lambda level: (counts[level], level))


def _layout_hint(blocks: Sequence[_Block], layout: Layout) -> str | None:
    bold_questions = sum(1 for b in blocks if _whole_bold_question(b) is not None)
    headings = sum(1 for b in blocks if b.heading_level is not None)
    if layout is not Layout.BOLD and bold_questions >= 2:
        return (
            f"no question/answer pairs found; {bold_questions} bold **Q…** paragraphs look "
            "like questions: try --layout bold"
        )
    if layout is not Layout.HEADINGS and headings >= 3:
        return (
            "no question/answer pairs found; if each heading is a question and its section "
            "the answer, try --layout headings"
        )
    if headings or blocks:
        return (
            "no question/answer pairs found; mark questions with **题目：** "
            "and answers with **答案：**"
        )
    return None


def _whole_bold_question(block: _Block) -> tuple[Token, ...] | None:
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
    inline = block.tokens[1].copy(children=rest, content=_inline_text(rest))
    return (block.tokens[0], inline, block.tokens[2])


def _heading_as_paragraph(block: _Block) -> tuple[Token, ...]:
    """A question heading's text as a paragraph, without its numbering or marker label."""
    inline = block.tokens[1]
    children = list(inline.children or [])
    split = _marker(block, QUESTION_WORDS)
    if split is not None:
        return split
    while children and children[0].type == "html_inline":
        children = children[1:]  # an anchor such as <a name=55></a> before the number
    if children and children[0].type == "text":
        stripped = _HEADING_NUMBER.sub("", children[0].content, count=1)
        children = ([children[0].copy(content=stripped)] if stripped else []) + children[1:]
    if _LABEL_ONLY_HEADING.match(_inline_text(children)) or not _inline_text(children).strip():
        return ()
    new_inline = inline.copy(children=children, content=_inline_text(children))
    return _paragraph(new_inline, block.tokens[0].map)


def _text_token(content: str) -> Token:
    from markdown_it.token import Token

    return Token("text", "", 0, content=content)


def _paragraph(inline: Token, line_map: list[int] | None) -> tuple[Token, ...]:
    """Wrap inline content (from a marker line or a heading) in a paragraph of its own."""
    from markdown_it.token import Token

    opening = Token("paragraph_open", "p", 1, map=line_map, block=True)
    return (opening, inline, Token("paragraph_close", "p", -1, block=True))


def _heading_text(block: _Block) -> str:
    return _inline_text(block.tokens[1].children or []).strip()


def _explicit_id(block: _Block) -> str | None:
    if block.tokens[0].type != "html_block":
        return None
    match = _EXPLICIT_ID.match(block.tokens[0].content.strip())
    return match.group(1) if match else None


def _trim(tokens: list[Token]) -> tuple[Token, ...]:
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


# --- the walk ----------------------------------------------------------------------------------


class _Phase(enum.Enum):
    NONE = 0
    QUESTION = 1
    ANSWER = 2


class _PairBuilder:
    """Walks top-level blocks once, opening and closing pairs as markers and headings pass."""

    def __init__(self, path: Path, options: ParseOptions, question_level: int | None) -> None:
        self.path = path
        self.layout = options.layout
        self.question_words = QUESTION_WORDS + options.question_words
        self.answer_words = ANSWER_WORDS + options.answer_words
        self.question_level = question_level
        self.title: str | None = None
        self.pairs: list[QAPair] = []
        self.diagnostics: list[Diagnostic] = []
        self._headings: list[tuple[int, str]] = []  # the open sections: (level, name)
        self._first_heading: str | None = None
        self._headings_seen = 0
        self._first_heading_has_pair = False
        self._phase = _Phase.NONE
        self._question: list[Token] = []
        self._answer: list[Token] = []
        self._in_details = False
        self._section_level = 0  # a heading this high or higher ends the pair
        self._context = ""
        self._location: SourceLocation | None = None
        self._pending_id: str | None = None
        self._pair_id: str | None = None
        # A heading that becomes a question if an answer marker follows in its section.
        self._candidate: tuple[_Block, list[Token], str] | None = None

    def feed(self, block: _Block) -> None:
        if self._phase is _Phase.ANSWER and self._in_details:
            if self._closes_details(block):
                self._close()
            else:
                self._answer.extend(block.tokens)
            return
        level = block.heading_level
        explicit = _explicit_id(block)
        if explicit is not None:
            self._pending_id = explicit
            return
        if self.layout is Layout.BOLD:
            bold_question = _whole_bold_question(block)
            if bold_question is not None:
                self._start_question(block, bold_question)
                self._phase = _Phase.ANSWER
                return
        if self.layout is Layout.MARKERS:
            question = _marker(block, self.question_words, heading_words=())
            if question is not None:
                self._start_question(block, question)
                return
            if self._answer_marker(block):
                return
        if level is not None:
            self._heading(block, level)
            return
        self._append(block)

    def _answer_marker(self, block: _Block) -> bool:
        details = _details_answer(block, self.answer_words)
        answer = None if details else _marker(block, self.answer_words)
        if answer is None and not details:
            return False
        if self._phase is _Phase.ANSWER:
            if block.heading_level is None and not details and self._split_follow_up(block):
                self._answer = list(answer or ())
                return True
            return False  # a second marker inside an answer (`#### 输出` then `#### 解析`)
        if self._phase is _Phase.NONE:
            if self._candidate is None:
                return False
            heading, body, context = self._candidate
            self._candidate = None
            self._open(heading, [*_heading_as_paragraph(heading), *body], context)
            self._section_level = heading.heading_level or 0
        self._phase = _Phase.ANSWER
        self._answer = list(answer or ())
        self._in_details = details and "</details>" not in block.tokens[0].content.lower()
        return True

    def _split_follow_up(self, block: _Block) -> bool:
        """A second `答案` in one answer answers a follow-up question asked just before it.

        The follow-up starts at the answer's last paragraph (code may follow it); what comes
        before stays the first answer. Without such a paragraph the marker is just text.
        """
        starts = [
            i for i, t in enumerate(self._answer) if t.type == "paragraph_open" and t.level == 0
        ]
        if not starts or starts[-1] == 0:
            return False
        split = starts[-1]
        follow_up, self._answer = self._answer[split:], self._answer[:split]
        context = self._context
        self._close()
        line = follow_up[0].map[0] + 1 if follow_up[0].map else block.line
        self._open(_Block(tuple(follow_up), line), follow_up, context)
        self._phase = _Phase.ANSWER
        return True

    def _closes_details(self, block: _Block) -> bool:
        return (
            block.tokens[0].type == "html_block" and "</details>" in block.tokens[0].content.lower()
        )

    def _heading(self, block: _Block, level: int) -> None:
        if self._phase is not _Phase.NONE and level > self._section_level:
            (self._answer if self._phase is _Phase.ANSWER else self._question).extend(block.tokens)
            return
        self._close()
        text = _heading_text(block)
        if self._first_heading is None:
            self._first_heading = text
        self._headings_seen += 1
        while self._headings and self._headings[-1][0] >= level:
            self._headings.pop()
        name = _HEADING_NUMBER.sub("", text, count=1).strip() or text
        parent = self._headings[-1][1] if self._headings else ""
        self._headings.append((level, name))
        if self.layout is Layout.HEADINGS and level == self.question_level:
            self._open(block, list(_heading_as_paragraph(block)), parent)
            self._section_level = level
            self._phase = _Phase.ANSWER
            return
        self._candidate = (block, [], parent)

    def _start_question(self, block: _Block, question: tuple[Token, ...]) -> None:
        self._close()
        self._candidate = None
        context = self._headings[-1][1] if self._headings else ""
        self._open(block, list(question), context)
        self._section_level = self._headings[-1][0] if self._headings else 0

    def _open(self, block: _Block, question: list[Token], context: str) -> None:
        self._phase = _Phase.QUESTION
        self._question = question
        self._answer = []
        self._in_details = False
        self._context = context
        self._location = SourceLocation(self.path, block.line)
        self._pair_id, self._pending_id = self._pending_id, None
        if self._headings_seen == 1:
            self._first_heading_has_pair = True

    def _append(self, block: _Block) -> None:
        if self._phase is _Phase.ANSWER:
            self._answer.extend(block.tokens)
        elif self._phase is _Phase.QUESTION:
            self._question.extend(block.tokens)
        elif self._candidate is not None:
            self._candidate[1].extend(block.tokens)

    def _close(self) -> None:
        if self._phase is _Phase.NONE:
            return
        assert self._location is not None
        phase = self._phase
        question, answer = _trim(self._question), _trim(self._answer)
        self._phase = _Phase.NONE
        self._question, self._answer, self._in_details = [], [], False
        question_text = " ".join(plain_text(question).split())
        if not question_text:
            self._report("question is empty; write the question after the marker")
        elif phase is _Phase.QUESTION:
            self._report("question has no answer; add an answer marker (**答案：**) below it")
        elif not _has_content(answer):
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
        if not self._first_heading_has_pair:
            self.title = self._first_heading
