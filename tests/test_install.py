"""Installing and hooking up the tool as a user would: pre-commit, pipx, the README."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import GOOD

REPO = Path(__file__).resolve().parent.parent
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


def _run(
    command: list[str | Path], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`command` as its own process, its output kept; installs may take minutes."""
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
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
        return _run([*command, "--all-files"], notes, env)

    failed = hook()
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "anki-genai check" in failed.stdout and "Failed" in failed.stdout
    assert "source/draft.md:5: error: question has no answer" in failed.stdout

    (notes / "source" / "draft.md").write_text(BROKEN + "\n**答案：** 有了。\n", "utf-8")
    _git("add", ".", cwd=notes)
    passed = hook()
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "Passed" in passed.stdout


def _readme_block(after_heading: str, index: int = 0) -> list[str]:
    """The command lines of the `index`-th sh block under a README heading, comments cut."""
    text = (REPO / "README.md").read_text("utf-8").split(f"\n{after_heading}\n", 1)[1]
    block = text.split("```sh\n")[index + 1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def _fresh_checkout(into: Path) -> Path:
    """The repository's tracked files as they are in this working tree: what a clone holds."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, into / name)
    return into


def _clean_shell(command: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """`command` in bash with nothing of this test run's environment but PATH."""
    env = {"PATH": os.defpath + ":" + str(Path(sys.executable).parent), "HOME": str(home)}
    env["PATH"] = ":".join(p for p in env["PATH"].split(":") if ".venv" not in p)
    return _run(["bash", "-c", command], cwd, env)


@pytest.mark.slow
def test_readme_set_up_and_quick_start_work_in_a_clean_shell_of_a_fresh_clone(
    tmp_path: Path,
) -> None:
    """The README's first set-up command builds the reference deck from source/ into build/,
    and the Quick start commands then work exactly as written. (The second set-up command is
    the one this suite is run with.)"""
    clone = _fresh_checkout(tmp_path / "clone")
    set_up = _readme_block("## Set up")
    assert len(set_up) == 1 and "pip install -e ." in set_up[0]
    installed = _clean_shell(set_up[0], clone, tmp_path)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "Wrote build/" in installed.stdout and "30 notes" in installed.stdout
    assert list((clone / "build").glob("*.apkg"))
    assert (clone / "source" / "anki-genai-state.json").is_file()

    for command in _readme_block("## Quick start"):
        ran = _clean_shell(command, clone, tmp_path)
        assert ran.returncode == 0, (command, ran.stdout + ran.stderr)
        assert "Traceback" not in ran.stderr
    assert (clone / "build" / "preview.html").is_file()


@pytest.mark.slow
def test_pipx_install_puts_a_working_command_on_the_path(tmp_path: Path) -> None:
    """`pipx install .` from the repository folder, as the README says, gives an
    `anki-genai` command that builds a deck from anywhere."""
    tool = _tool_repository(tmp_path / "tool")
    bin_dir = tmp_path / "bin"
    env = {
        **os.environ,
        "PIPX_HOME": str(tmp_path / "pipx-home"),
        "PIPX_BIN_DIR": str(bin_dir),
        "PIPX_MAN_DIR": str(tmp_path / "man"),
    }
    installed = _run([sys.executable, "-m", "pipx", "install", "."], tool, env)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "net.md").write_text(GOOD, "utf-8")
    built = _run([bin_dir / "anki-genai", "build", "net.md", "-o", tmp_path / "out"], notes)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "1 note" in built.stdout and (tmp_path / "out" / "网络.apkg").is_file()
