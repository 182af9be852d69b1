"""Check that two revisions of anki-genai give Anki exactly the same notes.

    python bench/same_notes.py OLD_REV [NEW_REV]   # NEW_REV: the work tree as it is

For each revision it builds the reference deck (source/) and a generated 1,000-note corpus
(bench.py's generator) with the clock fixed, imports each package into a fresh collection
with the official `anki` package, and compares every note: GUID, fields, mod, tags, deck.
Prints one line per corpus and exits 1 on any difference. Meant for refactorings, whose
behaviour must not change.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXED_TIME = 1_800_000_000.0
# Runs anki-genai's command line from the `src` folder on PYTHONPATH, with the clock fixed
# (worker processes are forked, so they share it).
_BUILD = (
    "import sys, time; time.time = lambda: {time!r}; sys.argv = ['anki-genai', *sys.argv[1:]]; "
    "from anki_genai.cli import main; main()"
)


def _checkout(rev: str | None, into: Path) -> Path:
    """The `src` folder of `rev` (None: this work tree)."""
    if rev is None:
        return REPO / "src"
    subprocess.run(["git", "-C", REPO, "worktree", "add", "-q", "--detach", into, rev], check=True)
    return into / "src"


def _build(src: Path, source: Path, package: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, "-c", _BUILD.format(time=FIXED_TIME), "build", source]
    subprocess.run([*command, "-o", package, "-q"], env=env, check=True)


def _notes(package: Path, folder: Path) -> dict[str, object]:
    from anki.collection import Collection, ImportAnkiPackageOptions, ImportAnkiPackageRequest

    folder.mkdir()
    col = Collection(str(folder / "collection.anki2"))
    try:
        request = ImportAnkiPackageRequest(
            package_path=str(package), options=ImportAnkiPackageOptions(with_scheduling=True)
        )
        col.import_anki_package(request)
        notes: dict[str, object] = {}
        for note_id in col.find_notes(""):
            note = col.get_note(note_id)
            decks = sorted(col.decks.name(card.did) for card in note.cards())
            notes[note.guid] = [list(note.fields), note.mod, sorted(note.tags), decks]
        return notes
    finally:
        col.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old")
    parser.add_argument("new", nargs="?")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "bench"))
    from bench import generate

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        generate(work / "corpus", 1000)
        corpora = {"reference deck": REPO / "source", "1,000-note corpus": work / "corpus"}
        seen: dict[str, list[dict[str, object]]] = {name: [] for name in corpora}
        try:
            for index, rev in enumerate((args.old, args.new)):
                src = _checkout(rev, work / f"rev{index}")
                for number, (name, corpus) in enumerate(corpora.items()):
                    source = work / f"rev{index}-{number}" / "source"
                    shutil.copytree(corpus, source)
                    package = source.parent / "out.apkg"
                    _build(src, source, package)
                    seen[name].append(_notes(package, source.parent / "anki"))
        finally:
            subprocess.run(["git", "-C", REPO, "worktree", "prune"], check=True)
        different = False
        for name, (old, new) in seen.items():
            same = json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True)
            different |= not same
            verdict = "identical" if same else "DIFFERENT"
            print(f"{name}: {len(old)} notes before, {len(new)} after, {verdict}")
        raise SystemExit(1 if different else 0)


if __name__ == "__main__":
    main()
