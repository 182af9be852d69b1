"""Installing and hooking up the tool as a user would: pre-commit, pipx, the README."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GOOD = "# 网络\n\n## TCP\n\n**题目：** TCP 是什么？\n\n**答案：** 传输控制协议。\n"
BROKEN = "# 草稿\n\n## A\n\n**题目：** 没有答案？\n"
# What a package of the tool is made of (the rest of the repository is not installed).
PACKAGED = ("src", "pyproject.toml", "README.md", ".pre-commit-hooks.yaml")


def _git(*args: str | Path, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *map(str, args)],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def _tool_repository(into: Path) -> Path:
    """This working tree's package files as a git repository at one commit, the way
    pre-commit fetches a hook repository."""
    into.mkdir()
    for name in PACKAGED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, into / name)
    _git("init", "-q", cwd=into)
    _git("add", ".", cwd=into)
    _git("commit", "-q", "-m", "tool", cwd=into)
    return into


@pytest.mark.slow
def test_pre_commit_hook_fails_on_a_broken_pair_and_passes_on_a_good_one(
    tmp_path: Path,
) -> None:
    """`pre-commit try-repo` installs the anki-genai-check hook from
    .pre-commit-hooks.yaml; it fails a commit holding a question without an answer, naming
    the line, and passes once the answer is there."""
    tool = _tool_repository(tmp_path / "tool")
    notes = tmp_path / "notes"
    (notes / "source").mkdir(parents=True)
    (notes / "source" / "good.md").write_text(GOOD, "utf-8")
    (notes / "source" / "draft.md").write_text(BROKEN, "utf-8")
    _git("init", "-q", cwd=notes)
    _git("add", ".", cwd=notes)
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    command = [sys.executable, "-m", "pre_commit", "try-repo", tool, "anki-genai-check"]

    def hook() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*map(str, command), "--all-files"],
            cwd=notes,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )

    failed = hook()
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "anki-genai check" in failed.stdout and "Failed" in failed.stdout
    assert "source/draft.md:5: error: question has no answer" in failed.stdout

    (notes / "source" / "draft.md").write_text(BROKEN + "\n**答案：** 有了。\n", "utf-8")
    _git("add", ".", cwd=notes)
    passed = hook()
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "Passed" in passed.stdout
