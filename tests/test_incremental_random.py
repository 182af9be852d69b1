"""Edits drawn at random, built one after the other: every rebuild, shortcut or not, gives
the state and notes a build that matches every file gives (see `test_incremental`)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from anki_genai.build import BuildMemo, BuildOptions, build
from tests.test_build_paths import _build
from tests.test_incremental import Edit, _rebuilds_equal_full_builds

Pair = tuple[str | None, str, str]  # explicit id, question, answer
Corpus = dict[str, list[Pair]]


def _text(pairs: list[Pair]) -> str:
    parts = ["# 题库\n"]
    for number, (explicit_id, question, answer) in enumerate(pairs, 1):
        pin = f"<!-- anki-genai-id: {explicit_id} -->\n" if explicit_id else ""
        heading = f"## {number}. 小节\n\n"
        body = f"- {answer}\n" if answer else ""  # none: a broken pair, its note held
        parts.append(f"{heading}{pin}**题目：** {question}\n\n**答案：**\n\n{body}")
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
_KINDS = [
    "rename",
    "copy",
    "answer",
    "remove",
    "add",
    "id",
    "move",
    "twin",
    "swap",
    "break",
    "file",
]
_WEIGHTS = [4, 4, 2, 1, 2, 1, 1, 1, 1, 0.7, 0.5]


def _mutate(corpus: Corpus, rng: random.Random, seen: list[str]) -> Corpus:
    """One or two edits a user makes: questions edited a little, copied from another pair,
    answers edited, pairs removed and added back (their old question, a tombstone's), ids
    given and taken away, pairs moved, copied whole to another file or swapped, answers
    emptied and written again, a file renamed or removed."""
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
            pin = None if explicit_id else f"pin-{rng.randrange(4)}"
            pairs[index] = (pin, question, answer)
        elif kind in ("move", "twin"):
            other = rng.choice(sorted(corpus))
            corpus[other].append(pairs[index])
            if kind == "move":
                del pairs[index]
        elif kind == "break":  # the answer emptied while editing, or written again
            pairs[index] = (explicit_id, question, "" if answer else "要点 修好")
        elif kind == "swap":
            other_index = rng.randrange(len(pairs))
            pairs[index], pairs[other_index] = pairs[other_index], pairs[index]
        elif rng.random() < 0.5 and len(corpus) > 2:
            del corpus[name]
        else:
            corpus[name.replace(".md", "b.md")] = corpus.pop(name)
        seen.extend(q for ps in corpus.values() for _, q, _ in ps if q not in seen)
    return corpus


def _pairs(f: int) -> list[Pair]:
    return [(None, f"第{f}-{n}题：什么是第{n}种情况？", f"要点 {f}.{n}") for n in range(4)]


def _watching() -> Callable[[Path, Path], None]:
    """Builds as `build --watch` makes them: one process, remembering between builds."""
    memo = BuildMemo()

    def build_again(source: Path, output: Path) -> None:
        build(BuildOptions(sources=(source,), output=output), memo=memo)

    return build_again


@pytest.mark.parametrize("watching", [False, True], ids=["command line", "watch mode"])
@pytest.mark.parametrize("seed", range(8))
def test_random_edits_rebuild_as_a_full_build_does(
    seed: int,
    watching: bool,
    tmp_path: Path,
    fixed_clock: list[float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Twelve rounds of random edits: after each, the rebuild (shortcut or not; from the
    command line or in watch mode) and a build that matches every file leave the same
    state file, and at last the same notes in Anki."""
    rng = random.Random(seed)
    corpus: Corpus = {f"part{f}.md": _pairs(f) for f in range(4)}
    seen = [q for pairs in corpus.values() for _, q, _ in pairs]
    source = tmp_path / "quick" / "source"
    source.mkdir(parents=True)
    _writes({}, corpus)(source)
    edits = []
    for _ in range(12):
        changed = _mutate(corpus, rng, seen)
        edits.append(_writes(corpus, changed))
        corpus = changed
    build_quick = _watching() if watching else _build
    build_quick(source, tmp_path / "quick" / "out.apkg")
    shortcuts = _rebuilds_equal_full_builds(tmp_path, fixed_clock, monkeypatch, edits, build_quick)
    assert any(shortcuts)  # the shortcut was put to the test
