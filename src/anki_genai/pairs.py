"""Top-level blocks -> question/answer pairs: one walk that opens and closes pairs.

An answer runs to the next question, the next heading as high as the question's section, the
end of a `<details>` block it opened, or the end of the file.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from anki_genai.errors import Diagnostic, Severity, SourceLocation
from anki_genai.markers import (
    ANSWER_WORDS,
    HEADING_NUMBER,
    QUESTION_WORDS,
    Block,
    Layout,
    ParseOptions,
    details_answer,
    explicit_id,
    has_content,
    heading_as_paragraph,
    heading_text,
    marker,
    plain_text,
    trim,
    whole_bold_question,
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


class PairBuilder:
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
        self._candidate: tuple[Block, list[Token], str] | None = None

    def feed(self, block: Block) -> None:
        if self._phase is _Phase.ANSWER and self._in_details:
            if self._closes_details(block):
                self._close()
            else:
                self._answer.extend(block.tokens)
            return
        level = block.heading_level
        explicit = explicit_id(block)
        if explicit is not None:
            self._pending_id = explicit
            return
        if self.layout is Layout.BOLD:
            bold_question = whole_bold_question(block)
            if bold_question is not None:
                self._start_question(block, bold_question)
                self._phase = _Phase.ANSWER
                return
        if self.layout is Layout.MARKERS:
            question = marker(block, self.question_words, heading_words=())
            if question is not None:
                self._start_question(block, question)
                return
            if self._answer_marker(block):
                return
        if level is not None:
            self._heading(block, level)
            return
        self._append(block)

    def _answer_marker(self, block: Block) -> bool:
        details = details_answer(block, self.answer_words)
        answer = None if details else marker(block, self.answer_words)
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
            self._open(heading, [*heading_as_paragraph(heading), *body], context)
            self._section_level = heading.heading_level or 0
        self._phase = _Phase.ANSWER
        self._answer = list(answer or ())
        self._in_details = details and "</details>" not in block.tokens[0].content.lower()
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

    def _closes_details(self, block: Block) -> bool:
        return (
            block.tokens[0].type == "html_block" and "</details>" in block.tokens[0].content.lower()
        )

    def _heading(self, block: Block, level: int) -> None:
        if self._phase is not _Phase.NONE and level > self._section_level:
            (self._answer if self._phase is _Phase.ANSWER else self._question).extend(block.tokens)
            return
        self._close()
        text = heading_text(block)
        if self._first_heading is None:
            self._first_heading = text
        self._headings_seen += 1
        while self._headings and self._headings[-1][0] >= level:
            self._headings.pop()
        name = HEADING_NUMBER.sub("", text, count=1).strip() or text
        parent = self._headings[-1][1] if self._headings else ""
        self._headings.append((level, name))
        if self.layout is Layout.HEADINGS and level == self.question_level:
            self._open(block, list(heading_as_paragraph(block)), parent)
            self._section_level = level
            self._phase = _Phase.ANSWER
            return
        self._candidate = (block, [], parent)

    def _start_question(self, block: Block, question: tuple[Token, ...]) -> None:
        self._close()
        self._candidate = None
        context = self._headings[-1][1] if self._headings else ""
        self._open(block, list(question), context)
        self._section_level = self._headings[-1][0] if self._headings else 0

    def _open(self, block: Block, question: list[Token], context: str) -> None:
        self._phase = _Phase.QUESTION
        self._question = question
        self._answer = []
        self._in_details = False
        self._context = context
        self._location = SourceLocation(self.path, block.line)
        self._pair_id, self._pending_id = self._pending_id, None
        if self._headings_seen == 1:
            self._first_heading_has_pair = True

    def _append(self, block: Block) -> None:
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
        question, answer = trim(self._question), trim(self._answer)
        self._phase = _Phase.NONE
        self._question, self._answer, self._in_details = [], [], False
        question_text = " ".join(plain_text(question).split())
        if not question_text:
            self._report("question is empty; write the question after the marker")
        elif phase is _Phase.QUESTION:
            self._report("question has no answer; add an answer marker (**答案：**) below it")
        elif not has_content(answer):
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
