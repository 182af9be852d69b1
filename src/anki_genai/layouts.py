"""Which layout a file is written in, found from its blocks, and its question headings.

Tried in this order, the first that gives a card wins: answer markers (`**答案：**`,
`<summary>答案</summary>`) -> marker pairs; `<summary>` questions; `Q:`/`A:` lines; bold
numbered questions; heading questions. When none gives a card, the most likely one is kept,
so that its warnings say what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from anki_genai.blocks import marker_lines
from anki_genai.errors import Diagnostic, Severity, SourceLocation
from anki_genai.furniture import is_furniture, is_furniture_heading, is_link_list
from anki_genai.markers import (
    ANSWER_WORDS,
    QUESTION_WORDS,
    Layout,
    ParseOptions,
    has_content,
    heading_text,
    is_answer_summary,
    marker,
    whole_bold_question,
)
from anki_genai.pairs import PairBuilder
from anki_genai.questions import (
    answer_line,
    asks,
    looks_like_question,
    numbered_bold_question,
    qa_lines,
)

if TYPE_CHECKING:
    from anki_genai.blocks import Block


def candidate_layouts(blocks: Sequence[Block], options: ParseOptions) -> list[Layout]:
    """The layouts this file may be written in, the most likely first."""
    if options.layout is not Layout.AUTO:
        return [options.layout]
    answer_words = ANSWER_WORDS + options.answer_words
    question_words = QUESTION_WORDS + options.question_words
    answers = questions = summaries = lines = bold = 0
    for index, block in enumerate(blocks):
        if block.details == "open" and block.summary:
            if is_answer_summary(block.summary_text, answer_words):
                answers += 1
            else:
                summaries += 1
        elif marker(block, answer_words) is not None:
            answers += 1
        elif marker(block, question_words, heading_words=()) is not None:
            questions += 1
        elif whole_bold_question(block) is not None or numbered_bold_question(block):
            bold += 1
        elif (asked := qa_lines(block)) is not None:
            following = blocks[index + 1] if index + 1 < len(blocks) else None
            if asked[1] is not None or (following and answer_line(following) is not None):
                lines += 1
    found = [
        layout
        for layout, count in (
            (Layout.MARKERS, answers),
            (Layout.SUMMARY, summaries),
            (Layout.LINES, lines),
            (Layout.BOLD, bold - 1),  # one bold numbered line is more often a sub-point
        )
        if count > 0
    ]
    found.append(Layout.HEADINGS)
    if questions and Layout.MARKERS not in found:
        found.append(Layout.MARKERS)  # its warnings name the missing answer markers
    return found


@dataclass
class _Section:
    block: Block | None
    level: int
    body: list[Block] = field(default_factory=list)
    children: list[_Section] = field(default_factory=list)

    @property
    def text(self) -> str:
        return heading_text(self.block) if self.block is not None else ""

    @property
    def own_content(self) -> bool:
        """Content of its own before its first sub-heading."""
        return any(has_content(b.tokens) and not is_furniture(b) for b in self.body)

    @property
    def is_furniture(self) -> bool:
        if is_furniture_heading(self.text):
            return True
        shown = [b for b in self.body if not is_furniture(b)]
        return bool(shown) and not self.children and all(is_link_list(b) for b in shown)

    def asks_below(self) -> bool:
        return any(looks_like_question(c.text) or c.asks_below() for c in self.children)


def question_headings(blocks: Sequence[Block]) -> frozenset[int]:
    """The lines of the headings that are questions, their sections being the answers.

    Among sibling headings (under the same parent), when at least half look like questions,
    each of them is a question: the level of the questions can change within a file, and a
    question heading need not end in `?`. Deeper headings belong to the answer; a heading
    with no text of its own over question headings is a group, whose children are looked at
    in turn. Reference and link-only sections are never questions.
    """
    root = _Section(None, 0)
    stack = [root]
    for block in blocks:
        level = block.heading_level
        if level is None:
            stack[-1].body.append(block)
            continue
        while stack[-1].level >= level:
            stack.pop()
        section = _Section(block, level)
        stack[-1].children.append(section)
        stack.append(section)
    lines: set[int] = set()
    _classify(root.children, lines)
    return frozenset(lines)


def _classify(sections: Sequence[_Section], lines: set[int]) -> None:
    shown = [s for s in sections if not s.is_furniture]
    asking = sum(1 for s in shown if looks_like_question(s.text))
    questions_here = asking > 0 and 2 * asking >= len(shown)
    for section in shown:
        if questions_here and (section.own_content or not section.asks_below()):
            assert section.block is not None
            lines.add(section.block.line)
        else:
            _classify(section.children, lines)


# Layouts whose answers are marked: one that finds pairs is the file's.
_EXPLICIT = (Layout.MARKERS, Layout.SUMMARY, Layout.LINES)


def find_pairs(blocks: Sequence[Block], path: Path, options: ParseOptions) -> PairBuilder:
    """Walk `blocks` in each candidate layout; keep the first walk that gives a card."""
    words = QUESTION_WORDS + options.question_words + ANSWER_WORDS + options.answer_words
    # `Q: …` and `A: …` lines in one paragraph are one pair of the lines layout already.
    blocks = [
        part
        for block in blocks
        for part in (marker_lines(block, words) if qa_lines(block) is None else (block,))
    ]
    walks = []
    for layout in candidate_layouts(blocks, options):
        # Only the headings layout asks which headings are questions; a file of markers,
        # found first, never needs to know.
        questions = question_headings(blocks) if layout is Layout.HEADINGS else frozenset()
        builder = PairBuilder(path, options, layout, questions)
        for block in blocks:
            builder.feed(block)
        builder.finish()
        walks.append(builder)
        if builder.pairs and layout in _EXPLICIT:
            break
    # Bold questions and heading questions carry no marker of their answers: the one that
    # finds more pairs is the file's (bold sub-points of heading answers find few).
    best = max((len(w.pairs) for w in walks), default=0)
    # With no card anywhere, marker warnings say most (a question marker, an unknown label).
    markers = [w for w in walks if w.layout is Layout.MARKERS and len(walks) > 1]
    walks = [w for w in walks if best and len(w.pairs) == best] or markers or walks
    chosen = walks[0]
    chosen.diagnostics.extend(_dropped(blocks, chosen, options))
    if not chosen.pairs and blocks:
        message = (
            "no question/answer pairs found; mark questions with **题目：** and answers with "
            "**答案：**, or write each question as a heading with its answer below it"
        )
        chosen.diagnostics.append(Diagnostic(SourceLocation(path, 1), message, Severity.WARNING))
    return chosen


def _dropped(blocks: Sequence[Block], walk: PairBuilder, options: ParseOptions) -> list[Diagnostic]:
    """A warning for each block that looks like a question but went into no card."""
    reported = {d.location.line for d in walk.diagnostics}
    question_words = QUESTION_WORDS + options.question_words
    answer_words = ANSWER_WORDS + options.answer_words
    advice = {
        Layout.MARKERS: "no answer marker follows it; add **答案：** or try --layout headings",
        Layout.HEADINGS: "it is neither a question heading nor in one's answer; "
        "write its answer below it, or add **答案：** before the answer",
    }.get(walk.layout, f"the file reads as {walk.layout.value} questions; try --layout markers")
    problems = []
    for block in blocks:
        if block.line in walk.used or block.line in reported:
            continue
        what = None
        if block.heading_level is not None and asks(heading_text(block)):
            what = "heading"
        elif block.details == "open" and block.summary:
            if not is_answer_summary(block.summary_text, answer_words):
                what = "<summary>"
        elif marker(block, question_words, heading_words=()) is not None:
            what = "question marker"
        elif qa_lines(block) is not None:
            what = "`Q:` line"
        if what is not None:
            message = f"{what} looks like a question but is in no card: {advice}"
            problems.append(
                Diagnostic(SourceLocation(walk.path, block.line), message, Severity.WARNING)
            )
    return problems
