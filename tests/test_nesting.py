"""Nesting deeper than markdown-it reads (20 quotes or lists) is named at its line, never
reported as something else, nor what it swallows dropped without a word."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli

HEAD = "# 笔记\n\n**题目：** 深？\n\n**答案：**\n\n"
TAIL = "\n**题目：** 浅？\n\n**答案：** 浅。\n"


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "deep.md"
    path.write_text(HEAD + body + TAIL, encoding="utf-8")
    return path


def test_an_answer_ten_thousand_quotes_deep_says_so(tmp_path: Path) -> None:
    """The pair is refused for its nesting, at the question, naming the line; not "empty"."""
    path = _write(tmp_path, ">" * 10_000 + " 很深\n")
    result = run_cli("check", path)
    assert result.exit_code == 1
    assert result.stdout == (
        f"{path}:3: error: answer is nested more than 20 levels deep at line 7 "
        "(quotes or lists), too deep to read; flatten it\n"
    )
    assert "Traceback" not in result.output


def test_a_list_nested_past_the_limit_is_named_at_its_line(tmp_path: Path) -> None:
    """markdown-it reads nothing after the cut, here to the end of the file (the second
    pair is lost): an error at the line where that starts, the first card still built."""
    path = _write(tmp_path, "".join("  " * depth + "- 项\n" for depth in range(40)))
    result = run_cli("check", path)
    assert result.exit_code == 1
    assert result.stdout == (
        f"{path}:16: error: nested more than 20 levels deep (quotes or lists): nothing is "
        "read from here to the end of the enclosing quote, or of the file; flatten it\n"
    )
    build = run_cli("build", path, "-o", tmp_path / "build")
    assert build.exit_code == 0
    assert "1 note (1 new" in build.stdout


def test_nesting_within_the_limit_is_fine(tmp_path: Path) -> None:
    path = _write(tmp_path, ">" * 18 + " 还行\n")
    result = run_cli("check", path)
    assert (result.exit_code, result.stdout) == (0, "")
