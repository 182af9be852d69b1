"""Edits drawn at random, built one after the other: every rebuild, shortcut or not, gives
the state and notes a build that matches every file gives (see `test_incremental`)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.test_build_paths import _build
from tests.test_incremental import Edit, _rebuilds_equal_full_builds, fixed_clock

__all__ = ["fixed_clock"]  # the fixture, used by name

Pair = tuple[str | None, str, str]  # explicit id, question, answer
Corpus = dict[str, list[Pair]]


def _text(pairs: list[Pair]) -> str:
    parts = ["# 题库\n"]
    for number, (explicit_id, question, answer) in enumerate(pairs, 1):
        pin = f"<!-- anki-genai-id: {explicit_id} -->\n" if explicit_id else ""
        heading = f"## {number}. 小节\n\n"
        parts.append(f"{heading}{pin}**题目：** {question}\n\n**答案：**\n\n- {answer}\n")
    return "\n".join(parts)


def _writes(before: Corpus, after: Corpus) -> Edit:
    """The edit that turns the files of `before` into those of `after`."""

    def edit(source: Path) -> None:
        for name in before.keys() - after.keys():
            (source / name).unlink()
        for name, pairs in after.items():
            if before.get(name) != pairs:
                (source / name).write_text(_text(pairs), encoding="utf-8")

    return edit


# Edits that make notes keep their GUIDs through a question edit, and pairs that meet them,
# come more often than in life: they are what the shortcut must get right.
_KINDS = ["rename", "copy", "answer", "remove", "add", "id", "drop file"]
_WEIGHTS = [4, 4, 2, 1, 2, 1, 0.3]


def _mutate(corpus: Corpus, rng: random.Random, seen: list[str]) -> Corpus:
    """One or two edits a user makes: questions edited a little, copied from another pair,
    answers edited, pairs removed and added back (their old question, a tombstone's), ids
    given, a file removed."""
    corpus = {name: list(pairs) for name, pairs in corpus.items()}
    for _ in range(rng.randint(1, 2)):
        name = rng.choice(sorted(corpus))
        pairs = corpus[name]
        kind = rng.choices(_KINDS, _WEIGHTS)[0]
        if kind == "add" or not pairs:
            pairs.append((None, rng.choice(seen), f"新答案 {rng.randrange(3)}"))
            continue
        index = rng.randrange(len(pairs))
        explicit_id, question, answer = pairs[index]
        if kind == "rename":
            pairs[index] = (explicit_id, question.replace("？", "呢？"), answer)
        elif kind == "copy":  # most often a question edited before
            questions = [q for ps in corpus.values() for _, q, _ in ps]
            edited = [q for q in questions if "呢" in q]
            pairs[index] = (explicit_id, rng.choice(edited or questions), answer)
        elif kind == "answer":
            pairs[index] = (explicit_id, question, answer + " 改")
        elif kind == "remove":
            del pairs[index]
        elif kind == "id":
            pairs[index] = (f"pin-{rng.randrange(4)}", question, answer)
        elif len(corpus) > 2:
            del corpus[name]
        seen.extend(q for ps in corpus.values() for _, q, _ in ps if q not in seen)
    return corpus


def _pairs(f: int) -> list[Pair]:
    return [(None, f"第{f}-{n}题：什么是第{n}种情况？", f"要点 {f}.{n}") for n in range(4)]


@pytest.mark.parametrize("seed", range(10))
def test_random_edits_rebuild_as_a_full_build_does(
    seed: int, tmp_path: Path, fixed_clock: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twelve rounds of random edits: after each, the rebuild (shortcut or not) and a build
    that matches every file leave the same state file, and at last the same notes in Anki."""
    rng = random.Random(seed)
    corpus: Corpus = {f"part{f}.md": _pairs(f) for f in range(4)}
    seen = [q for pairs in corpus.values() for _, q, _ in pairs]
    source = tmp_path / "quick" / "source"
    source.mkdir(parents=True)
    _writes({}, corpus)(source)
    _build(source, tmp_path / "quick" / "out.apkg")
    edits = []
    for _ in range(12):
        changed = _mutate(corpus, rng, seen)
        edits.append(_writes(corpus, changed))
        corpus = changed
    shortcuts = _rebuilds_equal_full_builds(tmp_path, fixed_clock, monkeypatch, edits)
    assert any(shortcuts)  # the shortcut was put to the test
