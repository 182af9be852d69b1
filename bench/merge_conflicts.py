"""How often two branches' state files conflict under `git merge`, and what the next build does.

    python bench/merge_conflicts.py [--trials 30] [--base 16] [--rev REV]

Each trial makes a git repository with a fresh project of BASE notes in two files, built and
committed on main; branch `one` and branch `two` each add three notes and build; then
`git merge one two` (one after the other). Two variants: each branch adds a file of its own
("different files"), or both add to the same file at different places ("same file"). A merge
whose Markdown merged but whose state file conflicted is then built: the trial counts as
resolved when that build exits 0, leaves no conflict marker, and the state keeps every GUID
both branches recorded. Prints one line per variant. REV: run that revision's anki-genai
(from `git archive`) instead of this work tree's.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATE = "anki-genai-state.json"
_GIT_ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=_GIT_ENV, check=False
    )


def _pairs(topic: str, count: int) -> str:
    return "".join(
        f"## {n}. 节{n}\n\n**题目：** {topic}的第{n}个问题？\n\n**答案：** {topic}答{n}。\n\n"
        for n in range(1, count + 1)
    )


def _guids(state: Path) -> set[str]:
    text = state.read_text(encoding="utf-8")
    first, _, rest = text.partition("\n")
    if first.rstrip().endswith('"notes": ['):
        return {n["guid"] for n in json.loads(text)["notes"]}
    return {json.loads(line)["guid"] for line in rest.split("\n") if line.strip()}


def _trial(work: Path, src: Path, tag: str, same_file: bool, base: int) -> str:
    """One trial: "clean", "resolved", "unresolved" or "markdown conflict"."""
    repo = work / tag
    notes = repo / "notes"
    notes.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.name", "Bench")
    _git(repo, "config", "user.email", "bench@example.com")
    env = {**os.environ, "PYTHONPATH": str(src)}

    def build() -> subprocess.CompletedProcess[str]:
        command = [
            sys.executable,
            "-m",
            "anki_genai",
            "build",
            str(notes),
            "-o",
            str(work / f"{tag}.apkg"),
        ]
        return subprocess.run(command, capture_output=True, text=True, env=env, check=False)

    half = base // 2
    (notes / "faq.md").write_text(f"# {tag}常见\n\n" + _pairs(f"{tag}常见", half), "utf-8")
    (notes / "llm.md").write_text(f"# {tag}模型\n\n" + _pairs(f"{tag}模型", base - half), "utf-8")
    assert build().returncode == 0
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")
    faq = (notes / "faq.md").read_text(encoding="utf-8")
    recorded: set[str] = set()
    for branch in ("one", "two"):
        _git(repo, "checkout", "-q", "-b", branch, "main")
        topic = f"{tag}{branch}"
        if not same_file:
            (notes / f"{branch}.md").write_text(f"# {topic}\n\n" + _pairs(topic, 3), "utf-8")
        elif branch == "one":
            (notes / "faq.md").write_text(
                faq.replace("## 2. ", _pairs(topic, 3) + "## 2. "), "utf-8"
            )
        else:
            (notes / "faq.md").write_text(faq + _pairs(topic, 3), "utf-8")
        assert build().returncode == 0
        recorded |= _guids(notes / STATE)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", branch)
    _git(repo, "checkout", "-q", "main")
    _git(repo, "merge", "-q", "--no-edit", "one")
    if _git(repo, "merge", "--no-edit", "two").returncode == 0:
        return "clean"
    unmerged = set(_git(repo, "diff", "--name-only", "--diff-filter=U").stdout.split())
    if unmerged != {f"notes/{STATE}"}:
        return "markdown conflict"
    result = build()
    text = (notes / STATE).read_text(encoding="utf-8")
    ok = result.returncode == 0 and "<<<<<<<" not in text and recorded <= _guids(notes / STATE)
    return "resolved" if ok else "unresolved"


def _source(rev: str | None, into: Path) -> Path:
    if rev is None:
        return REPO / "src"
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "src"], capture_output=True, check=True
    )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--base", type=int, default=16, help="notes on main before branching")
    parser.add_argument("--rev", help="a revision to measure instead of this work tree")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = _source(args.rev, work / "rev")
        for same_file in (False, True):
            outcomes: dict[str, int] = {}
            for trial in range(args.trials):
                tag = f"t{trial}{'s' if same_file else 'd'}"
                outcome = _trial(work, src, tag, same_file, args.base)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            variant = "same file" if same_file else "different files"
            counts = ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items()))
            print(f"{variant}: {args.trials} merges of 3+3 new notes onto {args.base}: {counts}")


if __name__ == "__main__":
    main()
