"""Real interview documents (other people's, read from ../shared) give the pairs a person finds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from anki_genai.decoding import read_source
from anki_genai.parse import ParseOptions, QAPair, normalize_text, parse_markdown

# The shared corpus lies beside the checkout (../shared), or beside the folder holding a worktree.
CORPUS = next(
    (
        p / "shared" / "corpus" / "real"
        for p in Path(__file__).resolve().parents[1:4]
        if (p / "shared" / "corpus" / "real").is_dir()
    ),
    Path(__file__).resolve().parents[2] / "shared" / "corpus" / "real",
)

# Every file is read with default options but these, and why.
OPTIONS = {
    # `## 面试题` / `## 面试题剖析` are this author's own marker words; without them the file
    # reads as three heading questions that drop the question's `？`.
    "16_": ParseOptions(question_words=("面试题",), answer_words=("面试题剖析",)),
}


def _key() -> list[dict[str, object]]:
    if not CORPUS.is_dir():
        return []
    return json.loads((CORPUS / "key.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _answer_first_line(pair: QAPair, lines: list[str]) -> str:
    """The first line of an answer as the key counts it: text on the marker line, else source."""
    for index, token in enumerate(pair.answer_tokens):
        if token.type in ("fence", "code_block"):
            return token.content.strip().splitlines()[0]
        if not token.map:
            continue
        source = lines[token.map[0]].strip()
        following = pair.answer_tokens[index + 1] if index + 1 < len(pair.answer_tokens) else None
        if token.type == "paragraph_open" and following is not None:
            text = following.content.strip().splitlines()[0]
            if source.startswith(text):
                return text  # what follows is markup, such as `</details>`
            if not source.endswith(text):
                continue
            # Text on a marker's line (`**答案：** text`, `A: text`) is counted without it.
            label = source[: len(source) - len(text)].rstrip(" *_")
            marked = "答案" in source or "解析" in source or "Answer" in source
            return text if marked or label[-1:] in (":", "：") else source
        return source
    return ""


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus/real is not beside this checkout")
@pytest.mark.parametrize("entry", _key(), ids=lambda e: str(e["file"])[:2])
def test_real_document_gives_the_expected_pairs(entry: dict[str, object]) -> None:
    """Each real document gives the key's pair count, first question and last answer's start."""
    path = CORPUS / str(entry["file"])
    options = next((o for prefix, o in OPTIONS.items() if path.name.startswith(prefix)), None)
    document = parse_markdown(read_source(path), path, options=options)
    count = len(document.pairs)
    low, high = entry["range"]  # type: ignore[misc]
    assert low <= count <= high, [str(d) for d in document.diagnostics][:5]
    if entry["expected"] == low == high:
        assert count == entry["expected"]
    # A question written as a numbered list (file 04) has no "1. " in its text: that is markup.
    first = re.sub(r"^\d+\.\s+", "", " ".join(str(entry["first_question"]).split()))
    assert document.pairs[0].question_text.startswith(first)
    lines = normalize_text(read_source(path)).split("\n")
    assert _answer_first_line(document.pairs[-1], lines) == entry["last_answer_first_line"]
