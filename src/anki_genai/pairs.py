"""Top-level blocks -> question/answer pairs: one walk that opens and closes pairs.

An answer runs to the next question, the next heading as high as the question's section, the
end of a `<details>` block it opened, or the end of the file. Furniture never joins it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from anki_genai.blocks import ANSWER_TOO_DEEP, MAX_NESTING, Block, nesting_cuts
from anki_genai.errors import Diagnostic, Severity, SourceLocation
from anki_genai.furniture import is_furniture, is_placeholder
from anki_genai.markers import (
    ANSWER_WORDS,
    HEADING_NUMBER,
    QUESTION_WORDS,
    FirstHeading,
    Layout,
    ParseOptions,
    answer_label,
    explicit_id,
    has_content,
    heading_as_paragraph,
    heading_text,
    is_answer_summary,
    marker,
    plain_text,
    trim,
    whole_bold_question,
)
from anki_genai.questions import (
    answer_line,
    numbered_bold_question,
    qa_lines,
    without_question_label,
)

if TYPE_CHECKING:
    from markdown_it.token import Token


@dataclass(frozen=True, slots=True)
class QAPair:
    """One question and its answer, as token slices of the parsed document."""

    question_tokens: tuple[Token, ...]
    answer_tokens: tuple[Token, ...]
    question_text: str  # plain text, what identity matching compares
    context: str  # the section heading the pair sits in, without its number
    location: SourceLocation  # where the question starts
    explicit_id: str | None = None


class _Phase(enum.Enum):
    NONE = 0
    QUESTION = 1
    ANSWER = 2


_CODE = ("fence", "code_block")


class PairBuilder:
    """Walks top-level blocks once, opening and closing pairs as markers and headings pass."""

    def __init__(
        self, path: Path, options: ParseOptions, layout: Layout, question_lines: frozenset[int]
    ) -> None:
        self.path = path
        self.layout = layout
        self.question_words = QUESTION_WORDS + options.question_words
        self.answer_words = ANSWER_WORDS + options.answer_words
        self.question_lines = question_lines  # the headings layout's question headings
        self.title: str | None = None
        self.pairs: list[QAPair] = []
        self.diagnostics: list[Diagnostic] = []
        self.used: set[int] = set()  # first lines of the blocks that went into a card
        self.cuts_reported: set[int] = set()  # lines too deeply nested, named in an error
        self._headings: list[tuple[int, str, int]] = []  # open sections: (level, name, line)
        self._first_heading = FirstHeading()
        self._phase = _Phase.NONE
        self._question: list[Token] = []
        self._answer: list[Token] = []
        self._lines: list[int] = []
        self._in_details = False
        self._nested_details = 0  # <details> inside an answer, kept as its content
        self._left_open = False  # a question's <details> ended at the next question
        self._section_level = 0  # a heading this high or higher ends the pair
        self._heading_level = 0  # the level of the heading that asked the question
        self._await_code = False  # a stated task: its answer starts at its first code block
        self._context = ""
        self._location: SourceLocation | None = None
        self._pending_id: str | None = None
        self._pair_id: str | None = None
        # A heading that becomes a question if an answer marker follows in its section.
        self._candidate: tuple[Block, list[Token], str] | None = None
        self._loose: list[Block] = []  # blocks outside any pair since the last heading or pair

    def feed(self, block: Block) -> None:
        explicit = explicit_id(block)
        if explicit is not None:
            self._pending_id = explicit
            return
        if is_furniture(block):
            return
        if block.details is not None and self._details(block):
            return
        if self._phase is _Phase.ANSWER and self._in_details:
            if self._unclosed_details_end(block):
                self._close()
                self._left_open = True
            else:
                self._add(block, self._answer)
                return
        if self._family_question(block):
            return
        if self.layout is Layout.MARKERS:
            question = marker(block, self.question_words, heading_words=())
            if question is not None:
                self._start_question(block, question)
                return
            if self._answer_marker(block):
                return
        level = block.heading_level
        if level is not None:
            self._heading(block, level)
            return
        self._append(block)

    def _family_question(self, block: Block) -> bool:
        """Open a pair at a bold question or a `Q:` line, in the layouts that have them."""
        if self.layout is Layout.BOLD:
            bold = whole_bold_question(block)
            numbered = None if bold is not None else numbered_bold_question(block)
            if bold is not None:
                self._start_question(block, bold)
                self._phase = _Phase.ANSWER
                return True
            if numbered is not None:
                self._start_question(block, numbered[0])
                if numbered[1]:  # a stated task: its examples come before the answer
                    self._await_code = True
                else:
                    self._phase = _Phase.ANSWER
                return True
        if self.layout is Layout.LINES:
            lines = qa_lines(block)
            if lines is not None:
                self._start_question(block, lines[0])
                if lines[1] is not None:
                    self._phase, self._answer = _Phase.ANSWER, list(lines[1])
                return True
            answer = answer_line(block) if self._phase is _Phase.QUESTION else None
            if answer is not None:
                self._phase, self._answer = _Phase.ANSWER, list(answer)
                self._lines.append(block.line)
                return True
        if self._await_code and self._phase is _Phase.QUESTION and block.tokens[0].type in _CODE:
            self._phase = _Phase.ANSWER
        return False

    def _details(self, block: Block) -> bool:
        """Handle a `<details>` tag; False when it is only content of the current pair."""
        if block.details == "close":
            if self._nested_details:
                self._nested_details -= 1
                return False
            if self._phase is _Phase.ANSWER and self._in_details:
                self._close()
            elif self._left_open and self._candidate is not None:
                self._answer_inside_details()
            self._left_open = False
            return True  # a stray `</details>` closes nothing
        if block.summary and is_answer_summary(block.summary_text, self.answer_words):
            if self.layout is Layout.MARKERS and self._answer_marker(block):
                self._in_details = True
                return True
        elif block.summary and self.layout is Layout.SUMMARY:
            if self._in_details and not has_content(trim(self._answer)):
                self._phase = _Phase.NONE  # the open one was a category over questions
            self._start_question(block, block.summary)
            self._phase, self._in_details = _Phase.ANSWER, True
            return True
        if self._phase is not _Phase.NONE:
            self._nested_details += 1
        return False

    def _answer_inside_details(self) -> None:
        """The question after a `<details>` left open, answered inside it: its first
        paragraph asks, the rest up to the `</details>` answers."""
        assert self._candidate is not None
        heading, body, context = self._candidate
        self._candidate = None
        starts = [i for i, t in enumerate(body) if t.type == "paragraph_open" and t.level == 0]
        if len(starts) < 2:
            return
        self._open(heading, [*heading_as_paragraph(heading), *body[: starts[1]]], context)
        self._phase, self._answer = _Phase.ANSWER, body[starts[1] :]
        self._close()

    def _unclosed_details_end(self, block: Block) -> bool:
        """A heading like the one that asked this question ends a `<details>` left open."""
        return self._heading_level > 0 and block.heading_level == self._heading_level

    def _answer_marker(self, block: Block) -> bool:
        details = block.details == "open"
        answer = None if details else marker(block, self.answer_words)
        if answer is None and not details:
            return False
        if self._phase is _Phase.ANSWER:
            if block.heading_level is None and not details and self._split_follow_up(block):
                self._answer = list(answer or ())
                return True
            return False  # a second marker inside an answer (`#### 输出` then `#### 解析`)
        if self._phase is _Phase.NONE:
            if self._candidate is not None:
                heading, body, context = self._candidate
                self._candidate = None
                self._open(heading, [*heading_as_paragraph(heading), *body], context)
                self._section_level = self._heading_level = heading.heading_level or 0
            elif not self._loose_question():
                return False
        self._phase = _Phase.ANSWER
        self._answer = list(answer or ())
        self._lines.append(block.line)
        return True

    def _loose_question(self) -> bool:
        """The question of an answer marker with no question marker or heading before it:
        the text since the last pair, without `Question 3.` labels or HTML around it."""
        run: list[Block] = []
        for block in reversed(self._loose):
            if block.tokens[0].type in ("html_block", "hr") or block.details is not None:
                break
            run.insert(0, block)
        self._loose = []
        question = without_question_label([t for b in run for t in b.tokens])
        if not run or not plain_text(question).strip():
            return False
        context = self._headings[-1][1] if self._headings else ""
        self._open(run[0], list(question), context)
        self._lines.extend(b.line for b in run)
        self._section_level = self._headings[-1][0] if self._headings else 0
        return True

    def _split_follow_up(self, block: Block) -> bool:
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
        self._open(Block(tuple(follow_up), line), follow_up, context)
        self._phase = _Phase.ANSWER
        return True

    def _heading(self, block: Block, level: int) -> None:
        if self._phase is not _Phase.NONE and level > self._section_level:
            self._add(block, self._answer if self._phase is _Phase.ANSWER else self._question)
            return
        self._close()
        self._loose = []
        text = heading_text(block)
        self._first_heading.heading(text, level)
        while self._headings and self._headings[-1][0] >= level:
            self._headings.pop()
        name = HEADING_NUMBER.sub("", text, count=1).strip() or text
        parent = self._headings[-1][1] if self._headings else ""
        self._headings.append((level, name, block.line))
        if self.layout is Layout.HEADINGS and block.line in self.question_lines:
            self._open(block, list(heading_as_paragraph(block)), parent)
            self._section_level = level
            self._phase = _Phase.ANSWER
            return
        self._candidate = (block, [], parent) if self.layout is Layout.MARKERS else None

    def _start_question(self, block: Block, question: tuple[Token, ...]) -> None:
        self._close()
        self._candidate = None
        self._loose = []
        context = self._headings[-1][1] if self._headings else ""
        self._open(block, list(question), context)
        self._section_level = self._headings[-1][0] if self._headings else 0

    def _open(self, block: Block, question: list[Token], context: str) -> None:
        self._phase = _Phase.QUESTION
        self._question = question
        self._answer = []
        self._lines = [block.line]
        self._in_details = False
        self._nested_details = 0
        self._heading_level = 0
        self._await_code = False
        self._context = context
        self._location = SourceLocation(self.path, block.line)
        self._pair_id, self._pending_id = self._pending_id, None
        self._first_heading.pair_opened(asked_by_heading=block.heading_level is not None)

    def _add(self, block: Block, tokens: list[Token]) -> None:
        tokens.extend(block.tokens)
        self._lines.append(block.line)

    def _append(self, block: Block) -> None:
        if self._phase is _Phase.ANSWER:
            self._add(block, self._answer)
        elif self._phase is _Phase.QUESTION:
            self._add(block, self._question)
        elif self._candidate is not None:
            self._candidate[1].extend(block.tokens)
        else:
            self._loose.append(block)

    def _close(self) -> None:
        if self._phase is _Phase.NONE:
            return
        assert self._location is not None
        phase = self._phase
        if phase is _Phase.QUESTION and self._await_code and len(self._question) > 3:
            # A stated task with no code: what follows its first paragraph answers it.
            phase, self._answer = _Phase.ANSWER, self._question[3:]
            self._question = self._question[:3]
        question, answer = trim(self._question), trim(self._answer)
        self._phase = _Phase.NONE
        self._question, self._answer, self._in_details = [], [], False
        self._await_code = False
        question_text = " ".join(plain_text(question).split())
        strict = self.layout is Layout.MARKERS  # elsewhere a missing answer may be a heading's
        if not question_text:
            self._report("question is empty; write the question after the marker")
        elif phase is _Phase.QUESTION:
            self._report(self._no_answer(question), strict)
        elif not has_content(answer):
            cut = next(nesting_cuts(answer), None)
            if cut is not None:  # not empty: too deep for markdown-it to read
                self.cuts_reported.add(cut)
                self._report(ANSWER_TOO_DEEP.format(levels=MAX_NESTING, line=cut))
            elif strict:
                self._report("answer is empty; write the answer after the answer marker")
            else:
                self._report("question has no answer; write its answer below it", False)
        elif is_placeholder(answer):
            self._report("answer is only a placeholder; write the answer, then build again", False)
        else:
            self.used.update(self._lines)
            self.used.update(line for _, _, line in self._headings)  # the pair's context
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

    def _no_answer(self, question: tuple[Token, ...]) -> str:
        label = answer_label(question)
        if label is not None:
            return (
                f"question has no answer; if {label!r} starts its answer, "
                f"add --answer-word {label} (or answer_words: [{label}] in the front matter)"
            )
        if self.layout is Layout.LINES:
            return "question has no answer; write `A:` and the answer below it"
        return "question has no answer; add an answer marker (**答案：**) below it"

    def _report(self, message: str, error: bool = True) -> None:
        assert self._location is not None
        severity = Severity.ERROR if error else Severity.WARNING
        self.diagnostics.append(Diagnostic(self._location, message, severity))

    def finish(self) -> None:
        self._close()
        self.title = self._first_heading.title(self.layout)
