"""Every question/answer layout found in real documents, as fixture cases.

Each case in fixtures/layouts.md is a title, a Markdown input and the expected pairs: for each
pair `LINE [CONTEXT] QUESTION` then `= ANSWER` (plain text, spaces folded); problems as
`! LINE SEVERITY: MESSAGE`. The cases in fixtures/families.md, one or more per layout family,
start with the layout the file was found to be written in.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from markdown_it.utils import read_fixture_file

from anki_genai.parse import parse_markdown, plain_text
from tests.conftest import FIXTURES

CASES = read_fixture_file(FIXTURES / "layouts.md")
FAMILIES = read_fixture_file(FIXTURES / "families.md")


def _describe(text: str, with_layout: bool = False) -> str:
    document = parse_markdown(text, Path("case.md"))
    lines = [f"layout {document.layout.value}"] if with_layout else []
    for problem in document.diagnostics:
        lines.append(f"! {problem.location.line} {problem.severity.value}: {problem.message}")
    for pair in document.pairs:
        lines.append(f"{pair.location.line} [{pair.context}] {pair.question_text}")
        lines.append("= " + " ".join(plain_text(pair.answer_tokens).split()))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("line", "title", "text", "expected"), CASES, ids=[case[1][:60] for case in CASES]
)
def test_layout(line: int, title: str, text: str, expected: str) -> None:
    """The parser finds exactly the pairs a reader finds in this layout."""
    assert _describe(text) == expected


@pytest.mark.parametrize(
    ("line", "title", "text", "expected"), FAMILIES, ids=[case[1][:60] for case in FAMILIES]
)
def test_family(line: int, title: str, text: str, expected: str) -> None:
    """With no option, the file's layout is found and gives the pairs a reader finds."""
    assert _describe(text, with_layout=True) == expected
