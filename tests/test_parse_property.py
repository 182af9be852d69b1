"""Whatever Markdown it is fed, the parser returns sound pairs or the tool's own error."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anki_genai.errors import SourceError
from anki_genai.parse import markdown_parser, parse_markdown, plain_text
from anki_genai.render import Renderer

MD = markdown_parser()
RENDERER = Renderer(markdown_parser())

_words = st.sampled_from(
    ["问题", "答案", "题目", "什么是 TCP？", "`**答案：**`", "$x$", "<b>", "&amp;", ""]
)
_text = st.one_of(_words, st.text(max_size=30))
_line = st.one_of(
    st.builds(lambda t: f"**题目：** {t}", _text),
    st.builds(lambda t: f"**答案：**{t}", _text),
    st.just("**答案**："),
    st.builds(lambda n, t: "#" * n + " " + t, st.integers(1, 7), _text),
    st.sampled_from(
        ["```", "```python", "~~~", "    code", "---", "", "", "<details>", "</details>"]
    ),
    st.builds(lambda d, t: "  " * d + "- " + t, st.integers(0, 6), _text),
    st.builds(lambda d, t: "> " * d + t, st.integers(1, 6), _text),
    st.builds(lambda n, t: f"{n}. {t}", st.integers(0, 12), _text),
    _text,
)
_document = st.builds(
    lambda lines, newline: newline.join(lines),
    st.lists(_line, max_size=40),
    st.sampled_from(["\n", "\r\n", "\r"]),
)


@settings(
    max_examples=int(os.environ.get("ANKI_GENAI_PROPERTY_EXAMPLES", "600")),
    derandomize=True,  # the same inputs on every CI run
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(_document)
def test_parser_returns_sound_pairs_for_any_markdown(text: str) -> None:
    """Every pair has a question, an answer and a line inside the file; nothing else escapes."""
    try:
        document = parse_markdown(text, Path("gen.md"), MD)
    except SourceError:
        return
    line_count = max(1, len(text.replace("\r\n", "\n").replace("\r", "\n").split("\n")))
    for pair in document.pairs:
        assert pair.question_text.strip()
        answer_text = plain_text(pair.answer_tokens).strip()
        has_image = any(c.type == "image" for t in pair.answer_tokens for c in (t.children or []))
        assert answer_text or has_image
        assert 1 <= pair.location.line <= line_count
        RENDERER.render(pair.question_tokens, document.env)
        RENDERER.render(pair.answer_tokens, document.env)
    for diagnostic in document.diagnostics:
        assert 1 <= diagnostic.location.line <= line_count


def test_pathological_inputs_do_not_raise() -> None:
    """Deep nesting, a 10 MB line, unbalanced fences and marker-only files parse quietly."""
    inputs = [
        "",
        "# 只有标题\n\n## 第二个标题\n",
        "> " * 5000 + "**题目：** 深？\n\n**答案：** 是。",
        "".join("  " * i + "- x\n" for i in range(3000)),
        "**题目：** 长？\n\n**答案：** " + "长" * 10_000_000,
        "**题目：** 围栏？\n\n**答案：**\n\n```python\nprint(1)\n",
        "正文\n\n**题目：**",
        "**题目：** 最后？\n\n**答案：**",
        "[" * 10000 + "]" * 10000,
        "*" * 20000,
    ]
    for text in inputs:
        try:
            parse_markdown(text, Path("edge.md"), MD)
        except SourceError as error:
            assert error.location is not None and error.location.line >= 1
