"""Upgrading keeps identities: every note the previous release wrote keeps its GUID and question.

The previous release is pinned below, the last commit before the parser learnt to find a
file's layout. Its state files are written at test time, by running that commit's code from
git on copies of the sources (the shared corpus may not be copied into this repository), so
the test skips where the history or the corpus is missing.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import REFERENCE, REPO, run_cli, state_notes
from tests.test_corpus import CORPUS

PREVIOUS_RELEASE = "78d17ee8384dfd1ea0087ad9c36958803f3dbe6d"
STATE = "anki-genai-state.json"
_NUMBER_LABEL = re.compile(r"^(?:Question|Q)\s*\d+\s*[.:：)]?\s+", re.IGNORECASE)
# How the previous release had to be told to read the corpus files it could read at all.
PREVIOUS_OPTIONS = {
    "02_": ("--layout", "headings"),
    "15_": ("--layout", "bold"),
    "16_": ("--question-word", "面试题", "--answer-word", "面试题剖析"),
}
# The options a user still passes after upgrading (the layout is found now).
CURRENT_OPTIONS = {"16_": PREVIOUS_OPTIONS["16_"]}


def _notes(state: Path) -> dict[str, dict[str, object]]:
    return state_notes(state)


def _assert_kept(before: dict[str, dict[str, object]], after: dict[str, dict[str, object]]) -> None:
    """Every live note of `before` is in `after` with its GUID and its question text.

    One change is deliberate: a `Question 3.` heading that only numbers the question is no
    longer part of the question's text (such notes keep their GUIDs as edited questions).
    """
    changed = []
    for guid, note in before.items():
        new = after.get(guid)
        if note.get("removed"):
            continue
        if new is None or new.get("removed"):
            changed.append(f"{note['file']}: {note['question']!r} lost its GUID")
        elif new["question"] != note["question"] and (
            _NUMBER_LABEL.sub("", str(note["question"]), count=1) != new["question"]
        ):
            changed.append(f"{note['file']}: {note['question']!r} -> {new['question']!r}")
    assert not changed, f"{len(changed)} of {len(before)} notes changed: {changed[:10]}"


def test_reference_deck_keeps_the_guids_of_its_committed_state(tmp_path: Path) -> None:
    """Building the reference document with its committed state keeps every GUID."""
    sources = tmp_path / "source"
    shutil.copytree(REFERENCE.parent, sources)
    before = _notes(sources / STATE)
    assert run_cli("build", sources, "-o", tmp_path / "out").exit_code == 0
    _assert_kept(before, _notes(sources / STATE))


def _previous_release(tmp_path: Path) -> Path:
    """The previous release's source tree, from git; skip when the history lacks it."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", PREVIOUS_RELEASE, "src"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"commit {PREVIOUS_RELEASE} (the previous release) is not in this checkout")
    target = tmp_path / "previous"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target / "src"


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus/real is not beside this checkout")
def test_corpus_keeps_the_guids_the_previous_release_gave(tmp_path: Path) -> None:
    """Each corpus file built by the previous release, then by this one, keeps every GUID."""
    previous = _previous_release(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(previous)}
    groups: dict[tuple[str, ...], list[Path]] = {}
    for path in sorted(CORPUS.glob("[0-9][0-9]_*.md")):
        groups.setdefault(PREVIOUS_OPTIONS.get(path.name[:3], ()), []).append(path)
    for number, (options, paths) in enumerate(groups.items()):
        sources = tmp_path / f"sources{number}"
        sources.mkdir()
        for path in paths:
            shutil.copy(path, sources / path.name)
        out = tmp_path / f"out{number}"
        command = [sys.executable, "-m", "anki_genai", "build", str(sources), "-o", str(out)]
        subprocess.run([*command, *options], env=env, capture_output=True, check=False)
        before = _notes(sources / STATE)
        assert before, f"the previous release wrote no notes for {[p.name for p in paths]}"
        current = CURRENT_OPTIONS.get(paths[0].name[:3], ())
        result = run_cli("build", sources, "-o", tmp_path / f"new{number}", *current)
        assert result.exit_code == 0, result.stderr
        _assert_kept(before, _notes(sources / STATE))
