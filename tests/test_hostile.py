"""Hostile input: odd files among the sources and text in odd encodings never hang a
command, never show a traceback, and always say what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

GOOD = "# 笔记\n\n**题目：** 什么是线程？\n\n**答案：** 操作系统调度的最小单位。\n"


def _run(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The command line as a separate process, so that a hang fails instead of stalling."""
    command = [sys.executable, "-m", "anki_genai", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX thing")
@pytest.mark.parametrize("command", [["build"], ["check"], ["build", "--skip-unreadable"]])
def test_a_fifo_among_the_sources_is_skipped_with_a_warning(
    tmp_path: Path, command: list[str]
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "good.md").write_text(GOOD, encoding="utf-8")
    os.mkfifo(source / "x.md")
    output = ["-o", tmp_path / "build"] if command[0] == "build" else []
    result = _run(*command, source, *output, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"{source / 'x.md'}:1: warning: a named pipe (FIFO), not a regular file: skipped" in (
        result.stdout + result.stderr
    )
    assert "Traceback" not in result.stderr
    if command[0] == "build":
        assert "1 note" in result.stdout


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-8-sig"])
def test_unicode_with_a_byte_order_mark_needs_no_option(tmp_path: Path, encoding: str) -> None:
    source = tmp_path / "notes.md"
    source.write_bytes(GOOD.encode(encoding))
    result = run_cli("check", source)
    assert result.exit_code == 0, result.output
    assert "1 file, 1 card: 0 errors, 0 warnings" in result.stderr


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        (GOOD, "gbk"),
        ("**題目：** 什麼是執行緒？\n\n**答案：** 作業系統排程的最小單位。\n", "big5"),
        ("**問題：** スレッドとは何ですか？\n\n**答え：** 実行の単位です。\n", "shift_jis"),
        (GOOD, "utf-16-le"),
    ],
)
def test_the_hint_for_an_undecodable_file_names_its_encoding(
    tmp_path: Path, text: str, encoding: str
) -> None:
    source = tmp_path / "old.md"
    source.write_bytes(text.encode(encoding))
    result = run_cli("build", source, "-o", tmp_path / "build")
    assert result.exit_code == 1
    assert f"{source}:1: error: not valid utf-8; it reads as {encoding}: convert it" in (
        result.stderr
    )
    assert f"--encoding {encoding}" in result.stderr
    assert not (tmp_path / "build").exists()


def test_utf16_of_plain_ascii_without_a_byte_order_mark_is_named(tmp_path: Path) -> None:
    """ASCII in UTF-16 is valid UTF-8 too, a NUL beside every letter: it is named, not
    built into cards of replacement characters."""
    source = tmp_path / "english.md"
    source.write_bytes(
        "**Question:** What is TCP?\n\n**Answer:** A protocol.\n".encode("utf-16-le")
    )
    result = run_cli("build", source, "-o", tmp_path / "build")
    assert result.exit_code == 1
    assert f"{source}:1: error: not valid utf-8; it reads as utf-16-le" in result.stderr
    assert not (tmp_path / "build").exists()


def test_a_nul_byte_is_named_with_its_line(tmp_path: Path) -> None:
    """A stray NUL is an error at its line, for check and build alike; with no other file
    there is nothing to build, and no advice about layouts for a file never parsed."""
    source = tmp_path / "notes.md"
    source.write_bytes(GOOD.replace("调度", "调\x00度").encode("utf-8"))
    result = run_cli("check", source)
    assert result.exit_code == 1
    line = GOOD[: GOOD.index("调度")].count("\n") + 1
    assert f"{source}:{line}: error: holds a NUL byte, which is not text" in result.output
    assert "the file could not be read (see above)" in result.output
    assert "mark questions and answers" not in result.output  # it was not read, so no hint
    built = run_cli("build", source, "-o", tmp_path / "build", "--skip-unreadable")
    assert built.exit_code == 1
    assert "could not be read (see above); nothing written" in built.output
    assert not (tmp_path / "build").exists()


def test_encodings_can_be_set_per_glob_in_the_settings_file(tmp_path: Path) -> None:
    """Old notes in GBK next to new ones in UTF-8: `[encodings]` names the old ones."""
    source = tmp_path / "source"
    (source / "old").mkdir(parents=True)
    (source / "new.md").write_text(GOOD.replace("线程", "进程"), encoding="utf-8")
    (source / "old" / "a.md").write_bytes(GOOD.encode("gbk"))
    (source / "anki-genai.toml").write_text('[encodings]\n"old/*.md" = "gbk"\n', "utf-8")
    result = run_cli("build", source, "-o", tmp_path / "build")
    assert result.exit_code == 0, result.output
    assert "2 files, 2 notes" in result.stdout


def test_an_unknown_encoding_in_the_settings_file_is_named(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "new.md").write_text(GOOD, encoding="utf-8")
    settings = source / "anki-genai.toml"
    settings.write_text('[encodings]\n"old/*.md" = "klingon"\n', "utf-8")
    result = run_cli("build", source, "-o", tmp_path / "build")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {settings}: [encodings] 'old/*.md': unknown encoding 'klingon'; use one "
        "Python knows, e.g. gbk\n"
    )
